//! CIC's users, for user sync: the directory read in pages (`configuration/users`, `select=`,
//! `Range`) and handed to user sync whole, the users subscription's changes handed over as they
//! come, and — when statuses are synced — the statuses of the directory's users that the mapping
//! syncs subscribed (the list follows the directory) and stored as status records, each only when it differs from the
//! user's last stored status.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::IcwsSource;
use super::client::{IcwsError, Session};
use super::messages::UsersChange;
use crate::users::change::StatusChange;
use crate::users::feed::{DirectoryChange, DirectoryFeed, cic_id};
use crate::users::mapping::{self, SELECT};

/// The users subscription's id.
pub const USERS_SUBSCRIPTION: &str = "cic-conduit-users";

/// The most users read from a directory (a bound against an endless paging).
pub const MAX_USERS: usize = 1_000_000;

/// What the source reads about CIC's users.
pub struct People {
    /// Where the directory and its changes go.
    pub feed: Arc<DirectoryFeed>,
    /// Users per directory read.
    pub page: usize,
    /// Whether statuses are read.
    pub statuses: bool,
    /// The directory's user ids (the statuses subscribed).
    ids: Mutex<BTreeSet<String>>,
}

impl People {
    /// Users read `page` at a time into `feed`, and their statuses when `statuses`.
    pub fn new(feed: Arc<DirectoryFeed>, page: usize, statuses: bool) -> Self {
        People {
            feed,
            page: page.max(1),
            statuses,
            ids: Mutex::new(BTreeSet::new()),
        }
    }

    /// Takes a change of the directory; the user ids after it when they changed.
    fn take(&self, change: UsersChange) -> Option<Vec<String>> {
        let mut ids = crate::locks::lock(&self.ids);
        let before = ids.clone();
        // Statuses are read for the users the mapping syncs (a user without a business email
        // has no cloud user to show them on); one that gains an email is subscribed then.
        let (synced, unsynced): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
            change.upserts.iter().partition(|u| mapping::desired(u, None).is_ok());
        let synced: Vec<String> = synced.into_iter().filter_map(cic_id).map(str::to_string).collect();
        if change.full {
            *ids = synced.into_iter().collect();
            self.feed.push(DirectoryChange::Full(change.upserts));
        } else {
            ids.extend(synced);
            for r in unsynced
                .into_iter()
                .filter_map(cic_id)
                .chain(change.removed.iter().map(String::as_str))
            {
                ids.remove(r);
            }
            if !change.upserts.is_empty() {
                self.feed.push(DirectoryChange::Upsert(change.upserts));
            }
            if !change.removed.is_empty() {
                self.feed.push(DirectoryChange::Removed(change.removed));
            }
        }
        (*ids != before).then(|| ids.iter().cloned().collect())
    }
}

impl IcwsSource {
    /// Reads the directory, hands it over, and subscribes to its changes (and its users'
    /// statuses).
    pub(super) async fn follow_people(&self, s: &Session) -> Result<(), IcwsError> {
        let Some(p) = &self.people else {
            return Ok(());
        };
        let mut all = Vec::new();
        loop {
            let from = all.len();
            let (users, total) = s.read_users(&self.http, &SELECT, from, from + p.page - 1).await?;
            let n = users.len();
            all.extend(users);
            if n < p.page || total.is_some_and(|t| all.len() >= t) || all.len() >= MAX_USERS {
                break;
            }
        }
        tracing::info!(users = all.len(), "CIC user directory read");
        self.people_changed(
            s,
            UsersChange {
                full: true,
                upserts: all,
                removed: Vec::new(),
            },
        )
        .await?;
        // Its first message is the whole directory again: the same directory needs no work.
        s.subscribe_users(&self.http, USERS_SUBSCRIPTION, &SELECT).await
    }

    /// Hands a directory change over, and follows it with the statuses subscription.
    pub(super) async fn people_changed(&self, s: &Session, change: UsersChange) -> Result<(), IcwsError> {
        let Some(p) = &self.people else {
            return Ok(());
        };
        let full = change.full;
        match p.take(change) {
            Some(ids) if p.statuses && !ids.is_empty() => s.subscribe_statuses(&self.http, &ids).await,
            // A new session subscribes again even when the directory is the same.
            None if full && p.statuses => {
                let ids: Vec<String> = crate::locks::lock(&p.ids).iter().cloned().collect();
                if ids.is_empty() {
                    return Ok(());
                }
                s.subscribe_statuses(&self.http, &ids).await
            }
            _ => Ok(()),
        }
    }

    /// Stores status changes, retrying while the buffer cannot take them; false on shutdown.
    pub(super) async fn store_statuses(&self, changes: &[StatusChange]) -> bool {
        if changes.is_empty() || !self.people.as_ref().is_some_and(|p| p.statuses) {
            return true;
        }
        let m = &self.users_metrics.statuses;
        loop {
            match self.ingest.ingest_statuses(changes).await {
                Ok(stored) => {
                    m.with_label_values(&["stored"]).inc_by(stored as u64);
                    m.with_label_values(&["unchanged"])
                        .inc_by((changes.len() - stored) as u64);
                    return true;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, changes = changes.len(), "buffer cannot take CIC status changes yet; retrying");
                    if !self.pause(Duration::from_millis(500)).await {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, changes = changes.len(), "CIC status changes could not be stored");
                    return true;
                }
            }
        }
    }
}

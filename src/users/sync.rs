//! The user-sync component: keeps the organization's users equal to CIC's directory.
//!
//! It is fed [`DirectoryChange`]s by the ICWS source through a [`DirectoryFeed`] (the directory
//! read in pages, then the users subscription's changes) and writes the least that makes the
//! cloud equal:
//!
//! - a cloud user is matched by `externalId` (the CIC user id, case exact), then by `userName`
//!   (the business email) when that user has no `externalId` or this one — so a changed email
//!   updates the user instead of creating a second; a `userName` held by a cloud user with
//!   another `externalId` is that user's ("the email belongs to another cloud user");
//! - missing: POST; different: one PATCH with only the attributes that differ, `If-Match` its
//!   version (on 400 `invalidVers`: read it again, recompute, retry); equal: nothing;
//! - removed from CIC: `active: false` (or deleted, or kept, as configured) for the users this
//!   conduit synced; never a user it did not;
//! - 409 `uniqueness` is an error on that user, shown in its status and not retried until the
//!   user changes or the next reconcile. A call the cloud did not answer usably is retried after
//!   [`RETRY_AFTER`].
//!
//! A directory read again (after a reconnect) is compared with the last one and only its
//! differences are written. A full reconcile — at the first directory and every
//! `reconcile_interval_ms` — lists the cloud's users in pages of 25 and repairs
//! drift; live changes are taken between any two of its requests, so an edit in CIC does not
//! wait for a reconcile of ten thousand users to finish ([`reconcile`]). Every request goes
//! through the OAuth client's gate ([`super::scim`]).

mod reconcile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::feed::{DirectoryChange, DirectoryFeed, cic_id};
use super::mapping::{self, Desired};
use super::scim::{Scim, ScimError};
use super::status::Statuses;
use crate::config::{RemovedUsers, UsersConfig};
use crate::metrics::UsersMetrics;
use crate::shutdown::Shutdown;

/// How long after a call the cloud did not answer usably the user is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How often, at most, the status file is written while users change (beside the sync, so that
/// writing ten thousand statuses never holds up a request).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What one user's sync came to.
pub(super) enum Done {
    /// Equal now (written or not).
    Synced,
    /// Not done; try again later.
    Later,
    /// Refused or left out (its status says why).
    Settled,
}

/// The component.
pub struct UserSync {
    scim: Scim,
    statuses: Arc<Statuses>,
    cfg: UsersConfig,
    default_cc: Option<String>,
    metrics: UsersMetrics,
    shutdown: Shutdown,
    /// CIC's directory as last told, by user id.
    directory: BTreeMap<String, Value>,
    /// The cloud user each CIC user was last seen as (from a listing or a write's answer).
    cloud: HashMap<String, Value>,
    /// Users to try again, and when.
    retry: BTreeMap<String, Instant>,
    /// A full reconcile is due at this time (none before the first directory).
    next_reconcile: Option<Instant>,
}

impl UserSync {
    /// User sync writing through `scim`, keeping `statuses`.
    pub fn new(
        scim: Scim,
        statuses: Arc<Statuses>,
        cfg: UsersConfig,
        default_cc: Option<String>,
        metrics: UsersMetrics,
        shutdown: Shutdown,
    ) -> Self {
        // Alerts read these: they exist from start-up at zero.
        for result in ["done", "failed"] {
            metrics.reconciles.with_label_values(&[result]);
        }
        UserSync {
            scim,
            statuses,
            cfg,
            default_cc,
            metrics,
            shutdown,
            directory: BTreeMap::new(),
            cloud: HashMap::new(),
            retry: BTreeMap::new(),
            next_reconcile: None,
        }
    }

    /// Runs until shutdown, then saves the statuses.
    pub async fn run(mut self, feed: Arc<DirectoryFeed>) {
        let saver = {
            let (statuses, shutdown) = (self.statuses.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                while shutdown.sleep(SAVE_EVERY).await {
                    statuses.save().await;
                }
            })
        };
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = feed.changed() => {}
                _ = sleep_until_opt(wake) => {}
                _ = self.shutdown.wait() => break,
            };
            if !self.take_live(&feed).await {
                break;
            }
            if self.next_reconcile.is_some_and(|t| t <= Instant::now()) {
                self.reconcile(&feed).await;
            }
            self.retry_due().await;
        }
        let _ = saver.await;
        self.statuses.save().await;
    }

    fn next_wake(&self) -> Option<Instant> {
        let retry = self.retry.values().min().copied();
        [self.next_reconcile, retry].into_iter().flatten().min()
    }

    /// Takes one change from CIC.
    async fn apply(&mut self, change: DirectoryChange) {
        match change {
            DirectoryChange::Full(users) => {
                let fresh: BTreeMap<String, Value> = users
                    .into_iter()
                    .filter_map(|u| Some((cic_id(&u)?.to_string(), u)))
                    .collect();
                if self.next_reconcile.is_none() {
                    // The first directory: a full reconcile, now.
                    self.directory = fresh;
                    self.next_reconcile = Some(Instant::now());
                    return;
                }
                // The directory again (a new session, or the subscription's first message after
                // the paged read): only what changed meanwhile is written.
                let changed: Vec<Value> = fresh
                    .iter()
                    .filter(|(id, u)| self.directory.get(*id) != Some(*u))
                    .map(|(_, u)| u.clone())
                    .collect();
                let removed: Vec<String> = self
                    .directory
                    .keys()
                    .filter(|id| !fresh.contains_key(*id))
                    .cloned()
                    .collect();
                if !changed.is_empty() {
                    Box::pin(self.apply(DirectoryChange::Upsert(changed))).await;
                }
                if !removed.is_empty() {
                    Box::pin(self.apply(DirectoryChange::Removed(removed))).await;
                }
            }
            DirectoryChange::Upsert(users) => {
                for u in users {
                    let Some(id) = cic_id(&u).map(str::to_string) else {
                        continue;
                    };
                    if self.directory.get(&id) == Some(&u) {
                        continue;
                    }
                    self.directory.insert(id.clone(), u);
                    if self.next_reconcile.is_some() {
                        self.sync_id(&id).await;
                    }
                }
            }
            DirectoryChange::Removed(ids) => {
                for id in ids {
                    if self.directory.remove(&id).is_some() && self.next_reconcile.is_some() {
                        self.remove(&id).await;
                    }
                }
            }
        }
    }

    /// Tries again the users whose time has come.
    async fn retry_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .retry
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.retry.remove(&id);
            if self.directory.contains_key(&id) {
                self.sync_id(&id).await;
            } else {
                self.remove(&id).await;
            }
        }
    }

    /// Syncs CIC user `id` as the directory has it now, from what is known of its cloud user.
    async fn sync_id(&mut self, id: &str) {
        let Some(cic) = self.directory.get(id).cloned() else {
            return;
        };
        let known = self.cloud.get(id).cloned();
        let lookup = known.is_none();
        if let Done::Later = self.sync_user(id, &cic, known, lookup).await {
            self.retry.insert(id.to_string(), Instant::now() + RETRY_AFTER);
        }
    }

    /// Makes the cloud user of `cic` equal to it. `known`: its cloud user as last seen; `lookup`:
    /// whether to ask the cloud for it when none is known (a reconcile has listed them all).
    async fn sync_user(&mut self, id: &str, cic: &Value, known: Option<Value>, lookup: bool) -> Done {
        let d = match mapping::desired(cic, self.default_cc.as_deref()) {
            Ok(d) => d,
            Err(why) => {
                self.statuses.not_synced(id, why.to_string());
                return Done::Settled;
            }
        };
        for (property, why) in &d.dropped_phones {
            tracing::warn!(user = %id, property, why = %why, "a CIC phone number is left out of the user's sync");
        }
        let mut current = known;
        if current.is_none() && lookup {
            current = match self.find(&d).await {
                Ok(found) => found,
                Err(e) => return self.failed(id, e),
            };
        }
        // A stale version is read again and the change recomputed; a few times at most.
        for _ in 0..4 {
            let result = match &current {
                None => self.scim.create(mapping::create_body(&d)).await,
                Some(u) => {
                    let ops = mapping::diff(u, &d);
                    if ops.is_empty() {
                        return self.settled(id, u.clone(), &d);
                    }
                    let cloud_id = u["id"].as_str().unwrap_or_default().to_string();
                    let version = u["meta"]["version"].as_str().map(str::to_string);
                    self.scim
                        .patch(&cloud_id, version.as_deref(), mapping::patch_body(ops), "patch")
                        .await
                }
            };
            match result {
                Ok(u) => return self.settled(id, u, &d),
                Err(e) if e.is("invalidVers") || e.status() == Some(412) => {
                    let cloud_id = current
                        .as_ref()
                        .and_then(|u| u["id"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    current = match self.scim.get(&cloud_id).await {
                        Ok(u) => u,
                        Err(e) => return self.failed(id, e),
                    };
                }
                Err(e) if e.status() == Some(404) && current.is_some() => {
                    // Deleted in the cloud meanwhile: look again (and create if gone).
                    self.cloud.remove(id);
                    current = match self.find(&d).await {
                        Ok(found) => found,
                        Err(e) => return self.failed(id, e),
                    };
                }
                Err(e) if e.is("uniqueness") || e.status() == Some(409) => {
                    // Perhaps our own earlier create, whose answer was lost: adopt it if so.
                    match self.scim.find("userName", &d.user_name).await {
                        Ok(Some(u)) if owned_by(&u, id) && current.is_none() => current = Some(u),
                        Ok(other) => {
                            let whose = other
                                .as_ref()
                                .and_then(|u| u["externalId"].as_str())
                                .map(|x| format!(" (CIC user {x})"))
                                .unwrap_or_default();
                            return self.refused(
                                id,
                                format!("the email {} belongs to another cloud user{whose}", d.user_name),
                                e,
                            );
                        }
                        Err(e) => return self.failed(id, e),
                    }
                }
                Err(e) => return self.failed(id, e),
            }
        }
        self.statuses.error(
            id,
            "the cloud user kept changing under the sync (invalidVers); tried again later".into(),
            None,
            None,
        );
        Done::Later
    }

    /// The cloud user `d` is: by `externalId`, else by `userName` if no other CIC user owns it.
    async fn find(&self, d: &Desired) -> Result<Option<Value>, ScimError> {
        if let Some(u) = self.scim.find("externalId", &d.external_id).await? {
            return Ok(Some(u));
        }
        Ok(self
            .scim
            .find("userName", &d.user_name)
            .await?
            .filter(|u| owned_by(u, &d.external_id)))
    }

    fn settled(&mut self, id: &str, u: Value, d: &Desired) -> Done {
        let cloud_id = u["id"].as_str().unwrap_or_default().to_string();
        self.statuses.synced(id, &cloud_id, &d.user_name);
        self.cloud.insert(id.to_string(), u);
        self.retry.remove(id);
        Done::Synced
    }

    fn refused(&mut self, id: &str, reason: String, e: ScimError) -> Done {
        let (message, corr) = match &e {
            ScimError::Refused {
                detail, correlation_id, ..
            } => (
                Some(detail.clone()),
                Some(correlation_id.clone()).filter(|c| !c.is_empty()),
            ),
            _ => (None, None),
        };
        tracing::warn!(user = %id, reason = %reason, error = %e, "a CIC user cannot be synced");
        self.statuses.error(id, reason, message, corr);
        Done::Settled
    }

    fn failed(&mut self, id: &str, e: ScimError) -> Done {
        match e {
            ScimError::Stopped => Done::Later,
            ScimError::Unavailable(_) => {
                let reason = format!("{e}; trying again");
                tracing::warn!(user = %id, error = %e, "a CIC user's sync waits for Genesys Cloud");
                self.statuses.error(id, reason, None, None);
                Done::Later
            }
            ScimError::Refused { status, .. } => {
                self.refused(id, format!("Genesys Cloud refused the write (HTTP {status})"), e)
            }
        }
    }

    /// CIC user `id` was removed: its cloud user is deactivated, deleted or kept.
    async fn remove(&mut self, id: &str) {
        let cloud_id = match self.cloud.get(id).and_then(|u| u["id"].as_str()) {
            Some(c) => Some(c.to_string()),
            None => self
                .statuses
                .get(id)
                .filter(|u| u.state != super::status::State::Removed)
                .and_then(|u| u.cloud_id),
        };
        let Some(cloud_id) = cloud_id else {
            // Never synced (or not by this conduit): nothing in the cloud to change.
            self.statuses.removed(id, "removed from CIC; it had no cloud user");
            return;
        };
        let done = match self.cfg.removed {
            RemovedUsers::Keep => Ok("removed from CIC; its cloud user is kept (users.removed = \"keep\")"),
            RemovedUsers::Delete => self
                .scim
                .delete(&cloud_id)
                .await
                .map(|_| "removed from CIC; its cloud user was deleted"),
            RemovedUsers::Deactivate => self.deactivate(id, &cloud_id).await,
        };
        match done {
            Ok(what) => {
                self.cloud.remove(id);
                self.retry.remove(id);
                self.statuses.removed(id, what);
            }
            Err(e) => {
                if let Done::Later = self.failed(id, e) {
                    self.retry.insert(id.to_string(), Instant::now() + RETRY_AFTER);
                }
            }
        }
    }

    async fn deactivate(&mut self, id: &str, cloud_id: &str) -> Result<&'static str, ScimError> {
        const DONE: &str = "removed from CIC; its cloud user was deactivated";
        let mut current = match self.cloud.get(id).cloned() {
            Some(u) => Some(u),
            None => self.scim.get(cloud_id).await?,
        };
        for _ in 0..4 {
            let Some(u) = &current else {
                return Ok("removed from CIC; its cloud user no longer exists");
            };
            if u["active"] == Value::Bool(false) {
                return Ok(DONE);
            }
            let version = u["meta"]["version"].as_str().map(str::to_string);
            match self
                .scim
                .patch(cloud_id, version.as_deref(), mapping::deactivate(), "deactivate")
                .await
            {
                Ok(_) => return Ok(DONE),
                Err(e) if e.is("invalidVers") || e.status() == Some(412) => current = self.scim.get(cloud_id).await?,
                Err(e) if e.status() == Some(404) => current = None,
                Err(e) => return Err(e),
            }
        }
        Err(ScimError::Unavailable(
            "the cloud user kept changing (invalidVers)".into(),
        ))
    }
}

/// Whether cloud user `u` may be CIC user `id`'s: its `externalId` is `id`, or it has none.
pub(super) fn owned_by(u: &Value, id: &str) -> bool {
    match u["externalId"].as_str() {
        None | Some("") => true,
        Some(x) => x == id,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cloud_user_is_adopted_only_without_another_owner() {
        assert!(owned_by(&json!({"userName": "x@example.com"}), "jdoe"));
        assert!(owned_by(&json!({"externalId": "jdoe"}), "jdoe"));
        assert!(!owned_by(&json!({"externalId": "JDOE"}), "jdoe"), "case exact");
        assert!(!owned_by(&json!({"externalId": "asmith"}), "jdoe"));
    }
}

//! The full reconcile: every cloud user listed (pages of 25), every CIC user made equal, the
//! users this conduit synced that CIC no longer has removed — with CIC's live changes taken
//! between any two requests.

use std::collections::HashMap;

use serde_json::Value;
use tokio::time::Instant;

use super::{Done, RETRY_AFTER, UserSync, owned_by};
use crate::users::feed::DirectoryFeed;
use crate::users::mapping;
use crate::users::scim::{MAX_PAGE, ScimError};

/// How a reconcile ended.
enum Reconciled {
    Done,
    Failed(ScimError),
}

impl UserSync {
    /// A full reconcile: lists the cloud's users, then makes each CIC user's equal, taking live
    /// changes between requests.
    pub(super) async fn reconcile(&mut self, feed: &DirectoryFeed) {
        let started = std::time::Instant::now();
        self.next_reconcile = Some(Instant::now() + self.cfg.reconcile_interval());
        let result = self.reconcile_once(feed).await;
        self.metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Reconciled::Done => {
                self.metrics.reconciles.with_label_values(&["done"]).inc();
                self.statuses.reconciled();
                tracing::info!(
                    users = self.directory.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "users reconciled with the organization"
                );
            }
            Reconciled::Failed(ScimError::Stopped) => {}
            Reconciled::Failed(e) => {
                self.metrics.reconciles.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %e, "the user reconcile could not finish; trying again shortly");
                self.next_reconcile = Some(Instant::now() + RETRY_AFTER);
            }
        }
        self.statuses.save().await;
    }

    async fn reconcile_once(&mut self, feed: &DirectoryFeed) -> Reconciled {
        // The cloud's users, by externalId and by userName.
        let mut by_ext: HashMap<String, Value> = HashMap::new();
        let mut by_name: HashMap<String, Value> = HashMap::new();
        let mut start = 1;
        loop {
            if !self.take_live(feed).await {
                return Reconciled::Failed(ScimError::Stopped);
            }
            let page = match self.scim.page(start, MAX_PAGE).await {
                Ok(p) => p,
                Err(e) => return Reconciled::Failed(e),
            };
            let n = page.users.len();
            for u in page.users {
                if let Some(ext) = u["externalId"].as_str().filter(|s| !s.is_empty()) {
                    by_ext.insert(ext.to_string(), u.clone());
                }
                if let Some(name) = u["userName"].as_str() {
                    by_name.insert(name.to_ascii_lowercase(), u);
                }
            }
            start += n;
            if n == 0 || start > page.total {
                break;
            }
        }
        // What was just listed replaces what was known; live writes from here on update it.
        self.cloud = by_ext.clone();
        let ids: Vec<String> = self.directory.keys().cloned().collect();
        for id in &ids {
            if !self.take_live(feed).await {
                return Reconciled::Failed(ScimError::Stopped);
            }
            let Some(cic) = self.directory.get(id).cloned() else {
                continue;
            };
            let by_email = mapping::desired(&cic, self.default_cc.as_deref())
                .ok()
                .and_then(|d| by_name.get(&d.user_name.to_ascii_lowercase()));
            let known = match (self.cloud.get(id), by_email) {
                (Some(u), _) => Some(u.clone()),
                (None, Some(u)) if owned_by(u, id) => Some(u.clone()),
                (None, Some(u)) => {
                    // The email is another CIC user's cloud user: an error, without a request.
                    let whose = u["externalId"].as_str().unwrap_or_default();
                    let email = u["userName"].as_str().unwrap_or_default();
                    self.statuses.error(
                        id,
                        format!("the email {email} belongs to another cloud user (CIC user {whose})"),
                        None,
                        None,
                    );
                    continue;
                }
                (None, None) => None,
            };
            match self.sync_user(id, &cic, known, false).await {
                Done::Later => {
                    if self.shutdown.is_triggered() {
                        return Reconciled::Failed(ScimError::Stopped);
                    }
                    self.retry.insert(id.clone(), Instant::now() + RETRY_AFTER);
                }
                Done::Synced | Done::Settled => {}
            }
        }
        // Users this conduit synced that CIC no longer has.
        let gone: Vec<String> = self
            .statuses
            .known_cloud_ids()
            .into_keys()
            .filter(|id| !self.directory.contains_key(id))
            .collect();
        for id in gone {
            self.remove(&id).await;
        }
        Reconciled::Done
    }

    /// Applies the live changes waiting; false on shutdown.
    pub(super) async fn take_live(&mut self, feed: &DirectoryFeed) -> bool {
        // A new whole directory during a reconcile replaces the one being reconciled; the
        // reconcile goes on with it.
        for c in feed.take() {
            self.apply(c).await;
        }
        self.retry_due().await;
        !self.shutdown.is_triggered()
    }
}

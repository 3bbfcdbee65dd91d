//! Per-user sync status, for the admin: every CIC user is Synced (with when), in Error (the
//! reason, the cloud's message and correlation id), Not synced (why) or Removed (from CIC, and
//! what was done in the cloud). Kept in memory for `/health` and the presence sink (which cloud
//! user a CIC user is), and in `<data_dir>/users.json` — replaced atomically, so a crash leaves
//! the previous or the new file, never half of one — for `cic-conduit users status` and the next
//! start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::metrics::UsersMetrics;

/// The file's name in the data directory.
pub const FILE: &str = "users.json";

/// The file's format version.
const VERSION: u32 = 1;

/// Where a CIC user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The cloud user equals the CIC user.
    Synced,
    /// The last write failed; see the reason.
    Error,
    /// The mapping leaves it out (no business email, ...).
    NotSynced,
    /// Removed from CIC; the cloud user was deactivated, deleted or kept as configured.
    Removed,
}

impl State {
    /// Its name in metrics, `/health` and the listing.
    pub fn label(self) -> &'static str {
        match self {
            State::Synced => "synced",
            State::Error => "error",
            State::NotSynced => "not_synced",
            State::Removed => "removed",
        }
    }
}

/// One CIC user's sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// Where it stands.
    pub state: State,
    /// The cloud user's id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// The business email it is synced as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// When the cloud user was last confirmed equal (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<String>,
    /// Why it is in error, not synced or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The cloud's own message, when it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The refusal's `ININ-Correlation-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// When this status was set (ISO-8601).
    pub since: String,
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    version: u32,
    users: BTreeMap<String, UserStatus>,
}

/// Counts by state, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Synced.
    pub synced: usize,
    /// In error.
    pub error: usize,
    /// Not synced.
    pub not_synced: usize,
    /// Removed from CIC.
    pub removed: usize,
    /// Up to five users in error, with their reasons.
    pub errors: Vec<(String, String)>,
    /// When the last full reconcile ended (ISO-8601).
    pub last_reconcile: Option<String>,
}

struct Inner {
    users: BTreeMap<String, UserStatus>,
    /// Users by state, kept as they change (a reconcile sets ten thousand statuses: counting
    /// them all again each time would cost the square of that).
    counts: [usize; 4],
    dirty: bool,
    last_reconcile: Option<String>,
}

impl State {
    fn index(self) -> usize {
        self as usize
    }
}

const STATES: [State; 4] = [State::Synced, State::Error, State::NotSynced, State::Removed];

/// Every CIC user's status, shared by user sync (which writes it), the presence sink and
/// `/health` (which read it).
pub struct Statuses {
    path: PathBuf,
    inner: Mutex<Inner>,
    metrics: UsersMetrics,
}

fn now() -> String {
    crate::timefmt::format_timestamp_ms(crate::timefmt::now_ms())
}

/// Reads a status file; an absent one is empty.
pub fn read(data_dir: &Path) -> std::io::Result<BTreeMap<String, UserStatus>> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<FileForm>(&bytes)
            .map(|f| f.users)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

impl Statuses {
    /// The statuses kept in `data_dir` (empty when there are none, or when the file cannot be
    /// read — logged; a reconcile rebuilds them).
    pub fn open(data_dir: &Path, metrics: UsersMetrics) -> Self {
        let users = read(data_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the user sync status file cannot be read; starting without it");
            BTreeMap::new()
        });
        let mut counts = [0; 4];
        for u in users.values() {
            counts[u.state.index()] += 1;
        }
        let s = Statuses {
            path: data_dir.join(FILE),
            inner: Mutex::new(Inner {
                users,
                counts,
                dirty: false,
                last_reconcile: None,
            }),
            metrics,
        };
        s.count(&counts);
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    /// The status of CIC user `id`.
    pub fn get(&self, id: &str) -> Option<UserStatus> {
        self.lock().users.get(id).cloned()
    }

    /// The cloud user id of CIC user `id`, while it has one (synced, or in error after it was).
    pub fn cloud_id(&self, id: &str) -> Option<String> {
        self.lock()
            .users
            .get(id)
            .filter(|u| matches!(u.state, State::Synced | State::Error))
            .and_then(|u| u.cloud_id.clone())
    }

    /// Every user's status.
    pub fn all(&self) -> BTreeMap<String, UserStatus> {
        self.lock().users.clone()
    }

    /// CIC user ids this conduit has synced to a cloud user (and not yet removed).
    pub fn known_cloud_ids(&self) -> BTreeMap<String, String> {
        self.lock()
            .users
            .iter()
            .filter(|(_, u)| u.state != State::Removed)
            .filter_map(|(id, u)| Some((id.clone(), u.cloud_id.clone()?)))
            .collect()
    }

    /// Sets `id`'s status (keeping what the new one does not say: the cloud id, the last sync).
    pub fn set(&self, id: &str, mut status: UserStatus) {
        let mut g = self.lock();
        if let Some(old) = g.users.get(id) {
            if status.cloud_id.is_none() && status.state != State::NotSynced {
                status.cloud_id = old.cloud_id.clone();
            }
            if status.last_synced.is_none() {
                status.last_synced = old.last_synced.clone();
            }
            if status.user_name.is_none() {
                status.user_name = old.user_name.clone();
            }
            // The same status again does not make the file dirty.
            if old.state == status.state
                && old.cloud_id == status.cloud_id
                && old.reason == status.reason
                && old.message == status.message
                && status.state != State::Synced
            {
                return;
            }
        }
        let new = status.state.index();
        if let Some(old) = g.users.insert(id.to_string(), status) {
            g.counts[old.state.index()] -= 1;
        }
        g.counts[new] += 1;
        g.dirty = true;
        let counts = g.counts;
        drop(g);
        self.count(&counts);
    }

    /// `id` is synced as cloud user `cloud_id` with email `user_name`.
    pub fn synced(&self, id: &str, cloud_id: &str, user_name: &str) {
        let at = now();
        self.set(
            id,
            UserStatus {
                state: State::Synced,
                cloud_id: Some(cloud_id.to_string()),
                user_name: Some(user_name.to_string()),
                last_synced: Some(at.clone()),
                reason: None,
                message: None,
                correlation_id: None,
                since: at,
            },
        );
    }

    /// `id` is in error: `reason`, with the cloud's `message` and `correlation_id` if it refused.
    pub fn error(&self, id: &str, reason: String, message: Option<String>, correlation_id: Option<String>) {
        self.set(
            id,
            UserStatus {
                state: State::Error,
                cloud_id: None,
                user_name: None,
                last_synced: None,
                reason: Some(reason),
                message,
                correlation_id,
                since: now(),
            },
        );
    }

    /// `id` is left out by the mapping, for `reason`.
    pub fn not_synced(&self, id: &str, reason: String) {
        self.set(
            id,
            UserStatus {
                state: State::NotSynced,
                cloud_id: None,
                user_name: None,
                last_synced: None,
                reason: Some(reason),
                message: None,
                correlation_id: None,
                since: now(),
            },
        );
    }

    /// `id` was removed from CIC; `what` was done in the cloud.
    pub fn removed(&self, id: &str, what: &str) {
        self.set(
            id,
            UserStatus {
                state: State::Removed,
                cloud_id: None,
                user_name: None,
                last_synced: None,
                reason: Some(what.to_string()),
                message: None,
                correlation_id: None,
                since: now(),
            },
        );
    }

    /// Notes the end of a full reconcile.
    pub fn reconciled(&self) {
        self.lock().last_reconcile = Some(now());
    }

    /// The users `keep` passes, by id: at most `limit` of them, and how many passed.
    pub fn select(&self, keep: impl Fn(&str, &UserStatus) -> bool, limit: usize) -> (Vec<(String, UserStatus)>, usize) {
        let g = self.lock();
        let mut shown = Vec::new();
        let mut matching = 0;
        for (id, u) in g.users.iter().filter(|(id, u)| keep(id, u)) {
            matching += 1;
            if shown.len() < limit {
                shown.push((id.clone(), u.clone()));
            }
        }
        (shown, matching)
    }

    /// Counts by state, and the first users in error.
    pub fn summary(&self) -> Summary {
        let g = self.lock();
        let c = g.counts;
        let errors = if c[State::Error.index()] == 0 {
            Vec::new()
        } else {
            g.users
                .iter()
                .filter(|(_, u)| u.state == State::Error)
                .take(5)
                .map(|(id, u)| (id.clone(), u.reason.clone().unwrap_or_default()))
                .collect()
        };
        Summary {
            synced: c[State::Synced.index()],
            error: c[State::Error.index()],
            not_synced: c[State::NotSynced.index()],
            removed: c[State::Removed.index()],
            errors,
            last_reconcile: g.last_reconcile.clone(),
        }
    }

    fn count(&self, counts: &[usize; 4]) {
        for s in STATES {
            self.metrics
                .users
                .with_label_values(&[s.label()])
                .set(counts[s.index()] as i64);
        }
    }

    /// Writes the file if anything changed since the last save.
    pub async fn save(&self) {
        let form = {
            let mut g = self.lock();
            if !g.dirty {
                return;
            }
            g.dirty = false;
            FileForm {
                version: VERSION,
                users: g.users.clone(),
            }
        };
        let path = self.path.clone();
        // Encoded and written off the async threads: ten thousand users are a few MiB.
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec_pretty(&form).map_err(std::io::Error::other)?;
            crate::source::carry::write(&path, &bytes)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            self.lock().dirty = true;
            tracing::warn!(path = %self.path.display(), "cannot save the user sync status; trying again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statuses_survive_a_restart_and_count_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let m = crate::metrics::Metrics::new();
        let s = Statuses::open(dir.path(), m.users.clone());
        s.synced("jdoe", "c-1", "jdoe@example.com");
        s.not_synced("nomail", "not synced: no business email".into());
        s.error(
            "taken",
            "the email belongs to another cloud user".into(),
            Some("taken".into()),
            Some("corr".into()),
        );
        s.save().await;
        let again = Statuses::open(dir.path(), m.users.clone());
        assert_eq!(again.all(), s.all());
        assert_eq!(again.cloud_id("jdoe").as_deref(), Some("c-1"));
        assert_eq!(again.cloud_id("taken"), None);
        let sum = again.summary();
        assert_eq!((sum.synced, sum.error, sum.not_synced), (1, 1, 1));
        assert_eq!(m.users.users.with_label_values(&["error"]).get(), 1);
        // An error keeps the cloud id it had, for the presence sink and the next try.
        again.error("jdoe", "down".into(), None, None);
        assert_eq!(again.get("jdoe").unwrap().cloud_id.as_deref(), Some("c-1"));
    }
}

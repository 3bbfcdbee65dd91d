//! `[users]`: CIC users and their statuses kept in sync with the paired organization.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::default_true;

/// What becomes of a cloud user whose CIC user was removed.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedUsers {
    /// `active: false` (default): the user and its history stay.
    #[default]
    Deactivate,
    /// Deleted from the organization.
    Delete,
    /// Left as it is.
    Keep,
}

/// User and status sync.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// Sync CIC users to the organization over SCIM (needs `sources.icws` and the OAuth client).
    #[serde(default)]
    pub enabled: bool,
    /// How often a full reconcile repairs drift (ms); one also runs at start.
    #[serde(default = "default_reconcile_interval_ms")]
    pub reconcile_interval_ms: u64,
    /// A user removed from CIC: `deactivate` (default), `delete` or `keep`.
    #[serde(default)]
    pub removed: RemovedUsers,
    /// Users read from CIC's directory per request (`Range: items=a-b`).
    #[serde(default = "default_directory_page")]
    pub directory_page: usize,
    /// Send CIC statuses as Genesys Cloud presence.
    #[serde(default = "default_true")]
    pub statuses: bool,
    /// The presence source the events name (`cic-conduit setup` creates it and prints its id).
    #[serde(default)]
    pub presence_source_id: Option<String>,
    /// CIC status id → system presence (`Available`, `Busy`, `Away`, `Break`, `Meal`, `Meeting`,
    /// `Training`, `Offline`, `Idle`); looked up before the defaults.
    #[serde(default)]
    pub status_map: BTreeMap<String, String>,
    /// How long a status of a user not yet in the organization waits for the user (ms) before
    /// it is dead-lettered.
    #[serde(default = "default_status_wait_ms")]
    pub status_wait_ms: u64,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            enabled: false,
            reconcile_interval_ms: default_reconcile_interval_ms(),
            removed: RemovedUsers::default(),
            directory_page: default_directory_page(),
            statuses: true,
            presence_source_id: None,
            status_map: BTreeMap::new(),
            status_wait_ms: default_status_wait_ms(),
        }
    }
}

impl UsersConfig {
    /// `reconcile_interval_ms` as a duration.
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms)
    }
}

fn default_reconcile_interval_ms() -> u64 {
    3_600_000
}
fn default_directory_page() -> usize {
    100
}
fn default_status_wait_ms() -> u64 {
    600_000
}

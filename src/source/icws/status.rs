//! What the ICWS source shows of itself: its CIC connection and role, shared with `/health`.

/// The CIC connection as `/health` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IcwsHealth {
    /// Whether a session is up.
    pub connected: bool,
    /// The server of the session (or the last one tried).
    pub host: Option<String>,
    /// `icServer` from the login answer.
    pub ic_server: Option<String>,
    /// The hosts of the switchover pair known so far.
    pub pair: Vec<String>,
    /// Seconds since the session started.
    pub session_age_secs: Option<u64>,
    /// Seconds since the last message arrived.
    pub last_message_secs_ago: Option<u64>,
    /// The last failure (never a secret).
    pub last_error: Option<String>,
    /// Reading CIC, or standing by.
    pub role: Role,
    /// The server's `switchover-status` answer, as read at login.
    pub switchover: Option<serde_json::Value>,
}

/// Whether this conduit reads CIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reading CIC.
    #[default]
    Active,
    /// The own server is the backup of its pair: reading nothing.
    Standby,
}

/// Shared between the source and `/health`.
#[derive(Debug, Default)]
pub struct IcwsStatus {
    inner: std::sync::Mutex<StatusInner>,
}

#[derive(Debug, Default)]
pub(super) struct StatusInner {
    pub(super) connected: bool,
    pub(super) host: Option<String>,
    pub(super) ic_server: Option<String>,
    pub(super) pair: Vec<String>,
    pub(super) since: Option<std::time::Instant>,
    pub(super) last_message: Option<std::time::Instant>,
    pub(super) last_error: Option<String>,
    pub(super) standby: bool,
    pub(super) switchover: Option<serde_json::Value>,
}

impl IcwsStatus {
    pub(super) fn update(&self, f: impl FnOnce(&mut StatusInner)) {
        f(&mut crate::locks::lock(&self.inner));
    }

    /// The `/health` view.
    pub fn health(&self) -> IcwsHealth {
        let g = crate::locks::lock(&self.inner);
        IcwsHealth {
            connected: g.connected,
            host: g.host.clone(),
            ic_server: g.ic_server.clone(),
            pair: g.pair.clone(),
            session_age_secs: g.since.filter(|_| g.connected).map(|t| t.elapsed().as_secs()),
            last_message_secs_ago: g.last_message.map(|t| t.elapsed().as_secs()),
            last_error: g.last_error.clone(),
            role: if g.standby { Role::Standby } else { Role::Active },
            switchover: g.switchover.clone(),
        }
    }

    /// Whether the conduit stands by for its pair.
    pub fn is_standby(&self) -> bool {
        crate::locks::lock(&self.inner).standby
    }
}

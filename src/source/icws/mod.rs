//! The ICWS source: reads interaction changes straight from the CIC server, logged in as the
//! configured user (PureCloudAdmin by default), the way the vendor's bridge does.
//!
//! It logs in at the first configured host that accepts (following a backup's
//! `alternateHostList`, and remembering the pair's hosts from a successful login), subscribes to
//! the configured workgroup and user queues with the attributes the normalizer needs (and, for
//! user sync, reads the user directory and subscribes to its changes and statuses: [`people`]), and reads
//! messages from the server-sent-events stream when the server's `messaging` feature is version
//! 2 or more (and `event_stream` is on), otherwise by polling — the next poll only after the
//! previous answer, `poll_interval_ms` apart. A stream quiet for [`STREAM_IDLE`] (no message, no
//! ping) counts as lost. Every
//! message's interaction entries go through the shared [`Ingest`] (normalizer → buffer); a batch
//! the buffer cannot take yet is retried until it is stored, because ICWS has already handed
//! those messages over. After a 401, a connection-down message or a failed call it logs in again
//! with capped, jittered backoff; the `isDelta:false` snapshot after re-subscribing yields no
//! event for a change already emitted (the normalizer's state and deterministic ids see to that)
//! and does yield what changed while disconnected, as states found (see [`crate::normalize`])
//! — including the end of an interaction that left the queues meanwhile ([`members`]), also
//! across a restart of the conduit ([`crate::source::carry`]).

pub mod client;
mod handle;
pub mod members;
pub mod messages;
pub mod people;
pub mod sse;
mod status;

pub use status::{IcwsHealth, IcwsStatus, Role};

use std::sync::Arc;
use std::time::Duration;

use crate::config::{HaConfig, HaMode, IcwsSourceConfig, Secret};
use crate::metrics::IcwsMetrics;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::source::Ingest;
use client::{IcwsError, Session};

/// A session that lasted this long resets the login backoff.
pub const SESSION_HEALTHY: Duration = Duration::from_secs(30);

/// A stream with neither a message nor a ping for this long is taken as lost.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);

/// How often, while a session lasts, the pair's `switchover-status` is read again (for
/// `/health`).
pub const SWITCHOVER_REFRESH: Duration = Duration::from_secs(30);

/// The attributes subscribed: everything the normalizer maps.
pub const ATTRIBUTES: [&str; crate::normalize::attrs::KNOWN] = crate::normalize::attrs::NAMES;

enum Handled {
    Continue,
    /// End the session: `None` on shutdown, else the reason.
    Stop(Option<&'static str>),
}

/// The source.
pub struct IcwsSource {
    /// Its settings.
    cfg: IcwsSourceConfig,
    /// The resolved password.
    password: Secret,
    /// HTTP client (TLS verified).
    http: reqwest::Client,
    /// Where observations go.
    ingest: Arc<Ingest>,
    /// Metrics.
    metrics: IcwsMetrics,
    /// The sources' shared metrics (`conduit_source_events_*{source="icws"}`).
    source_metrics: crate::metrics::SourceMetrics,
    /// Stop signal.
    shutdown: Shutdown,
    /// What `/health` shows.
    status: Arc<IcwsStatus>,
    /// Switchover-pair behaviour.
    ha: HaConfig,
    /// The interactions in the watched queues (shared with what is carried over a restart).
    members: Arc<members::Members>,
    /// CIC's users and statuses, when user sync runs.
    people: Option<people::People>,
    /// User-sync metrics (statuses read).
    users_metrics: crate::metrics::UsersMetrics,
    /// Ingesting switched on: while off, no session (logged out, waiting).
    enabled: crate::switch::Switch,
}

/// Why a session ends when ingest is switched off (not a lost session: not counted).
const SWITCHED_OFF: &str = "switched_off";

impl IcwsSource {
    /// The ICWS source: reads `cfg`'s servers with `password` into `ingest`, following `ha`;
    /// `members` is the watched-queue view (carried over restarts).
    pub fn new(
        cfg: IcwsSourceConfig,
        password: Secret,
        ha: HaConfig,
        ingest: Arc<Ingest>,
        metrics: &crate::metrics::Metrics,
        shutdown: Shutdown,
        members: Arc<members::Members>,
    ) -> Result<Self, crate::config::ConfigError> {
        // Alerts read these: they exist from start-up at zero.
        for reason in ["transport", "unauthorized", "refused", "bad_answer", "stream_idle"] {
            metrics.icws.reconnects.with_label_values(&[reason]);
        }
        metrics.source.rejected.with_label_values(&["icws", "too_large"]);
        Ok(IcwsSource {
            http: client::http_client(cfg.ca_file.as_deref(), cfg.proxy.as_ref())?,
            cfg,
            password,
            ingest,
            metrics: metrics.icws.clone(),
            source_metrics: metrics.source.clone(),
            shutdown,
            status: Arc::new(IcwsStatus::default()),
            ha,
            members,
            people: None,
            users_metrics: metrics.users.clone(),
            enabled: crate::switch::Switch::new(true),
        })
    }

    /// Follows `enabled`: while it is off, logged out and waiting.
    pub fn with_switch(mut self, enabled: crate::switch::Switch) -> Self {
        self.enabled = enabled;
        self
    }

    /// Also reads CIC's users (and their statuses) for user sync.
    pub fn with_people(mut self, people: people::People) -> Self {
        self.people = Some(people);
        self
    }

    /// What `/health` shows about it.
    pub fn status(&self) -> Arc<IcwsStatus> {
        self.status.clone()
    }

    /// Runs until shutdown.
    pub async fn run(self) {
        let mut hosts: Vec<String> = self.cfg.hosts.clone();
        let mut backoff = self.backoff();
        while !self.shutdown.is_triggered() {
            if !self.enabled.is_on() {
                tracing::info!("ingest is switched off: no ICWS session until it is on again");
                self.status
                    .update(|st| st.last_error = Some("ingest is switched off (enabled = false)".into()));
                tokio::select! {
                    _ = self.enabled.until(true) => {
                        tracing::info!("ingest is switched on: logging in to ICWS");
                        continue;
                    }
                    _ = self.shutdown.wait() => return,
                }
            }
            match self.connect(&mut hosts).await {
                Ok(session) => {
                    let started = std::time::Instant::now();
                    self.set_standby(false);
                    self.metrics.connected.set(1);
                    self.status.update(|st| {
                        st.connected = true;
                        st.host = Some(session.base.clone());
                        st.ic_server = Some(session.ic_server.clone());
                        st.pair = hosts.clone();
                        st.since = Some(std::time::Instant::now());
                    });
                    tracing::info!(host = %session.base, ic_server = %session.ic_server, "ICWS session started");
                    let reason = tokio::select! {
                        r = self.serve(&session) => r,
                        never = self.refresh_while_up(&session) => match never {},
                        _ = self.enabled.until(false) => Some(SWITCHED_OFF),
                    };
                    self.metrics.connected.set(0);
                    self.status.update(|st| {
                        st.connected = false;
                        st.last_error = reason.map(|r| format!("session lost: {r}"));
                    });
                    match reason {
                        None => {
                            session.logout(&self.http).await;
                            return;
                        }
                        Some(SWITCHED_OFF) => {
                            // What changes meanwhile comes back as the queues' snapshot at the
                            // next login, as after any gap.
                            session.logout(&self.http).await;
                        }
                        Some(reason) => {
                            self.metrics.reconnects.with_label_values(&[reason]).inc();
                            tracing::warn!(host = %session.base, reason, "ICWS session lost; logging in again");
                            // A session that ended at once (say, a subscription refused) must
                            // not turn into a login loop: back off unless it had been up a while.
                            if started.elapsed() >= SESSION_HEALTHY {
                                backoff = self.backoff();
                            } else if !self.pause(backoff.next_delay()).await {
                                return;
                            }
                        }
                    }
                }
                Err(IcwsError::NotPrimary { host, .. }) if self.ha.mode == HaMode::LocalPrimary => {
                    // The own server is the backup: stand by, and look again shortly.
                    if !self.status.is_standby() {
                        tracing::info!(host = %host, "own CIC server is the backup of its pair: standing by");
                    }
                    self.set_standby(true);
                    if !self.pause(Duration::from_millis(self.ha.standby_check_ms)).await {
                        return;
                    }
                }
                Err(e) => {
                    self.metrics.reconnects.with_label_values(&[e.reason()]).inc();
                    self.status.update(|st| st.last_error = Some(e.to_string()));
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot log in to ICWS");
                    if !self.pause(delay).await {
                        return;
                    }
                }
            }
        }
    }

    fn set_standby(&self, standby: bool) {
        self.metrics.ha_role.set(i64::from(!standby));
        self.status.update(|st| st.standby = standby);
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(500),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        )
    }

    async fn pause(&self, d: Duration) -> bool {
        self.shutdown.sleep(d).await
    }

    /// Logs in at the first host that accepts; a backup's alternates are tried too and
    /// remembered, as are the pair's hosts from a successful login.
    async fn connect(&self, hosts: &mut Vec<String>) -> Result<Session, IcwsError> {
        let mut last = None;
        let mut tried = 0;
        let mut i = 0;
        // Local-primary reads only the own server (the first host).
        let limit = if self.ha.mode == HaMode::LocalPrimary { 1 } else { 8 };
        while i < hosts.len() && tried < limit {
            let base = hosts[i].clone();
            tried += 1;
            if !client::may_send_password(&base, self.cfg.allow_plain_http) {
                // An alternate named by the pair over plain HTTP to another machine.
                tracing::warn!(host = %base, "not logging in over plain HTTP to a host that is not loopback (sources.icws.allow_plain_http)");
                last = Some(IcwsError::BadAnswer(format!(
                    "refusing to send the password in clear to {base}; use https:// or set sources.icws.allow_plain_http = true"
                )));
                i += 1;
                continue;
            }
            match client::login(
                &self.http,
                &base,
                &self.cfg.application_name,
                &self.cfg.user,
                &self.password,
            )
            .await
            {
                Ok(s) => {
                    for alt in &s.alternates {
                        let url = client::with_host(&base, alt);
                        if !hosts.contains(&url) {
                            hosts.push(url);
                        }
                    }
                    return Ok(s);
                }
                Err(IcwsError::NotPrimary { host, alternates }) => {
                    for alt in &alternates {
                        let url = client::with_host(&base, alt);
                        if !hosts.contains(&url) {
                            hosts.push(url);
                        }
                    }
                    last = Some(IcwsError::NotPrimary { host, alternates });
                }
                Err(e) => last = Some(e),
            }
            i += 1;
        }
        Err(last.unwrap_or_else(|| IcwsError::BadAnswer("no ICWS host configured".into())))
    }

    /// Now and every [`SWITCHOVER_REFRESH`], for as long as it is polled (the session's life):
    /// reads the pair's state for `/health`. A server without switchover answers an error:
    /// ignored, as is a failure here — the session's own calls notice a lost session.
    async fn refresh_while_up(&self, s: &Session) -> std::convert::Infallible {
        loop {
            if let Ok(v) = s.switchover_status(&self.http).await {
                self.status.update(|st| st.switchover = Some(v));
            }
            tokio::time::sleep(SWITCHOVER_REFRESH).await;
        }
    }

    /// Subscribes and polls until the session ends; `None` on shutdown, else why it ended.
    async fn serve(&self, s: &Session) -> Option<&'static str> {
        let mut queues: Vec<(u8, String)> = self.cfg.workgroups.iter().map(|w| (2, w.clone())).collect();
        queues.extend(self.cfg.user_queues.iter().map(|u| (1, u.clone())));
        if let Err(e) = s
            .subscribe_queues(&self.http, "cic-conduit", &queues, &ATTRIBUTES)
            .await
        {
            tracing::error!(error = %e, "cannot subscribe to the ICWS queues");
            return Some(e.reason());
        }
        if let Err(e) = self.follow_people(s).await {
            tracing::error!(error = %e, "cannot read CIC's users");
            return Some(e.reason());
        }
        if self.cfg.event_stream && s.messaging_version >= 2 {
            return self.stream(s).await;
        }
        let interval = Duration::from_millis(self.cfg.poll_interval_ms);
        loop {
            let polled = tokio::select! {
                r = s.poll(&self.http) => r,
                _ = self.shutdown.wait() => return None,
            };
            let msgs = match polled {
                Ok(m) => m,
                Err(e) => return Some(e.reason()),
            };
            match self.handle(s, &msgs).await {
                Handled::Continue => {}
                Handled::Stop(reason) => return reason,
            }
            if !self.pause(interval).await {
                return None;
            }
        }
    }

    /// Reads the event stream until it ends; `None` on shutdown, else why it ended.
    async fn stream(&self, s: &Session) -> Option<&'static str> {
        let mut resp = match s.open_stream(&self.http).await {
            Ok(r) => r,
            Err(e) => return Some(e.reason()),
        };
        let mut parser = sse::SseParser::new(messages::MAX_MESSAGE_BYTES);
        let mut events = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(STREAM_IDLE, resp.chunk()) => c,
                _ = self.shutdown.wait() => return None,
            };
            let bytes = match chunk {
                Err(_) => return Some("stream_idle"),
                Ok(Err(_)) => return Some("transport"),
                Ok(Ok(None)) => return Some("stream_ended"),
                Ok(Ok(Some(b))) => b,
            };
            let fed = parser.feed(&bytes, &mut events);
            let mut msgs = Vec::with_capacity(events.len());
            for data in events.drain(..) {
                match serde_json::from_slice::<serde_json::Value>(&data) {
                    Ok(v) => msgs.push(v),
                    Err(e) => {
                        self.metrics.messages.with_label_values(&["malformed"]).inc();
                        tracing::warn!(session = %s.id, error = %e, "an ICWS event is not JSON; skipped");
                    }
                }
            }
            if let Err(e) = fed {
                self.metrics.messages.with_label_values(&["malformed"]).inc();
                tracing::warn!(session = %s.id, error = %e, "an ICWS event exceeds the size limit; reconnecting");
                if let Handled::Stop(reason) = self.handle(s, &msgs).await {
                    return reason;
                }
                return Some("oversized");
            }
            if let Handled::Stop(reason) = self.handle(s, &msgs).await {
                return reason;
            }
        }
    }
}

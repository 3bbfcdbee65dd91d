//! Start-up checks of a parsed [`Config`] that types alone cannot express; every error names
//! its key and what is allowed.

use std::net::SocketAddr;

use super::region::{self, region_domain};
use super::{Config, ConfigError};

/// The shortest push token accepted.
pub const MIN_PUSH_TOKEN_CHARS: usize = 16;

impl Config {
    /// Checks what types alone cannot; every error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cic_server.trim().is_empty() {
            return Err(ConfigError::invalid("cic_server", "must not be empty"));
        }
        self.listen_addr()?;
        let sv = &self.server;
        if sv.max_connections == 0 {
            return Err(ConfigError::invalid("server.max_connections", "must be at least 1"));
        }
        for (key, ms) in [
            ("server.idle_timeout_ms", sv.idle_timeout_ms),
            ("server.header_timeout_ms", sv.header_timeout_ms),
            ("server.body_timeout_ms", sv.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&ms) {
                return Err(ConfigError::invalid(key, "must be from 100 to 3600000 (ms)"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::invalid(
                "log.level",
                format!(
                    "`{}` is not a log filter; use e.g. `info` or `cic_conduit=debug`",
                    self.log.level
                ),
            ));
        }
        if self.log.file_max_bytes < 64 * 1024 {
            return Err(ConfigError::invalid("log.file_max_bytes", "must be at least 65536"));
        }
        if !(1..=100).contains(&self.log.file_keep) {
            return Err(ConfigError::invalid("log.file_keep", "must be between 1 and 100"));
        }
        if self.log.file.as_ref().is_some_and(|f| f.file_name().is_none()) {
            return Err(ConfigError::invalid("log.file", "must name a file, not a directory"));
        }
        let org = &self.organization;
        if org.short_name.is_empty() || !org.short_name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::invalid(
                "organization.short_name",
                format!("`{}` must be letters and digits only", org.short_name),
            ));
        }
        if region_domain(&org.region).is_none() {
            return Err(ConfigError::invalid(
                "organization.region",
                format!(
                    "unknown region `{}`; one of: {}",
                    org.region,
                    region::names().join(", ")
                ),
            ));
        }
        for (key, url) in [
            ("organization.api_base_url", &org.api_base_url),
            ("organization.login_base_url", &org.login_base_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{u}` must start with https:// or http://"),
                ));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "must not be empty"));
        }
        let b = &self.buffer;
        if !(64 * 1024..=4 * 1024 * 1024 * 1024).contains(&b.segment_max_bytes) {
            return Err(ConfigError::invalid(
                "buffer.segment_max_bytes",
                "must be between 65536 and 4294967296",
            ));
        }
        if b.max_bytes < 2 * b.segment_max_bytes {
            return Err(ConfigError::invalid(
                "buffer.max_bytes",
                format!(
                    "must be at least twice buffer.segment_max_bytes ({})",
                    2 * b.segment_max_bytes
                ),
            ));
        }
        if b.max_record_bytes < 1024 || u64::from(b.max_record_bytes) > b.segment_max_bytes / 2 {
            return Err(ConfigError::invalid(
                "buffer.max_record_bytes",
                "must be at least 1024 and at most half of buffer.segment_max_bytes",
            ));
        }
        validate_kafka(b)?;
        let n = &self.normalize;
        if let Some(cc) = &n.default_country_code
            && (cc.is_empty() || cc.len() > 3 || !cc.chars().all(|c| c.is_ascii_digit()) || cc.starts_with('0'))
        {
            return Err(ConfigError::invalid(
                "normalize.default_country_code",
                format!("`{cc}` must be 1 to 3 digits without a leading zero, e.g. \"1\" or \"44\""),
            ));
        }
        if n.max_tracked_interactions < 100 {
            return Err(ConfigError::invalid(
                "normalize.max_tracked_interactions",
                "must be at least 100",
            ));
        }
        if n.max_attribute_value_bytes < 64 {
            return Err(ConfigError::invalid(
                "normalize.max_attribute_value_bytes",
                "must be at least 64",
            ));
        }
        let h = &self.sources.http;
        if h.enabled && h.token.is_none() {
            return Err(ConfigError::invalid(
                "sources.http.token",
                "required while sources.http.enabled = true: a string, { env = \"VAR\" } or { file = \"PATH\" }",
            ));
        }
        if h.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "sources.http.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if h.max_items == 0 {
            return Err(ConfigError::invalid("sources.http.max_items", "must be at least 1"));
        }
        if let Some(j) = &self.sinks.journey {
            self.validate_journey(j)?;
        }
        self.validate_users()?;
        if !(100..=600_000).contains(&self.ha.standby_check_ms) {
            return Err(ConfigError::invalid("ha.standby_check_ms", "must be 100 to 600000"));
        }
        let i = &self.sources.icws;
        if i.enabled {
            if i.hosts.is_empty() {
                return Err(ConfigError::invalid(
                    "sources.icws.hosts",
                    "required while sources.icws.enabled = true, e.g. [\"https://cic01:8019\"]",
                ));
            }
            if let Some(h) = i
                .hosts
                .iter()
                .find(|h| !(h.starts_with("https://") || h.starts_with("http://")))
            {
                return Err(ConfigError::invalid(
                    "sources.icws.hosts",
                    format!("`{h}` must start with https:// or http://"),
                ));
            }
            if let Some(h) = i
                .hosts
                .iter()
                .find(|h| !crate::outbound::may_send_password(h, i.allow_plain_http))
            {
                return Err(ConfigError::invalid(
                    "sources.icws.hosts",
                    format!(
                        "`{h}` would send the ICWS password in clear over the network; use https:// (port 8019), or set sources.icws.allow_plain_http = true to accept that"
                    ),
                ));
            }
            if i.password.is_none() {
                return Err(ConfigError::invalid(
                    "sources.icws.password",
                    "required while sources.icws.enabled = true: { env = \"VAR\" } or { file = \"PATH\" }",
                ));
            }
            if i.workgroups.is_empty() && i.user_queues.is_empty() {
                return Err(ConfigError::invalid(
                    "sources.icws.workgroups",
                    "name at least one workgroup (or sources.icws.user_queues) to read",
                ));
            }
            if !(100..=60_000).contains(&i.poll_interval_ms) {
                return Err(ConfigError::invalid(
                    "sources.icws.poll_interval_ms",
                    "must be 100 to 60000",
                ));
            }
            if !(1000..=3_600_000).contains(&i.reconnect_max_ms) {
                return Err(ConfigError::invalid(
                    "sources.icws.reconnect_max_ms",
                    "must be 1000 to 3600000",
                ));
            }
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let u = &self.users;
        if !u.enabled {
            return Ok(());
        }
        if !self.sources.icws.enabled {
            return Err(ConfigError::invalid(
                "users.enabled",
                "user sync reads CIC's directory through ICWS: set sources.icws.enabled = true",
            ));
        }
        let org = &self.organization;
        if org.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) || org.client_secret.is_none() {
            return Err(ConfigError::invalid(
                "organization.client_id",
                "required while users.enabled = true: the OAuth client-credentials client (with SCIM and presence permissions) and its client_secret",
            ));
        }
        if !(60_000..=86_400_000).contains(&u.reconcile_interval_ms) {
            return Err(ConfigError::invalid(
                "users.reconcile_interval_ms",
                "must be 60000 (a minute) to 86400000 (a day)",
            ));
        }
        if !(1..=1000).contains(&u.directory_page) {
            return Err(ConfigError::invalid("users.directory_page", "must be 1 to 1000"));
        }
        if !(1000..=86_400_000).contains(&u.status_wait_ms) {
            return Err(ConfigError::invalid("users.status_wait_ms", "must be 1000 to 86400000"));
        }
        crate::users::presence::check_map(&u.status_map)
            .map_err(|why| ConfigError::invalid("users.status_map", why))?;
        Ok(())
    }

    fn validate_journey(&self, j: &super::JourneySinkConfig) -> Result<(), ConfigError> {
        let org = &self.organization;
        if j.enabled {
            if org.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    "organization.client_id",
                    "required while sinks.journey is enabled: the OAuth client-credentials client id",
                ));
            }
            if org.client_secret.is_none() {
                return Err(ConfigError::invalid(
                    "organization.client_secret",
                    "required while sinks.journey is enabled: a string, { env = \"VAR\" } or { file = \"PATH\" }",
                ));
            }
        }
        let id_like = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_like(&j.configuration_id) {
            return Err(ConfigError::invalid(
                "sinks.journey.configuration_id",
                "must be the configuration id `cic-conduit setup` printed (letters, digits and -)",
            ));
        }
        if j.external_source_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "sinks.journey.external_source_id",
                "must not be empty",
            ));
        }
        let ranges: [(&str, u64, u64, u64); 7] = [
            ("sinks.journey.max_events", j.max_events as u64, 1, 1000),
            (
                "sinks.journey.max_bytes",
                j.max_bytes as u64,
                16 * 1024,
                5 * 1024 * 1024,
            ),
            ("sinks.journey.max_age_ms", j.max_age_ms, 1, 60_000),
            ("sinks.journey.concurrency", j.concurrency as u64, 1, 64),
            ("sinks.journey.request_timeout_ms", j.request_timeout_ms, 100, 600_000),
            ("sinks.journey.retry_initial_ms", j.retry_initial_ms, 1, 60_000),
            (
                "sinks.journey.max_entity_attempts",
                u64::from(j.max_entity_attempts),
                1,
                1000,
            ),
        ];
        for (key, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError::invalid(key, format!("{v} is out of range: {lo} to {hi}")));
            }
        }
        if j.retry_max_ms < j.retry_initial_ms || j.retry_max_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                "sinks.journey.retry_max_ms",
                "must be at least sinks.journey.retry_initial_ms and at most 3600000",
            ));
        }
        if !(j.rate_limit_share > 0.0 && j.rate_limit_share <= 1.0) {
            return Err(ConfigError::invalid(
                "sinks.journey.rate_limit_share",
                "must be above 0 and at most 1",
            ));
        }
        Ok(())
    }

    /// The push endpoint's bearer token, read and checked: at least [`MIN_PUSH_TOKEN_CHARS`]
    /// characters, so that it cannot be guessed.
    pub fn push_token(&self) -> Result<super::Secret, ConfigError> {
        const KEY: &str = "sources.http.token";
        let t = self
            .sources
            .http
            .token
            .as_ref()
            .ok_or_else(|| ConfigError::invalid(KEY, "required"))?
            .resolve(KEY)?;
        let n = t.expose().chars().count();
        if n < MIN_PUSH_TOKEN_CHARS {
            return Err(ConfigError::invalid(
                KEY,
                format!(
                    "the token has {n} characters; use at least {MIN_PUSH_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)"
                ),
            ));
        }
        Ok(t)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!("`{}` is not an address:port such as 127.0.0.1:8087", self.server.listen),
            )
        })
    }
}

/// `[buffer.kafka]`, with `type = "kafka"` and only then.
fn validate_kafka(b: &super::BufferConfig) -> Result<(), ConfigError> {
    use super::{BufferType, KAFKA_OWNED_PROPERTIES};
    let k = match (b.kind, &b.kafka) {
        (BufferType::Disk, None) => return Ok(()),
        (BufferType::Disk, Some(_)) => {
            return Err(ConfigError::invalid(
                "buffer.type",
                "[buffer.kafka] is set but the buffer is the disk log: add type = \"kafka\" to [buffer] (or remove [buffer.kafka])",
            ));
        }
        (BufferType::Kafka, None) => {
            return Err(ConfigError::invalid(
                "buffer.kafka",
                "type = \"kafka\" needs a [buffer.kafka] section with at least brokers = \"host:9092\"",
            ));
        }
        (BufferType::Kafka, Some(k)) => k,
    };
    if !cfg!(all(feature = "kafka", not(windows))) {
        return Err(ConfigError::invalid(
            "buffer.type",
            "this build of cic-conduit has no Kafka buffer (the Windows build has none, nor a build without the `kafka` feature): use type = \"disk\", or run a build with Kafka (Linux, the container)",
        ));
    }
    if k.brokers.split(',').any(|b| {
        let b = b.trim();
        b.is_empty()
            || b.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    }) {
        return Err(ConfigError::invalid(
            "buffer.kafka.brokers",
            format!("`{}` must be host:port, comma-separated", k.brokers),
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if k.topic.is_empty() || k.topic.len() > 249 || !k.topic.chars().all(legal) || k.topic == "." || k.topic == ".." {
        return Err(ConfigError::invalid(
            "buffer.kafka.topic",
            format!("`{}` must be 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'", k.topic),
        ));
    }
    if k.group.trim().is_empty() {
        return Err(ConfigError::invalid("buffer.kafka.group", "must not be empty"));
    }
    if k.partitions == 0 || k.partitions > 10_000 {
        return Err(ConfigError::invalid(
            "buffer.kafka.partitions",
            "must be between 1 and 10000",
        ));
    }
    if k.replication_factor == 0 {
        return Err(ConfigError::invalid(
            "buffer.kafka.replication_factor",
            "must be at least 1",
        ));
    }
    for (key, lo, hi, v) in [
        ("buffer.kafka.produce_timeout_ms", 1_000, 300_000, k.produce_timeout_ms),
        ("buffer.kafka.revoke_timeout_ms", 0, 300_000, k.revoke_timeout_ms),
        (
            "buffer.kafka.max_queued_records",
            1_000,
            10_000_000,
            u64::from(k.max_queued_records),
        ),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(ConfigError::invalid(key, format!("must be between {lo} and {hi}")));
        }
    }
    for name in k.properties.keys().chain(k.secret_properties.keys()) {
        if KAFKA_OWNED_PROPERTIES.contains(&name.as_str()) {
            return Err(ConfigError::invalid(
                &format!("buffer.kafka.properties.{name}"),
                "is set by the conduit (its delivery guarantee rests on it); see [buffer.kafka] for the key that configures it",
            ));
        }
    }
    for (name, off) in [
        ("enable.ssl.certificate.verification", "false"),
        ("ssl.endpoint.identification.algorithm", "none"),
    ] {
        if k.properties
            .get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(off))
        {
            return Err(ConfigError::invalid(
                &format!("buffer.kafka.properties.{name}"),
                "the brokers' certificates are always verified: give their CA in \"ssl.ca.location\" instead",
            ));
        }
    }
    if let Some(name) = k.properties.keys().find(|n| k.secret_properties.contains_key(*n)) {
        return Err(ConfigError::invalid(
            &format!("buffer.kafka.secret_properties.{name}"),
            "is also in buffer.kafka.properties: set it in one of them",
        ));
    }
    Ok(())
}

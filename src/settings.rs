//! [`Settings`]: a loaded [`Config`] made ready to run, once, before anything starts — its
//! secrets resolved (only those the role and the enabled parts need), its addresses and URLs
//! parsed. What fails here names the config key and stops the start-up; nothing that runs
//! afterwards parses or resolves configuration again.

use std::net::SocketAddr;
use std::time::Duration;

#[cfg(all(feature = "kafka", not(windows)))]
use crate::buffer::kafka::client::KafkaSettings;
use crate::config::{Config, ConfigError, Role, Secret};
use crate::sink::oauth::Credentials;

/// The OAuth client the sinks use, resolved.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Its id and secret.
    pub credentials: Credentials,
    /// The login base (`https://login.<region domain>`), parsed.
    pub login_base: reqwest::Url,
    /// The API base (`https://api.<region domain>`), parsed.
    pub api_base: reqwest::Url,
}

/// Everything the composition root needs, checked.
#[derive(Debug)]
pub struct Settings {
    /// The validated config, for the sections the parts take as they are.
    pub config: Config,
    /// The listener's address.
    pub listen: SocketAddr,
    /// The push source's token, when that source runs.
    pub push_token: Option<Secret>,
    /// The ICWS source's password, when that source runs.
    pub icws_password: Option<Secret>,
    /// The OAuth client, when a sink runs.
    pub client: Option<ClientSettings>,
    /// The Kafka buffer's settings, when the buffer is a Kafka topic.
    #[cfg(all(feature = "kafka", not(windows)))]
    pub kafka: Option<KafkaSettings>,
}

impl Settings {
    /// What this process does.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// How long requests in flight may take to finish on shutdown.
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.config.drain_timeout_ms)
    }

    /// Checks `config` for running it.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        let role = config.role;
        // The push endpoint stays up while `enabled = false` (it answers that ingest is off);
        // the ICWS source does not run then.
        let push_token = (role.ingests() && config.sources.http.enabled)
            .then(|| config.push_token())
            .transpose()?;
        let icws_password = (role.ingests() && config.enabled && config.sources.icws.enabled)
            .then(|| {
                let key = "sources.icws.password";
                config
                    .sources
                    .icws
                    .password
                    .as_ref()
                    .ok_or_else(|| ConfigError::invalid(key, "required"))?
                    .resolve(key)
            })
            .transpose()?;
        let sink_on = config.sinks.journey.as_ref().is_some_and(|j| j.enabled);
        // User sync runs beside the ICWS source, presence delivery beside the dispatcher: both
        // need the organization's client.
        let users_on = config.users.enabled;
        let u = &config.users;
        // Checked here rather than with the file: `setup` runs on this config to make the id.
        if users_on && u.statuses && u.presence_source_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "users.presence_source_id",
                "required while users.statuses = true: the presence source id `cic-conduit setup` printed (or set users.statuses = false)",
            ));
        }
        let client = ((role.dispatches() && sink_on) || users_on)
            .then(|| client(&config))
            .transpose()?;
        #[cfg(all(feature = "kafka", not(windows)))]
        let kafka = kafka(&config)?;
        Ok(Settings {
            listen: config.listen_addr()?,
            push_token,
            icws_password,
            client,
            #[cfg(all(feature = "kafka", not(windows)))]
            kafka,
            config,
        })
    }
}

/// The Kafka buffer's settings, its secret properties resolved; none for the disk log. The
/// properties are checked by librdkafka itself here, so that a misspelt one stops the start with
/// its name.
#[cfg(all(feature = "kafka", not(windows)))]
pub fn kafka(config: &Config) -> Result<Option<KafkaSettings>, ConfigError> {
    let b = &config.buffer;
    let (crate::config::BufferType::Kafka, Some(k)) = (b.kind, b.kafka.as_ref()) else {
        return Ok(None);
    };
    let mut secrets = std::collections::BTreeMap::new();
    for (name, source) in &k.secret_properties {
        secrets.insert(
            name.clone(),
            source.resolve(&format!("buffer.kafka.secret_properties.{name}"))?,
        );
    }
    let settings = KafkaSettings {
        config: k.clone(),
        secrets,
        max_record_bytes: b.max_record_bytes,
        block_timeout: b.block_timeout(),
    };
    // librdkafka refuses an unknown property or value when a client is made from it (made, not
    // connected: nothing goes to the brokers here).
    let refused = |what: &str, e: rdkafka::error::KafkaError| {
        ConfigError::invalid(
            "buffer.kafka.properties",
            format!("librdkafka refused the {what}'s properties: {e}"),
        )
    };
    settings
        .producer()
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(|e| refused("producer", e))?;
    settings
        .consumer()
        .create::<rdkafka::consumer::BaseConsumer>()
        .map_err(|e| refused("consumer", e))?;
    Ok(Some(settings))
}

/// The organization's OAuth client, resolved.
pub fn client(config: &Config) -> Result<ClientSettings, ConfigError> {
    let org = &config.organization;
    let client_id = org
        .client_id
        .clone()
        .ok_or_else(|| ConfigError::invalid("organization.client_id", "required"))?;
    let client_secret = org
        .client_secret
        .as_ref()
        .ok_or_else(|| ConfigError::invalid("organization.client_secret", "required"))?
        .resolve("organization.client_secret")?;
    let url = |key: &str, text: String| {
        reqwest::Url::parse(&text).map_err(|e| ConfigError::invalid(key, format!("`{text}` is not a URL: {e}")))
    };
    Ok(ClientSettings {
        credentials: Credentials {
            client_id,
            client_secret,
        },
        login_base: url("organization.login_base_url", org.login_base())?,
        api_base: url("organization.api_base_url", org.api_base())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        cic_server = "cic01"
        data_dir = "/tmp/x"
        [organization]
        short_name = "acme"
        region = "eu-west-1"
        client_id = "id"
        client_secret = CLIENT_SECRET
        [sources.http]
        token = PUSH_TOKEN
        [sinks.journey]
        configuration_id = "c"
        external_source_id = "s"
    "#;
    const UNSET: &str = "{ env = \"SETTINGS_TEST_VARIABLE_NEVER_SET\" }";

    fn load(role: &str, push_token: &str, client_secret: &str) -> Result<Settings, ConfigError> {
        let text = format!("role = \"{role}\"\n{BASE}")
            .replace("PUSH_TOKEN", push_token)
            .replace("CLIENT_SECRET", client_secret);
        Settings::from_config(crate::config::load_str(&text, Vec::new())?)
    }

    #[test]
    fn only_the_secrets_the_role_needs_are_resolved() {
        let token = "\"0123456789abcdef0123\"";
        // No client secret: ingesting needs none; delivering fails naming the key.
        let ingest = load("ingest", token, UNSET).unwrap();
        assert!(ingest.client.is_none() && ingest.push_token.is_some());
        for role in ["both", "dispatch"] {
            let err = load(role, token, UNSET).unwrap_err().to_string();
            assert!(err.contains("organization.client_secret"), "{role}: {err}");
        }
        // No push token: delivering needs none; ingesting fails naming the key.
        let dispatch = load("dispatch", UNSET, "\"s3cret\"").unwrap();
        assert!(dispatch.push_token.is_none() && dispatch.client.is_some());
        for role in ["both", "ingest"] {
            let err = load(role, UNSET, "\"s3cret\"").unwrap_err().to_string();
            assert!(err.contains("sources.http.token"), "{role}: {err}");
        }
    }

    #[test]
    fn urls_and_the_listen_address_are_parsed_once() {
        let s = load("both", "\"0123456789abcdef0123\"", "\"s3cret\"").unwrap();
        let c = s.client.as_ref().expect("a sink is on");
        assert_eq!(c.api_base.as_str(), "https://api.mypurecloud.ie/");
        assert_eq!(c.login_base.host_str(), Some("login.mypurecloud.ie"));
        assert_eq!(s.listen, "127.0.0.1:8087".parse().unwrap());
        assert_eq!(s.drain(), Duration::from_secs(10));
        assert!(
            !format!("{:?}", c.credentials).contains("s3cret"),
            "the secret stays redacted"
        );
    }

    #[cfg(all(feature = "kafka", not(windows)))]
    #[test]
    fn librdkafka_checks_the_pass_through_properties_and_secrets_stay_hidden() {
        let text = |props: &str| {
            format!(
                "{}\n[buffer]\ntype = \"kafka\"\n[buffer.kafka]\nbrokers = \"127.0.0.1:9\"\n{props}",
                BASE.replace("PUSH_TOKEN", "\"0123456789abcdef0123\"")
                    .replace("CLIENT_SECRET", "\"s3cret\"")
            )
        };
        let err = Settings::from_config(
            crate::config::load_str(&text("[buffer.kafka.properties]\n\"linger.mss\" = \"5\""), Vec::new()).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("buffer.kafka.properties") && err.contains("linger.mss"),
            "{err}"
        );
        let s = Settings::from_config(
            crate::config::load_str(
                &text("[buffer.kafka.secret_properties]\n\"sasl.password\" = \"kafka-s3cret\""),
                Vec::new(),
            )
            .unwrap(),
        )
        .unwrap();
        let k = s.kafka.as_ref().expect("a kafka buffer");
        assert_eq!(k.secrets["sasl.password"].expose(), "kafka-s3cret");
        assert!(!format!("{k:?}").contains("kafka-s3cret"));
    }
}

//! `cic-conduit setup`: creates, once, the organization objects the sinks need — the
//! external-events JSON schema (derived from the Avro schema, see [`super::journey::mapping`])
//! and the configuration that uses it, and (with `users.statuses`) the presence source CIC
//! statuses are sent as — and reports their ids.
//!
//! Follows no redirect and takes only the API's JSON answers (bounded reads): a 3xx or a 2xx
//! that is not the API's object is an error saying what came back.
//!
//! Idempotent: both are looked up by name first (every page of the list) and only created when
//! missing, so running it again changes nothing. An existing schema whose properties differ from
//! the derived ones (a release that adds event types or attributes, a changed custom-attribute
//! list) is updated to a new version (`PUT .../schemas/{id}`), so re-running `setup` after an
//! upgrade is the whole upgrade. The configuration is filed under `organization.division_id`, or
//! the organization's home division (`GET /api/v2/authorization/divisions/home`).
//!
//! What is retryable — a 429 (after its `Retry-After`), a 5xx, no answer — is retried with the
//! delivery's capped, jittered backoff for up to [`Setup::give_up_after`]; each step and each
//! retry is reported through [`Setup::progress`]. A refusal carries the cloud's message and
//! `ININ-Correlation-Id`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::journey::Mapper;
use super::oauth::{OAuthError, TokenSource};

/// Title of the schema.
pub const SCHEMA_TITLE: &str = "cic-conduit interaction event v1";
/// Default name of the configuration.
pub const DEFAULT_CONFIGURATION_NAME: &str = "cic-conduit interaction events";
/// Name of the presence source CIC statuses are sent as.
pub const PRESENCE_SOURCE_NAME: &str = "cic-conduit CIC statuses";

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No token.
    #[error(transparent)]
    Auth(#[from] OAuthError),
    /// The API refused a call.
    #[error("{what}: HTTP {status}: {message} (correlation id {correlation_id})")]
    Api {
        /// The call.
        what: String,
        /// Status.
        status: u16,
        /// The error body's message.
        message: String,
        /// `ININ-Correlation-Id`.
        correlation_id: String,
    },
    /// No answer.
    #[error("{0}")]
    Transport(String),
}

/// What setup found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupResult {
    /// The schema's id.
    pub schema_id: String,
    /// Whether it was created now.
    pub schema_created: bool,
    /// The configuration's id.
    pub configuration_id: String,
    /// Whether it was created now.
    pub configuration_created: bool,
    /// Set when the existing schema differed from the derived one and was updated to it.
    pub schema_updated: bool,
    /// The division the configuration is filed under.
    pub division_id: String,
    /// Set when an existing configuration uses another schema than this one.
    pub configuration_schema_differs: bool,
    /// The presence source's id and whether it was created now, when statuses are synced.
    pub presence_source: Option<(String, bool)>,
}

/// Talks to one organization's API.
pub struct Setup {
    /// HTTP client.
    pub http: reqwest::Client,
    /// `https://api.<domain>` or an override.
    pub api_base: String,
    /// Shared tokens.
    pub tokens: Arc<TokenSource>,
    /// `organization.division_id`, if set.
    pub division_id: Option<String>,
    /// The backoff's first and largest delay (the journey sink's `retry_initial_ms` and
    /// `retry_max_ms`).
    pub retry: (Duration, Duration),
    /// Retrying stops, with the last error, once this long has passed since the first attempt.
    pub give_up_after: Duration,
    /// Told each step and each retry, as a line for a person.
    pub progress: Box<dyn Fn(&str) + Send + Sync>,
}

/// One attempt's outcome: an answer, or an error and whether to retry it.
enum Attempt {
    Done(Value),
    Failed(SetupError, Retry),
}

/// Whether and when a failed attempt is tried again.
enum Retry {
    No,
    /// After the backoff's next delay.
    Backoff,
    /// After the answer's `Retry-After`, or the backoff's delay when it gave none.
    After(Option<Duration>),
}

impl Setup {
    /// The set-up of `cfg`'s organization: its API, `organization.division_id`, the journey
    /// sink's backoff (or the defaults without one), two minutes of retrying, progress on
    /// standard error.
    pub fn for_config(cfg: &crate::config::Config, http: reqwest::Client, tokens: Arc<TokenSource>) -> Self {
        let (initial, max) = cfg
            .sinks
            .journey
            .as_ref()
            .map_or((500, 30_000), |j| (j.retry_initial_ms, j.retry_max_ms));
        Setup {
            http,
            api_base: cfg.organization.api_base(),
            tokens,
            division_id: cfg.organization.division_id.clone(),
            retry: (Duration::from_millis(initial), Duration::from_millis(max)),
            give_up_after: Duration::from_secs(120),
            progress: Box::new(|line| eprintln!("{line}")),
        }
    }

    /// The mapper whose schema `cfg`'s events follow (its custom attributes, its external
    /// source id).
    pub fn mapper_for(cfg: &crate::config::Config) -> Mapper {
        let external_source = cfg
            .sinks
            .journey
            .as_ref()
            .map(|j| j.external_source_id.clone())
            .unwrap_or_default();
        Mapper::new(&cfg.normalize.custom_attributes, &external_source)
    }

    /// One API call, retried while retryable.
    async fn call(&self, what: &str, req: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, SetupError> {
        let started = Instant::now();
        let mut backoff = crate::retry::Backoff::new(self.retry.0, self.retry.1);
        loop {
            let (err, after) = match self.attempt(what, req()).await? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Failed(e, Retry::No) => return Err(e),
                Attempt::Failed(e, Retry::Backoff) => (e, None),
                Attempt::Failed(e, Retry::After(after)) => (e, after),
            };
            let delay = after.unwrap_or_else(|| backoff.next_delay());
            if started.elapsed() + delay > self.give_up_after {
                return Err(err);
            }
            (self.progress)(&format!("  {err}; retrying in {:.1} s", delay.as_secs_f64()));
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Attempt, SetupError> {
        let token = match self.tokens.token().await {
            Ok(t) => t,
            Err(e) if e.is_retryable() => return Ok(Attempt::Failed(SetupError::Auth(e), Retry::Backoff)),
            Err(e) => return Err(e.into()),
        };
        let resp = match req.bearer_auth(token.expose()).send().await {
            Ok(r) => r,
            Err(e) => {
                let e = SetupError::Transport(format!("{what}: {}", crate::outbound::describe_error(e)));
                return Ok(Attempt::Failed(e, Retry::Backoff));
            }
        };
        let status = resp.status().as_u16();
        let correlation_id = super::correlation_id(resp.headers());
        if (300..400).contains(&status) {
            return Ok(Attempt::Failed(
                SetupError::Api {
                    what: what.to_string(),
                    status,
                    message: crate::outbound::redirect_note(status, resp.headers()),
                    correlation_id,
                },
                Retry::No,
            ));
        }
        let headers = resp.headers().clone();
        let bytes = match crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY).await {
            Ok(b) => b,
            Err(e) => {
                return Ok(Attempt::Failed(
                    SetupError::Transport(format!("{what}: {e}")),
                    Retry::Backoff,
                ));
            }
        };
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !(200..300).contains(&status) {
            let message = body
                .as_ref()
                .and_then(|b| b["message"].as_str())
                .map(|m| {
                    // and what each fault was (`ErrorBody.errors`)
                    let faults = body.as_ref().and_then(|b| b["errors"].as_array());
                    let mut m = m.to_string();
                    for f in faults
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["message"].as_str())
                        .take(5)
                    {
                        m.push_str("; ");
                        m.push_str(f);
                    }
                    crate::outbound::bounded(&m, 1024)
                })
                .unwrap_or_else(|| crate::outbound::describe_unexpected(&headers, &bytes));
            let retry = match status {
                429 => Retry::After(
                    headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| super::classify::parse_retry_after(v, SystemTime::now())),
                ),
                500..=599 => Retry::Backoff,
                _ => Retry::No,
            };
            let e = SetupError::Api {
                what: what.to_string(),
                status,
                message,
                correlation_id,
            };
            return Ok(Attempt::Failed(e, retry));
        }
        match body {
            Some(v @ Value::Object(_)) => Ok(Attempt::Done(v)),
            _ => Ok(Attempt::Failed(
                SetupError::Api {
                    what: what.to_string(),
                    status,
                    message: format!(
                        "not the API's answer ({})",
                        crate::outbound::describe_unexpected(&headers, &bytes)
                    ),
                    correlation_id,
                },
                Retry::No,
            )),
        }
    }

    /// The `id` of an object the API returned, which every answer here must carry.
    fn id_of(what: &str, v: &Value) -> Result<String, SetupError> {
        match v["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(SetupError::Api {
                what: what.to_string(),
                status: 200,
                message: "the answer carries no id".into(),
                correlation_id: String::new(),
            }),
        }
    }

    /// The first item of a (possibly paged) list that `matches`.
    async fn find(&self, path: &str, matches: impl Fn(&Value) -> bool) -> Result<Option<Value>, SetupError> {
        let base = format!("{}{path}", self.api_base.trim_end_matches('/'));
        let mut page = 1;
        loop {
            let what = format!("GET {path}");
            let page_number = page.to_string();
            let req = || {
                self.http
                    .get(&base)
                    .query(&[("pageSize", "100"), ("pageNumber", page_number.as_str())])
            };
            let body = self.call(&what, req).await?;
            let Some(items) = body["entities"].as_array().cloned() else {
                return Err(SetupError::Api {
                    what,
                    status: 200,
                    message: "the listing carries no `entities` list".into(),
                    correlation_id: String::new(),
                });
            };
            if let Some(found) = items.iter().find(|i| matches(i)) {
                return Ok(Some(found.clone()));
            }
            let count = body["pageCount"].as_u64().unwrap_or(1);
            if items.is_empty() || page >= count {
                return Ok(None);
            }
            page += 1;
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value, SetupError> {
        let url = format!("{}{path}", self.api_base.trim_end_matches('/'));
        let what = format!("{method} {path}");
        self.call(&what, || self.http.request(method.clone(), &url).json(body))
            .await
    }

    /// Creates an object. A 409 means it exists — a retried create whose first answer was lost
    /// made it —, so it is looked up instead.
    async fn create(&self, path: &str, body: &Value, is_it: impl Fn(&Value) -> bool) -> Result<Value, SetupError> {
        match self.send(reqwest::Method::POST, path, body).await {
            Err(SetupError::Api { status: 409, .. }) if let Some(found) = self.find(path, is_it).await? => Ok(found),
            other => other,
        }
    }

    /// The division to file the configuration under: the configured one, else the home one.
    async fn division(&self) -> Result<String, SetupError> {
        if let Some(d) = &self.division_id {
            return Ok(d.clone());
        }
        const HOME: &str = "/api/v2/authorization/divisions/home";
        let url = format!("{}{HOME}", self.api_base.trim_end_matches('/'));
        let home = self.call(&format!("GET {HOME}"), || self.http.get(&url)).await?;
        Self::id_of(HOME, &home)
    }

    /// Finds or creates the presence source CIC statuses are sent as (by name).
    pub async fn presence_source(&self) -> Result<(String, bool), SetupError> {
        const SOURCES: &str = "/api/v2/presence/sources";
        (self.progress)(&format!("looking up the presence source \"{PRESENCE_SOURCE_NAME}\""));
        let name_is = |s: &Value| s["name"] == PRESENCE_SOURCE_NAME && s["deactivated"] != json!(true);
        if let Some(found) = self.find(SOURCES, name_is).await? {
            return Ok((Self::id_of(SOURCES, &found)?, false));
        }
        (self.progress)("creating the presence source");
        let body = json!({
            "name": PRESENCE_SOURCE_NAME,
            "description": "CIC user statuses, sent by cic-conduit",
        });
        let made = self.create(SOURCES, &body, name_is).await?;
        Ok((Self::id_of(SOURCES, &made)?, true))
    }

    /// Finds, creates or updates the schema, then finds or creates the configuration (and the
    /// presence source, when `presence`).
    pub async fn run(
        &self,
        mapper: &Mapper,
        configuration_name: &str,
        source: &str,
        presence: bool,
    ) -> Result<SetupResult, SetupError> {
        const SCHEMAS: &str = "/api/v2/journey/externalevents/schemas";
        const CONFIGS: &str = "/api/v2/journey/externalevents/configurations";
        let wanted = mapper.json_schema(SCHEMA_TITLE);
        (self.progress)(&format!("looking up the schema \"{SCHEMA_TITLE}\""));
        let found = self.find(SCHEMAS, |s| s["jsonSchema"]["title"] == SCHEMA_TITLE).await?;
        let (schema, schema_created, schema_updated) = match found {
            None => {
                (self.progress)("creating the schema");
                let title_is = |s: &Value| s["jsonSchema"]["title"] == SCHEMA_TITLE;
                (self.create(SCHEMAS, &wanted, title_is).await?, true, false)
            }
            Some(s) if s["jsonSchema"]["properties"] != wanted["properties"] => {
                let id = Self::id_of(SCHEMAS, &s)?;
                (self.progress)(&format!(
                    "updating schema {id} (version {}) to this release's event fields",
                    s["version"]
                ));
                let body = schema_update_request(&s, &wanted);
                let path = format!("{SCHEMAS}/{id}");
                (self.send(reqwest::Method::PUT, &path, &body).await?, false, true)
            }
            Some(s) => (s, false, false),
        };
        let schema_id = Self::id_of(SCHEMAS, &schema)?;
        (self.progress)(&format!("looking up the configuration \"{configuration_name}\""));
        let found = self.find(CONFIGS, |c| c["name"] == configuration_name).await?;
        let (config, configuration_created, division_id) = match found {
            Some(c) => {
                let division = c["divisionId"].as_str().unwrap_or_default().to_string();
                (c, false, division)
            }
            None => {
                let division = self.division().await?;
                (self.progress)(&format!("creating the configuration in division {division}"));
                let body = configuration_request(configuration_name, &division, &schema_id, source);
                let name_is = |c: &Value| c["name"] == configuration_name;
                (self.create(CONFIGS, &body, name_is).await?, true, division)
            }
        };
        let presence_source = if presence {
            Some(self.presence_source().await?)
        } else {
            None
        };
        Ok(SetupResult {
            presence_source,
            configuration_schema_differs: config["schemaId"] != schema_id.as_str(),
            schema_id,
            schema_created,
            configuration_id: Self::id_of(CONFIGS, &config)?,
            configuration_created,
            schema_updated,
            division_id,
        })
    }
}

/// The body that creates the configuration (`CreateExternalEventsConfigurationRequest`).
pub fn configuration_request(name: &str, division_id: &str, schema_id: &str, source: &str) -> Value {
    json!({
        "name": name,
        "description": "PureConnect (CIC) interaction events delivered by cic-conduit",
        "divisionId": division_id,
        "schemaId": schema_id,
        "source": source,
    })
}

/// The body that updates an existing schema (`existing`, as the API listed it) to `wanted`
/// (`JourneySchemaUpdateRequest`).
pub fn schema_update_request(existing: &Value, wanted: &Value) -> Value {
    json!({
        "version": existing["version"].as_i64().unwrap_or(1),
        "enabled": true,
        "jsonSchema": wanted,
    })
}

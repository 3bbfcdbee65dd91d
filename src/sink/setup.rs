//! `cic-conduit setup`: creates, once, the organization objects the journey sink needs — the
//! external-events JSON schema (derived from the Avro schema, see [`super::journey::mapping`])
//! and the configuration that uses it — and reports their ids.
//!
//! Follows no redirect and takes only the API's JSON answers (bounded reads): a 3xx or a 2xx
//! that is not the API's object is an error saying what came back.
//!
//! Idempotent: both are looked up by name first (every page of the list) and only created when
//! missing, so running it again changes nothing. An existing schema whose properties differ from
//! the derived ones is reported, not overwritten.

use std::sync::Arc;

use serde_json::{Value, json};

use super::journey::Mapper;
use super::oauth::{OAuthError, TokenSource};

/// Title of the schema.
pub const SCHEMA_TITLE: &str = "cic-conduit interaction event v1";
/// Default name of the configuration.
pub const DEFAULT_CONFIGURATION_NAME: &str = "cic-conduit interaction events";

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
    /// Set when the existing schema's properties differ from the derived ones.
    pub schema_differs: bool,
}

/// Talks to one organization's API.
pub struct Setup {
    /// HTTP client.
    pub http: reqwest::Client,
    /// `https://api.<domain>` or an override.
    pub api_base: String,
    /// Shared tokens.
    pub tokens: Arc<TokenSource>,
}

impl Setup {
    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, SetupError> {
        let token = self.tokens.token().await?;
        let resp = req
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| SetupError::Transport(format!("{what}: {}", crate::app::describe_http_error(e))))?;
        let status = resp.status().as_u16();
        let correlation_id = super::correlation_id(resp.headers());
        if (300..400).contains(&status) {
            return Err(SetupError::Api {
                what: what.to_string(),
                status,
                message: crate::outbound::redirect_note(status, resp.headers()),
                correlation_id,
            });
        }
        let headers = resp.headers().clone();
        let bytes = crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY)
            .await
            .map_err(|e| SetupError::Transport(format!("{what}: {e}")))?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !(200..300).contains(&status) {
            let message = body
                .as_ref()
                .and_then(|b| b["message"].as_str())
                .map(|m| crate::outbound::bounded(m, 1024))
                .unwrap_or_else(|| crate::outbound::describe_unexpected(&headers, &bytes));
            return Err(SetupError::Api {
                what: what.to_string(),
                status,
                message,
                correlation_id,
            });
        }
        match body {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(SetupError::Api {
                what: what.to_string(),
                status,
                message: format!(
                    "not the API's answer ({})",
                    crate::outbound::describe_unexpected(&headers, &bytes)
                ),
                correlation_id,
            }),
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

    /// Every item of a paged list whose `key` equals `value`.
    async fn find(&self, path: &str, key: &str, value: &str) -> Result<Option<Value>, SetupError> {
        let base = format!("{}{path}", self.api_base.trim_end_matches('/'));
        let mut page = 1;
        loop {
            let req = self
                .http
                .get(&base)
                .query(&[("pageSize", "100"), ("pageNumber", &page.to_string())]);
            let what = format!("GET {path}");
            let body = self.call(&what, req).await?;
            let Some(items) = body["entities"].as_array().cloned() else {
                return Err(SetupError::Api {
                    what,
                    status: 200,
                    message: "the listing carries no `entities` list".into(),
                    correlation_id: String::new(),
                });
            };
            if let Some(found) = items.iter().find(|i| i[key] == value) {
                return Ok(Some(found.clone()));
            }
            let count = body["pageCount"].as_u64().unwrap_or(1);
            if items.is_empty() || page >= count {
                return Ok(None);
            }
            page += 1;
        }
    }

    async fn create(&self, path: &str, body: &Value) -> Result<Value, SetupError> {
        let url = format!("{}{path}", self.api_base.trim_end_matches('/'));
        self.call(&format!("POST {path}"), self.http.post(url).json(body)).await
    }

    /// Finds or creates the schema and the configuration.
    pub async fn run(
        &self,
        mapper: &Mapper,
        configuration_name: &str,
        source: &str,
    ) -> Result<SetupResult, SetupError> {
        const SCHEMAS: &str = "/api/v2/journey/externalevents/schemas";
        const CONFIGS: &str = "/api/v2/journey/externalevents/configurations";
        let wanted = mapper.json_schema(SCHEMA_TITLE);
        let (schema, schema_created) = match self.find(SCHEMAS, "title", SCHEMA_TITLE).await? {
            Some(s) => (s, false),
            None => (self.create(SCHEMAS, &wanted).await?, true),
        };
        let schema_differs = schema["properties"] != wanted["properties"];
        let schema_id = Self::id_of(SCHEMAS, &schema)?;
        let (config, configuration_created) = match self.find(CONFIGS, "name", configuration_name).await? {
            Some(c) => (c, false),
            None => {
                let body = json!({
                    "name": configuration_name,
                    "description": "PureConnect (CIC) interaction events delivered by cic-conduit",
                    "schemaId": schema_id,
                    "source": source,
                });
                (self.create(CONFIGS, &body).await?, true)
            }
        };
        Ok(SetupResult {
            schema_id,
            schema_created,
            configuration_id: Self::id_of(CONFIGS, &config)?,
            configuration_created,
            schema_differs,
        })
    }
}

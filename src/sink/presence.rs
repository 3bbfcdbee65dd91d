//! The presence sink: CIC status changes ([`Kind::UserStatus`]) as user presence events,
//! `POST /api/v2/events/users/presence`.
//!
//! A record becomes, at [`Sink::prepare`], the presence it means ([`crate::users::presence`]: the
//! configured map, then the defaults; an unmapped status is dead-lettered `unmapped_status`,
//! never guessed) with its deterministic version-4 event id; its lane is its CIC user's, so one
//! user's changes arrive in order. What the organization calls things is resolved when the batch
//! is sent: the synced cloud user's id (from user sync's statuses, else looked up by `externalId`)
//! and the presence definition of that system presence (listed from
//! `/api/v2/presence/definitions`, looked up again when one is missing). A status of a user not
//! (yet) in the organization is returned as retryable — the dispatcher sends it again with
//! backoff — until it has waited `users.status_wait_ms` since it was stored; it is then
//! dead-lettered as "not synced". The answer's `errors` are matched back to the records by event
//! id.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::oauth::TokenSource;
use super::{Answer, Prepared, SendError, Sink, Unprocessed, Unsendable};
use crate::buffer::{BoxFuture, Kind, Record};
use crate::users::change::StatusChange;
use crate::users::presence::{event_id, presence_of};
use crate::users::scim::Scim;
use crate::users::status::{State, Statuses};

/// The sink's name in metrics and health.
pub const NAME: &str = "presence";

/// How long a definition listing or a user looked up is trusted before it is asked again
/// (when something is missing).
const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// A record as its part of a batch (resolved to the organization's ids when sent).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    event_id: String,
    event_date_time: String,
    user: String,
    presence: String,
    status: String,
    stored_ms: i64,
}

/// The organization's names for things, looked up and cached.
#[derive(Default)]
struct Lookups {
    /// System presence → definition id.
    definitions: HashMap<String, String>,
    definitions_at: Option<Instant>,
    /// CIC user → cloud user id, as looked up (user sync's statuses come first).
    users: HashMap<String, String>,
    /// CIC users looked up and not found, and when.
    missing: HashMap<String, Instant>,
}

/// Sends status changes as presence events.
pub struct PresenceSink {
    http: reqwest::Client,
    api_base: String,
    tokens: Arc<TokenSource>,
    source_id: String,
    status_map: BTreeMap<String, String>,
    wait: Duration,
    statuses: Option<Arc<Statuses>>,
    scim: Scim,
    lookups: Mutex<Lookups>,
}

impl PresenceSink {
    /// A sink posting to `<api_base>/api/v2/events/users/presence` for presence source
    /// `source_id`, mapping statuses with `status_map` (then the defaults); a status waits up to
    /// `wait` for its user. `statuses`: user sync's, when it runs in this process; `scim` looks
    /// up the others.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        tokens: Arc<TokenSource>,
        source_id: &str,
        status_map: BTreeMap<String, String>,
        wait: Duration,
        statuses: Option<Arc<Statuses>>,
        scim: Scim,
    ) -> Self {
        PresenceSink {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            tokens,
            source_id: source_id.to_string(),
            status_map,
            wait,
            statuses,
            scim,
            lookups: Mutex::new(Lookups::default()),
        }
    }

    fn lookups(&self) -> std::sync::MutexGuard<'_, Lookups> {
        crate::locks::lock(&self.lookups)
    }

    /// The definition id of system presence `presence`, listing the definitions when none is
    /// known (or it is missing and the listing is old).
    async fn definition(&self, presence: &str) -> Result<Option<String>, SendError> {
        {
            let l = self.lookups();
            if let Some(id) = l.definitions.get(presence) {
                return Ok(Some(id.clone()));
            }
            if l.definitions_at.is_some_and(|t| t.elapsed() < LOOK_AGAIN) {
                return Ok(None);
            }
        }
        let list = self.list_definitions().await?;
        let mut l = self.lookups();
        l.definitions = list;
        l.definitions_at = Some(Instant::now());
        Ok(l.definitions.get(presence).cloned())
    }

    async fn list_definitions(&self) -> Result<HashMap<String, String>, SendError> {
        let token = self.tokens.token().await?;
        let url = format!("{}/api/v2/presence/definitions?deactivated=false", self.api_base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| SendError::Connect(crate::outbound::describe_error(e)))?;
        let status = resp.status().as_u16();
        let bytes = crate::outbound::read_body(resp, crate::outbound::MAX_API_BODY)
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        if status == 401 {
            self.tokens.after_unauthorized(&token).await?;
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let Some(entities) = v["entities"].as_array().filter(|_| status == 200) else {
            return Err(SendError::Connect(format!(
                "cannot list the presence definitions (HTTP {status})"
            )));
        };
        Ok(entities
            .iter()
            .filter(|d| d["deactivated"] != json!(true))
            .filter_map(|d| Some((d["systemPresence"].as_str()?.to_string(), d["id"].as_str()?.to_string())))
            // The System definition of each presence comes first.
            .fold(HashMap::new(), |mut m, (p, id)| {
                m.entry(p).or_insert(id);
                m
            }))
    }

    /// The cloud user id of CIC user `user`; `Err(why)` when user sync says it will not have
    /// one (not synced, removed); `Ok(None)` when it is not known (yet).
    async fn cloud_user(&self, user: &str) -> Result<Option<String>, String> {
        if let Some(s) = &self.statuses {
            if let Some(id) = s.cloud_id(user) {
                return Ok(Some(id));
            }
            if let Some(st) = s
                .get(user)
                .filter(|u| matches!(u.state, State::NotSynced | State::Removed))
            {
                return Err(st.reason.unwrap_or_else(|| st.state.label().to_string()));
            }
        }
        {
            let l = self.lookups();
            if let Some(id) = l.users.get(user) {
                return Ok(Some(id.clone()));
            }
            if l.missing.get(user).is_some_and(|t| t.elapsed() < LOOK_AGAIN / 6) {
                return Ok(None);
            }
        }
        let found = self
            .scim
            .find("externalId", user)
            .await
            .ok()
            .flatten()
            .and_then(|u| u["id"].as_str().map(str::to_string));
        let mut l = self.lookups();
        match &found {
            Some(id) => {
                l.users.insert(user.to_string(), id.clone());
                l.missing.remove(user);
            }
            None => {
                l.missing.insert(user.to_string(), Instant::now());
            }
        }
        Ok(found)
    }

    async fn send_batch(&self, body: Bytes) -> Result<Answer, SendError> {
        let parts: Vec<Part> = serde_json::from_slice(&body).map_err(|e| SendError::Connect(format!("batch: {e}")))?;
        let now = crate::timefmt::now_ms();
        let mut unprocessed = Vec::new();
        let mut events = Vec::new();
        let mut sent: Vec<(String, usize)> = Vec::new();
        for (index, p) in parts.iter().enumerate() {
            let Some(definition) = self.definition(&p.presence).await? else {
                unprocessed.push(Unprocessed {
                    index,
                    retryable: false,
                    status: None,
                    message: format!("the organization has no presence definition for `{}`", p.presence),
                    reason: Some("no_presence_definition"),
                });
                continue;
            };
            let user = match self.cloud_user(&p.user).await {
                Ok(Some(id)) => Some(id),
                Ok(None) => None,
                Err(why) => {
                    unprocessed.push(Unprocessed {
                        index,
                        retryable: false,
                        status: None,
                        message: format!("CIC user {} is not in the organization: {why}", p.user),
                        reason: Some("user_not_synced"),
                    });
                    continue;
                }
            };
            let Some(user) = user else {
                let waited = Duration::from_millis(now.saturating_sub(p.stored_ms).max(0) as u64);
                let over = waited >= self.wait;
                unprocessed.push(Unprocessed {
                    index,
                    retryable: !over,
                    status: None,
                    message: if over {
                        format!(
                            "not synced: CIC user {} has no user in the organization after {} s (users.status_wait_ms)",
                            p.user,
                            self.wait.as_secs()
                        )
                    } else {
                        format!("waiting for CIC user {} to be synced", p.user)
                    },
                    reason: over.then_some("user_not_synced"),
                });
                continue;
            };
            events.push(json!({
                "eventId": p.event_id,
                "eventDateTime": p.event_date_time,
                "userId": user,
                "sourceId": self.source_id,
                "presenceDefinitionId": definition,
                "message": p.status,
            }));
            sent.push((p.event_id.clone(), index));
        }
        if events.is_empty() {
            return Ok(Answer {
                status: 200,
                retry_after: None,
                correlation_id: String::new(),
                rate: None,
                confirmed: true,
                unprocessed,
                message: String::new(),
                elapsed: Duration::ZERO,
                local: true,
            });
        }
        let request = Bytes::from(json!({"userPresenceEvents": events}).to_string());
        let url = format!("{}/api/v2/events/users/presence", self.api_base);
        let token = self.tokens.token().await?;
        let mut exchanged = super::exchange(&self.http, &url, &token, request.clone()).await?;
        if exchanged.0.status == 401 {
            let token = self.tokens.after_unauthorized(&token).await?;
            exchanged = super::exchange(&self.http, &url, &token, request).await?;
        }
        let (mut answer, bytes, headers) = exchanged;
        if (200..300).contains(&answer.status) && answer.message.is_empty() {
            // Only the API's own answer confirms: a `BatchEventResponse` object.
            match serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object) {
                Some(v) => {
                    answer.confirmed = true;
                    let by_id: HashMap<&str, usize> = sent.iter().map(|(id, i)| (id.as_str(), *i)).collect();
                    for e in v["errors"].as_array().into_iter().flatten() {
                        let Some(index) = e["eventId"].as_str().and_then(|id| by_id.get(id)) else {
                            continue;
                        };
                        unprocessed.push(Unprocessed {
                            index: *index,
                            retryable: e["retryable"].as_bool().unwrap_or(false),
                            status: None,
                            message: super::bounded_message(e["message"].as_str().unwrap_or_default().to_string()),
                            reason: None,
                        });
                    }
                    answer.unprocessed = unprocessed;
                }
                None => answer.message = super::not_an_answer(answer.status, &headers, &bytes),
            }
        }
        Ok(answer)
    }
}

impl Sink for PresenceSink {
    fn name(&self) -> &'static str {
        NAME
    }

    fn refusal_reasons(&self) -> &'static [&'static str] {
        &[
            "undecodable",
            "unmapped_status",
            "user_not_synced",
            "no_presence_definition",
        ]
    }

    fn takes(&self, kind: Kind) -> bool {
        kind == Kind::UserStatus
    }

    fn prepare(&self, record: &Record) -> Result<Prepared, Unsendable> {
        let c = StatusChange::decode(&record.payload).ok_or_else(|| Unsendable {
            reason: "undecodable",
            message: "not a CIC status change".into(),
        })?;
        let presence = presence_of(&c.status_id, &self.status_map).ok_or_else(|| Unsendable {
            reason: "unmapped_status",
            message: format!(
                "CIC status `{}` maps to no presence: name it in users.status_map",
                c.status_id
            ),
        })?;
        let part = Part {
            event_id: event_id(&c.user_id, &c.status_id, &c.changed),
            event_date_time: crate::timefmt::format_timestamp_ms(c.changed_ms),
            presence: presence.to_string(),
            status: c.status_id,
            stored_ms: record.accepted_ms.unwrap_or_else(crate::timefmt::now_ms),
            user: c.user_id,
        };
        Ok(Prepared {
            lane_key: Bytes::from(part.user.clone()),
            part: Bytes::from(serde_json::to_vec(&part).expect("a part serializes")),
        })
    }

    fn envelope_bytes(&self) -> usize {
        2
    }

    /// A JSON array of the parts (resolved to the request when sent).
    fn body(&self, parts: &[&[u8]]) -> Bytes {
        super::joined(b"[", parts, b"]")
    }

    fn send(&self, body: Bytes) -> BoxFuture<'_, Result<Answer, SendError>> {
        Box::pin(self.send_batch(body))
    }
}

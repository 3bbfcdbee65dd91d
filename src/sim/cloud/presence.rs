//! Presence (`interfaces.md` §2): presence sources (`/api/v2/presence/sources`: create, list,
//! get), the organization's presence definitions (`GET /api/v2/presence/definitions`) and user
//! presence events (`POST /api/v2/events/users/presence`).
//!
//! Each organization has its own definition ids (one `System` definition per system presence,
//! made from the simulator's seed): a client must look them up. A presence event batch is checked
//! against `BatchUserPresenceEventRequest` (a body that breaks it is a 400 naming each fault);
//! then each event on its own: `eventId` must be a version-4 UUID as the model documents, the
//! user a SCIM user of the organization, the source one of its presence sources, the definition
//! one of its definitions. An event that fails is listed in the answer's `errors` (not
//! retryable) and the others are taken; an `eventId` seen before is taken again and counted as a
//! duplicate. What was taken is kept per user, in arrival order ([`CloudSim::presence_events`]).

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CloudSim, answer, error, json_body, rated, refuse_unless};

/// The system presences every organization has a definition for.
pub const SYSTEM_PRESENCES: [&str; 9] = [
    "Available",
    "Busy",
    "Away",
    "Break",
    "Meal",
    "Meeting",
    "Training",
    "Offline",
    "Idle",
];
/// Largest request body accepted (bytes).
const MAX_BODY: usize = 1024 * 1024;

/// One presence event taken, as [`CloudSim::presence_events`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceReceived {
    /// `eventId`.
    pub event_id: String,
    /// `eventDateTime`.
    pub event_date_time: String,
    /// The SCIM user's id.
    pub user_id: String,
    /// The presence source's id.
    pub source_id: String,
    /// The definition's id.
    pub presence_definition_id: Option<String>,
    /// That definition's system presence (`Available`, `Busy`, ...), for reading tests.
    pub system_presence: Option<String>,
}

/// Presence state of the organization.
#[derive(Debug, Default)]
pub(super) struct Presence {
    sources: Vec<Value>,
    definitions: Vec<Value>,
    events: Vec<PresenceReceived>,
    seen: HashSet<String>,
}

impl Presence {
    /// The system definitions, with ids made by `id`.
    pub(super) fn with_definitions(mut id: impl FnMut() -> String) -> Self {
        let definitions = SYSTEM_PRESENCES
            .iter()
            .map(|p| {
                let id = id();
                json!({
                    "id": id,
                    "type": "System",
                    "languageLabels": {"en_US": p},
                    "systemPresence": p,
                    "divisionId": "*",
                    "deactivated": false,
                    "selfUri": format!("/api/v2/presence/definitions/{id}"),
                })
            })
            .collect();
        Presence {
            definitions,
            ..Presence::default()
        }
    }
}

pub(super) async fn create_source(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, body: Bytes) -> Response {
    let standing = admitted!(sim, headers);
    let v = match json_body(&headers, &body, MAX_BODY).and_then(|v| refuse_unless("Source", &v).map(|()| v)) {
        Ok(v) => v,
        Err(resp) => return rated(*resp, &standing),
    };
    let id = sim.new_object_id();
    let mut source = v;
    source["id"] = json!(id);
    source["selfUri"] = json!(format!("/api/v2/presence/sources/{id}"));
    source
        .as_object_mut()
        .expect("checked to be an object")
        .entry("deactivated")
        .or_insert(json!(false));
    sim.lock().presence.sources.push(source.clone());
    rated(answer(StatusCode::OK, "Source", source), &standing)
}

pub(super) async fn list_sources(State(sim): State<Arc<CloudSim>>, headers: HeaderMap) -> Response {
    let standing = admitted!(sim, headers);
    let sources = sim.lock().presence.sources.clone();
    let body = json!({"total": sources.len(), "entities": sources, "selfUri": "/api/v2/presence/sources"});
    rated(answer(StatusCode::OK, "SourceEntityListing", body), &standing)
}

pub(super) async fn get_source(
    State(sim): State<Arc<CloudSim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let standing = admitted!(sim, headers);
    let found = sim
        .lock()
        .presence
        .sources
        .iter()
        .find(|s| s["id"] == json!(id))
        .cloned();
    let resp = match found {
        Some(s) => answer(StatusCode::OK, "Source", s),
        None => error(
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("presence source {id} not found"),
        ),
    };
    rated(resp, &standing)
}

/// Query of the definitions list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DefinitionsQuery {
    deactivated: Option<bool>,
    #[serde(rename = "divisionId")]
    _division_id: Option<String>,
    #[serde(rename = "localeCode")]
    _locale_code: Option<String>,
}

pub(super) async fn list_definitions(
    State(sim): State<Arc<CloudSim>>,
    headers: HeaderMap,
    Query(q): Query<DefinitionsQuery>,
) -> Response {
    let standing = admitted!(sim, headers);
    let wanted = q.deactivated.unwrap_or(false);
    let entities: Vec<Value> = sim
        .lock()
        .presence
        .definitions
        .iter()
        .filter(|d| d["deactivated"] == json!(wanted))
        .cloned()
        .collect();
    let body = json!({"total": entities.len(), "entities": entities, "selfUri": "/api/v2/presence/definitions"});
    rated(
        answer(StatusCode::OK, "OrganizationPresenceDefinitionEntityListing", body),
        &standing,
    )
}

/// Whether `s` is a version-4 UUID (hyphenated, RFC 4122 variant).
pub fn is_v4_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s)
        .is_ok_and(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122 && s.len() == 36)
}

pub(super) async fn post_events(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, body: Bytes) -> Response {
    let standing = admitted!(sim, headers);
    let v = match json_body(&headers, &body, MAX_BODY)
        .and_then(|v| refuse_unless("BatchUserPresenceEventRequest", &v).map(|()| v))
    {
        Ok(v) => v,
        Err(resp) => {
            sim.lock().report.presence_invalid_requests += 1;
            return rated(*resp, &standing);
        }
    };
    let events = v["userPresenceEvents"].as_array().cloned().unwrap_or_default();
    let users: HashSet<String> = sim
        .scim_users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    let mut errors = Vec::new();
    let mut inner = sim.lock();
    for e in &events {
        let id = e["eventId"].as_str().unwrap_or("");
        let user = e["userId"].as_str().unwrap_or("");
        let source = e["sourceId"].as_str().unwrap_or("");
        let definition = e["presenceDefinitionId"].as_str();
        let system = definition.and_then(|d| {
            inner
                .presence
                .definitions
                .iter()
                .find(|x| x["id"] == json!(d))
                .map(|x| x["systemPresence"].as_str().unwrap_or("").to_string())
        });
        let why = if !is_v4_uuid(id) {
            Some(format!("eventId `{id}` is not a version-4 UUID"))
        } else if !users.contains(user) {
            Some(format!("userId `{user}` is not a user of the organization"))
        } else if !inner.presence.sources.iter().any(|s| s["id"] == json!(source)) {
            Some(format!(
                "sourceId `{source}` is not a presence source of the organization"
            ))
        } else if definition.is_some() && system.is_none() {
            Some(format!(
                "presenceDefinitionId `{}` is not a presence definition of the organization",
                definition.unwrap_or("")
            ))
        } else {
            None
        };
        if let Some(message) = why {
            inner.report.presence_events_refused += 1;
            errors.push(json!({"eventId": id, "message": message, "retryable": false}));
            continue;
        }
        if !inner.presence.seen.insert(id.to_string()) {
            inner.report.presence_duplicates += 1;
        }
        inner.report.presence_events_accepted += 1;
        inner.presence.events.push(PresenceReceived {
            event_id: id.into(),
            event_date_time: e["eventDateTime"].as_str().unwrap_or("").into(),
            user_id: user.into(),
            source_id: source.into(),
            presence_definition_id: definition.map(str::to_string),
            system_presence: system,
        });
    }
    drop(inner);
    rated(
        answer(StatusCode::OK, "BatchEventResponse", json!({"errors": errors})),
        &standing,
    )
}

impl CloudSim {
    /// Presence events taken, in arrival order.
    pub fn presence_events(&self) -> Vec<PresenceReceived> {
        self.lock().presence.events.clone()
    }

    /// The organization's presence definitions.
    pub fn presence_definitions(&self) -> Vec<Value> {
        self.lock().presence.definitions.clone()
    }
}

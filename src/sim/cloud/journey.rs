//! Customer-journey external events (`interfaces.md` §2): the schema and configuration set-up
//! objects, and `POST /api/v2/journey/externalevents/configurations/{id}/events`.
//!
//! Every body is first checked against its model in the official SDK ([`super::models`]), and
//! every answer is built to its model and checked too. Beyond the models, validation is as
//! strict as the real service's: `entities` must be a non-empty array; every
//! entity needs all four fields — `id` (a non-empty string), `dateCreated` (ISO-8601),
//! `identifiers.externalIds` (a non-empty array of `{value, externalSourceId}`) and `attributes`
//! (an object conforming to the configuration's JSON schema). A malformed body or entity is
//! answered 400, attributes that break the schema 422, an unknown configuration 404 — all with a
//! Genesys error body whose `details` name each fault. A valid request may still partly fail:
//! with the `reject_fraction` fault, entities come back in `unprocessedEntities` with
//! `isRetryable`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::chance;
use super::jsonschema;
use super::{CloudSim, Received, answer, error, error_with_details, json_body, models, rated, refuse_unless};
use crate::timefmt;

/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// Paging query of the list endpoints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Paging {
    page_size: Option<usize>,
    page_number: Option<usize>,
}

fn listing(items: &[Value], p: &Paging) -> Value {
    let size = p.page_size.unwrap_or(25).clamp(1, 100);
    let number = p.page_number.unwrap_or(1).max(1);
    let page: Vec<&Value> = items.iter().skip((number - 1) * size).take(size).collect();
    json!({
        "entities": page,
        "pageSize": size,
        "pageNumber": number,
        "total": items.len(),
        "pageCount": items.len().div_ceil(size),
    })
}

mod events;

pub use events::is_iso8601_date_time;
pub(super) use events::post_events;

fn now_iso() -> String {
    timefmt::format_timestamp_ms(timefmt::now_ms())
}

pub(super) async fn list_schemas(State(sim): State<Arc<CloudSim>>, headers: HeaderMap) -> Response {
    let standing = admitted!(sim, headers);
    let items = sim.lock().schemas.clone();
    let body = json!({
        "entities": items,
        "total": items.len(),
        "selfUri": "/api/v2/journey/externalevents/schemas",
    });
    rated(
        answer(StatusCode::OK, "JourneyExternalEventsSchemaListing", body),
        &standing,
    )
}

/// The schema faults of a `JourneyJsonSchemaRequest` that its model allows, as a 400.
fn check_json_schema(schema: &Value) -> Result<(), Box<Response>> {
    jsonschema::check_schema(schema).map_err(|details| {
        Box::new(error_with_details(
            StatusCode::BAD_REQUEST,
            "invalid.schema",
            "The schema is not a valid external-event schema",
            &details,
        ))
    })
}

pub(super) async fn create_schema(State(sim): State<Arc<CloudSim>>, headers: HeaderMap, body: Bytes) -> Response {
    let standing = admitted!(sim, headers);
    let schema = match json_body(&headers, &body, MAX_BODY)
        .and_then(|v| refuse_unless("JourneyJsonSchemaRequest", &v).map(|_| v))
        .and_then(|v| check_json_schema(&v).map(|_| v))
    {
        Ok(v) => v,
        Err(resp) => return rated(*resp, &standing),
    };
    let id = sim.new_object_id();
    let mut inner = sim.lock();
    let title = schema["title"].clone();
    if inner.schemas.iter().any(|s| s["jsonSchema"]["title"] == title) {
        drop(inner);
        return rated(
            error(
                StatusCode::CONFLICT,
                "duplicate.name",
                "A schema with this title already exists",
            ),
            &standing,
        );
    }
    let stored = json!({
        "id": id,
        "version": 1,
        "enabled": true,
        "dateCreated": now_iso(),
        "jsonSchema": schema,
        "selfUri": format!("/api/v2/journey/externalevents/schemas/{id}"),
    });
    inner.schemas.push(stored.clone());
    drop(inner);
    rated(answer(StatusCode::OK, "JourneyExternalEventsSchema", stored), &standing)
}

/// `PUT .../schemas/{id}` (`JourneySchemaUpdateRequest`): a new version of the schema; the
/// request's `version` must be the current one (409 otherwise, as a stale update is).
pub(super) async fn update_schema(
    State(sim): State<Arc<CloudSim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let standing = admitted!(sim, headers);
    let update = match json_body(&headers, &body, MAX_BODY)
        .and_then(|v| refuse_unless("JourneySchemaUpdateRequest", &v).map(|_| v))
        .and_then(|v| check_json_schema(&v["jsonSchema"]).map(|_| v))
    {
        Ok(v) => v,
        Err(resp) => return rated(*resp, &standing),
    };
    let mut inner = sim.lock();
    let Some(stored) = inner.schemas.iter_mut().find(|s| s["id"] == id.as_str()) else {
        drop(inner);
        return rated(
            error(StatusCode::NOT_FOUND, "not.found", &format!("No schema with id {id}")),
            &standing,
        );
    };
    if stored["version"] != update["version"] {
        let current = stored["version"].clone();
        drop(inner);
        return rated(
            error(
                StatusCode::CONFLICT,
                "version.mismatch",
                &format!("The schema's current version is {current}"),
            ),
            &standing,
        );
    }
    if stored["jsonSchema"]["title"] != update["jsonSchema"]["title"] {
        drop(inner);
        return rated(
            error(
                StatusCode::BAD_REQUEST,
                "invalid.property",
                "A schema's title cannot change",
            ),
            &standing,
        );
    }
    stored["version"] = json!(stored["version"].as_i64().unwrap_or(1) + 1);
    stored["enabled"] = update["enabled"].clone();
    stored["jsonSchema"] = update["jsonSchema"].clone();
    let out = stored.clone();
    drop(inner);
    rated(answer(StatusCode::OK, "JourneyExternalEventsSchema", out), &standing)
}

pub(super) async fn list_configurations(
    State(sim): State<Arc<CloudSim>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    let standing = admitted!(sim, headers);
    let items = sim.lock().configurations.clone();
    rated(
        answer(
            StatusCode::OK,
            "ExternalEventsConfigurationListing",
            listing(&items, &p),
        ),
        &standing,
    )
}

pub(super) async fn create_configuration(
    State(sim): State<Arc<CloudSim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let standing = admitted!(sim, headers);
    let cfg = match json_body(&headers, &body, MAX_BODY)
        .and_then(|v| refuse_unless("CreateExternalEventsConfigurationRequest", &v).map(|_| v))
    {
        Ok(v) => v,
        Err(resp) => return rated(*resp, &standing),
    };
    let mut details = Vec::new();
    for key in ["name", "schemaId", "source", "divisionId"] {
        if cfg[key].as_str().is_none_or(|s| s.trim().is_empty()) {
            details.push(format!("{key} must not be empty"));
        }
    }
    if details.is_empty() && cfg["divisionId"] != super::HOME_DIVISION {
        details.push("divisionId names no division of this organization".into());
    }
    let mut inner = sim.lock();
    if details.is_empty() && !inner.schemas.iter().any(|s| s["id"] == cfg["schemaId"]) {
        details.push("schemaId names no schema of this organization".into());
    }
    if !details.is_empty() {
        drop(inner);
        return rated(
            error_with_details(
                StatusCode::BAD_REQUEST,
                "invalid.property",
                "The configuration is invalid",
                &details,
            ),
            &standing,
        );
    }
    if inner.configurations.iter().any(|c| c["name"] == cfg["name"]) {
        drop(inner);
        return rated(
            error(
                StatusCode::CONFLICT,
                "duplicate.name",
                "A configuration with this name already exists",
            ),
            &standing,
        );
    }
    let id = sim.new_object_id();
    let stored = json!({
        "id": id,
        "name": cfg["name"],
        "description": cfg["description"],
        "divisionId": cfg["divisionId"],
        "divisionIdActive": true,
        "schemaId": cfg["schemaId"],
        "schemaActive": true,
        "source": cfg["source"],
        "dateLastModified": now_iso(),
        "selfUri": format!("/api/v2/journey/externalevents/configurations/{id}"),
    });
    inner.configurations.push(stored.clone());
    drop(inner);
    rated(answer(StatusCode::OK, "ExternalEventsConfiguration", stored), &standing)
}

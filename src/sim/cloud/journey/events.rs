//! `POST /api/v2/journey/externalevents/configurations/{id}/events`: each entity checked against
//! the `ExternalEvent` model and the configuration's schema, partial refusals under the
//! `reject_fraction` fault, and what arrived recorded for the report (see the [parent](super)'s
//! notes for the rules).

use super::*;

/// An extended ISO-8601 date-time with a zone, as the API documents `dateCreated`:
/// `2024-04-09T14:03:11.000Z` or `2024-04-09T16:03:11+02:00`.
pub fn is_iso8601_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (b[b.len() - 1] == b'Z' || b[b.len() - 6] == b'+' || b[b.len() - 6] == b'-');
    shape && timefmt::parse_timestamp_ms(s).is_some()
}

/// Checks what the `ExternalEvent` model leaves open: the id and the identifiers must not be
/// empty, and the attributes must conform to the configuration's schema (those faults go to
/// `schema_errors`, the rest to `errors`).
fn check_entity(i: usize, e: &Value, schema: &Value, errors: &mut Vec<String>, schema_errors: &mut Vec<String>) {
    let at = format!("entities[{i}]");
    if e["id"].as_str().is_some_and(str::is_empty) {
        errors.push(format!("{at}.id must be a non-empty string"));
    }
    if let Some(ids) = e["identifiers"]["externalIds"].as_array() {
        if ids.is_empty() {
            errors.push(format!("{at}.identifiers.externalIds must not be empty"));
        }
        for (j, x) in ids.iter().enumerate() {
            for key in ["value", "externalSourceId"] {
                if x[key].as_str().is_some_and(str::is_empty) {
                    errors.push(format!(
                        "{at}.identifiers.externalIds[{j}].{key} must be a non-empty string"
                    ));
                }
            }
        }
    }
    if let Some(a) = e.get("attributes").filter(|a| a.is_object()) {
        schema_errors.extend(jsonschema::validate(schema, a, &format!("{at}.attributes")));
    }
}

pub(in crate::sim::cloud) async fn post_events(
    State(sim): State<Arc<CloudSim>>,
    Path(config_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let standing = admitted!(sim, headers);
    let resp = events(&sim, &config_id, &headers, &body);
    rated(resp, &standing)
}

fn events(sim: &CloudSim, config_id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let invalid = |resp: Response| {
        sim.lock().report.invalid_requests += 1;
        resp
    };
    let req = match json_body(headers, body, MAX_BODY) {
        Ok(v) => v,
        Err(resp) => return invalid(*resp),
    };
    let schema = {
        let inner = sim.lock();
        let schema_id = inner
            .configurations
            .iter()
            .find(|c| c["id"] == config_id)
            .map(|c| c["schemaId"].clone());
        match schema_id {
            None => None,
            Some(sid) => inner
                .schemas
                .iter()
                .find(|s| s["id"] == sid)
                .map(|s| s["jsonSchema"].clone()),
        }
    };
    let Some(schema) = schema else {
        return invalid(error(
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("No external-event configuration with id {config_id}"),
        ));
    };
    let mut errors = models::check("ExternalEventsRequest", &req, "");
    let entities: &[Value] = req["entities"].as_array().map_or(&[], Vec::as_slice);
    if entities.is_empty() && errors.is_empty() {
        return invalid(error(
            StatusCode::BAD_REQUEST,
            "invalid.property",
            "entities must not be empty",
        ));
    }
    let mut schema_errors = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        check_entity(i, e, &schema, &mut errors, &mut schema_errors);
    }
    if !errors.is_empty() {
        return invalid(error_with_details(
            StatusCode::BAD_REQUEST,
            "invalid.property",
            "The request has invalid entities",
            &errors,
        ));
    }
    if !schema_errors.is_empty() {
        return invalid(error_with_details(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable.entity",
            "Entity attributes do not match the configuration's schema",
            &schema_errors,
        ));
    }
    let mut unprocessed = Vec::new();
    let mut inner = sim.lock();
    let (reject, retryable) = (inner.faults.reject_fraction, inner.faults.retryable_fraction);
    inner.report.event_requests += 1;
    for (i, e) in entities.iter().enumerate() {
        inner.report.entities_received += 1;
        if chance(reject) {
            let retry = chance(retryable);
            inner.report.entities_rejected += 1;
            if retry {
                inner.report.entities_rejected_retryable += 1;
            }
            unprocessed.push(json!({
                "event": e,
                "originalRequestIndex": i,
                "isRetryable": retry,
                "errorMessage": if retry { "Temporarily unable to process the event" } else { "The event was rejected" },
                "statusCode": if retry { 503 } else { 400 },
            }));
            continue;
        }
        let attr = |k: &str| e["attributes"][k].as_str().map(str::to_string);
        let new = inner.accept(Received {
            id: e["id"].as_str().unwrap_or_default().to_string(),
            date_created: e["dateCreated"].as_str().unwrap_or_default().to_string(),
            call_id_key: attr("callIdKey"),
            event_type: attr("eventType"),
            content: content_digest(e),
        });
        if new {
            inner.report.unique_ids += 1;
        } else {
            inner.report.duplicates += 1;
        }
        inner.report.entities_accepted += 1;
    }
    drop(inner);
    answer(
        StatusCode::OK,
        "ExternalEventsResponse",
        json!({ "unprocessedEntities": unprocessed }),
    )
}

/// A digest of what an entity says: its `dateCreated`, `identifiers` and `attributes`.
fn content_digest(e: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let content = serde_json::json!([e["dateCreated"], e["identifiers"], e["attributes"]]);
    let mut h = std::hash::DefaultHasher::new();
    content.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

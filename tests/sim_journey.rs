//! The Genesys Cloud simulator's journey endpoints, driven as a client of the real service would:
//! it refuses what the real service refuses, says why, and injects the failures it is told to.

mod common;

use std::sync::Arc;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, FaultUpdate, SimConfig};
use serde_json::{Value, json};

struct Sim {
    sim: Arc<CloudSim>,
    base: String,
    token: String,
    _sd: Shutdown,
}

async fn start() -> Sim {
    let sim = CloudSim::new(SimConfig::default());
    let sd = Shutdown::new();
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap(), sd.clone()).await.unwrap();
    let base = format!("http://{addr}");
    let token = common::sim_token(&base).await;
    Sim {
        sim,
        base,
        token,
        _sd: sd,
    }
}

impl Sim {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.json().await.unwrap_or(Value::Null), headers)
    }

    /// A schema and a configuration; returns the events path.
    async fn configured(&self) -> String {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "calls",
            "required": ["state"],
            "properties": {"state": {"type": "string", "enum": ["connected", "ended"]}, "ms": {"type": "integer"}}
        });
        let (status, s, _) = self.post("/api/v2/journey/externalevents/schemas", &schema).await;
        assert_eq!(status, 200, "{s}");
        let (status, again, _) = self.post("/api/v2/journey/externalevents/schemas", &schema).await;
        assert_eq!(status, 409, "titles are unique: {again}");
        let division = reqwest::Client::new()
            .get(format!("{}/api/v2/authorization/divisions/home", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(division["homeDivision"], true, "{division}");
        let cfg = json!({"name": "c", "description": "", "divisionId": division["id"],
            "schemaId": s["id"], "source": "PureConnect"});
        let mut no_division = cfg.clone();
        no_division.as_object_mut().unwrap().remove("divisionId");
        let (status, e, _) = self
            .post("/api/v2/journey/externalevents/configurations", &no_division)
            .await;
        assert_eq!(status, 400, "a configuration needs its division: {e}");
        assert!(e.to_string().contains("divisionId is required"), "{e}");
        let (status, c, _) = self.post("/api/v2/journey/externalevents/configurations", &cfg).await;
        assert_eq!(status, 200, "{c}");
        let bad = json!({"name": "d", "description": "", "divisionId": division["id"],
            "schemaId": "nope", "source": "x"});
        let (status, e, _) = self.post("/api/v2/journey/externalevents/configurations", &bad).await;
        assert_eq!(status, 400, "{e}");
        format!(
            "/api/v2/journey/externalevents/configurations/{}/events",
            c["id"].as_str().unwrap()
        )
    }
}

fn entity(id: &str, state: &str) -> Value {
    json!({
        "id": id,
        "dateCreated": "2024-04-09T14:03:11.000Z",
        "identifiers": {"externalIds": [{"value": "+13175551234", "externalSourceId": "src"}]},
        "attributes": {"state": state}
    })
}

#[tokio::test]
async fn valid_events_are_accepted_and_counted() {
    let s = start().await;
    let path = s.configured().await;
    let (status, body, headers) = s
        .post(
            &path,
            &json!({"entities": [entity("a", "connected"), entity("b", "ended")]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unprocessedEntities"], json!([]));
    for h in [
        "inin-correlation-id",
        "inin-ratelimit-count",
        "inin-ratelimit-allowed",
        "inin-ratelimit-reset",
    ] {
        assert!(headers.contains_key(h), "{h}");
    }
    s.post(&path, &json!({"entities": [entity("a", "connected")]})).await;
    let r = s.sim.report();
    assert_eq!((r.entities_accepted, r.unique_ids, r.duplicates), (3, 2, 1));
    let got = s.sim.received(1);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, "b");
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_the_reason() {
    let s = start().await;
    let path = s.configured().await;
    let mut no_date = entity("a", "connected");
    no_date.as_object_mut().unwrap().remove("dateCreated");
    let mut bad_date = entity("b", "connected");
    bad_date["dateCreated"] = json!("20240409T140311Z");
    let mut no_ids = entity("c", "connected");
    no_ids["identifiers"]["externalIds"] = json!([]);
    let mut no_id = entity("", "connected");
    no_id["identifiers"]["externalIds"][0]
        .as_object_mut()
        .unwrap()
        .remove("externalSourceId");
    let (status, body, _) = s
        .post(&path, &json!({"entities": [no_date, bad_date, no_ids, no_id]}))
        .await;
    assert_eq!(status, 400, "{body}");
    let details: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "entities[0].dateCreated is required",
        "entities[1].dateCreated `20240409T140311Z` is not an ISO-8601 date-time",
        "entities[2].identifiers.externalIds must not be empty",
        "entities[3].id must be a non-empty string",
        "entities[3].identifiers.externalIds[0].externalSourceId is required",
    ] {
        assert!(details.iter().any(|d| d.starts_with(want)), "{want} in {details:?}");
    }
    assert!(body["contextId"].as_str().is_some_and(|c| !c.is_empty()));

    let mut extra = entity("d", "connected");
    extra["attributes"]["other"] = json!(1);
    let (status, body, _) = s.post(&path, &json!({"entities": [entity("e", "gone"), extra]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"].as_array().unwrap().len(), 2);

    let (status, _, _) = s.post(&path, &json!({"entities": []})).await;
    assert_eq!(status, 400);
    let (status, _, _) = s.post(&path, &json!([1])).await;
    assert_eq!(status, 400);
    let (status, _, _) = s
        .post(
            "/api/v2/journey/externalevents/configurations/unknown/events",
            &json!({"entities": [entity("f", "ended")]}),
        )
        .await;
    assert_eq!(status, 404);
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .json(&json!({"entities": [entity("g", "ended")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "a bearer token is required");
    let r = s.sim.report();
    assert_eq!(r.invalid_requests, 5);
    assert_eq!(r.entities_accepted, 0, "nothing of a refused request is kept");
}

#[tokio::test]
async fn injected_faults_look_like_the_real_ones() {
    let s = start().await;
    let path = s.configured().await;
    s.sim.set_faults(&FaultUpdate {
        reject_fraction: Some(1.0),
        retryable_fraction: Some(1.0),
        ..Default::default()
    });
    let (status, body, _) = s
        .post(
            &path,
            &json!({"entities": [entity("a", "ended"), entity("b", "ended")]}),
        )
        .await;
    assert_eq!(status, 200);
    let u = body["unprocessedEntities"].as_array().unwrap();
    assert_eq!(u.len(), 2);
    assert_eq!(u[1]["originalRequestIndex"], 1);
    assert_eq!(u[1]["isRetryable"], true);
    assert_eq!(u[1]["event"]["id"], "b");
    s.sim.set_faults(&FaultUpdate {
        reject_fraction: Some(0.0),
        error_fraction: Some(1.0),
        ..Default::default()
    });
    let (status, _, headers) = s.post(&path, &json!({"entities": [entity("c", "ended")]})).await;
    assert!([500, 502, 503, 504].contains(&status), "{status}");
    assert!(headers.contains_key("inin-correlation-id"));
    s.sim.set_faults(&FaultUpdate {
        error_fraction: Some(0.0),
        outage_secs: Some(30.0),
        ..Default::default()
    });
    let (status, _, _) = s.post(&path, &json!({"entities": [entity("d", "ended")]})).await;
    assert_eq!(status, 503);
    let token = common::sim_token_request(&s.base).await;
    assert_eq!(token.status().as_u16(), 503, "an outage takes the login host down too");
    // Faults can also be set over HTTP, as an operator does in staging.
    let resp = reqwest::Client::new()
        .post(format!("{}/sim/faults", s.base))
        .json(&json!({"outageSecs": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (status, _, _) = s.post(&path, &json!({"entities": [entity("e", "ended")]})).await;
    assert_eq!(status, 200);
    let report: Value = reqwest::get(format!("{}/sim/report", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["entities_rejected"], 2);
    assert_eq!(report["server_errors"], 1);
    assert_eq!(report["outage_refusals"], 2);
    assert_eq!(report["unique_ids"], 1);
}

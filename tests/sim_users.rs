//! The Genesys Cloud simulator's user and status sync endpoints, driven as a client of the real
//! service would: SCIM users (refused with a SCIM error that says why, versioned, list pages held
//! to 25), presence sources and definitions, and presence events checked one by one.

mod common;

use std::sync::Arc;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const USERS: &str = "/api/v2/scim/v2/users";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Sim {
    sim: Arc<CloudSim>,
    base: String,
    token: String,
    http: reqwest::Client,
    _sd: Shutdown,
}

struct Answer {
    status: u16,
    body: Value,
    headers: HeaderMap,
}

async fn start() -> Sim {
    let sim = CloudSim::new(SimConfig {
        requests_per_minute: 100_000,
        ..SimConfig::default()
    });
    let sd = Shutdown::new();
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap(), sd.clone()).await.unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let token = common::sim_token(&base).await;
    Sim {
        sim,
        base,
        token,
        http,
        _sd: sd,
    }
}

impl Sim {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>, if_match: Option<&str>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b.to_string());
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer { status, body, headers }
    }

    async fn create(&self, user: &Value) -> Answer {
        self.call(reqwest::Method::POST, USERS, Some(user), None).await
    }

    async fn list(&self, query: &str) -> Answer {
        self.call(reqwest::Method::GET, &format!("{USERS}?{query}"), None, None)
            .await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer { status, body, headers }
    }

    async fn patch(&self, id: &str, ops: Value, if_match: Option<&str>) -> Answer {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        self.call(reqwest::Method::PATCH, &format!("{USERS}/{id}"), Some(&body), if_match)
            .await
    }
}

fn jdoe() -> Value {
    json!({
        "userName": "jdoe@example.com",
        "displayName": "Jane Doe",
        "externalId": "JDoe",
        "phoneNumbers": [
            {"type": "work", "value": "tel:+13175550100;ext=2100"},
            {"type": "mobile", "value": "+13175550199"}
        ]
    })
}

fn scim_error(a: &Answer, status: u16, scim_type: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    let expected = if scim_type.is_empty() {
        Value::Null
    } else {
        json!(scim_type)
    };
    assert_eq!(a.body["scimType"], expected, "{}", a.body);
    assert_eq!(a.body["status"], status.to_string());
    assert!(a.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(a.headers["content-type"], "application/scim+json");
}

#[tokio::test]
async fn a_user_is_created_versioned_and_found_by_user_name_or_external_id() {
    let s = start().await;
    let created = s.create(&jdoe()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["meta"]["version"], "W/\"1\"");
    assert_eq!(created.headers["etag"], "W/\"1\"");
    assert_eq!(created.body["active"], true, "active unless told otherwise");
    assert_eq!(created.body["phoneNumbers"][0]["value"], "tel:+13175550100;ext=2100");

    let got = s.call(reqwest::Method::GET, &format!("{USERS}/{id}"), None, None).await;
    assert_eq!((got.status, &got.body), (200, &created.body));
    // userName is matched without regard to case, externalId exactly.
    let by_name = s.list("filter=userName%20eq%20%22JDOE@example.com%22").await;
    assert_eq!(by_name.body["totalResults"], 1);
    assert_eq!(by_name.body["Resources"][0]["id"], id.as_str());
    assert_eq!(
        s.list("filter=externalId%20eq%20%22JDoe%22").await.body["totalResults"],
        1
    );
    assert_eq!(
        s.list("filter=externalId%20eq%20%22jdoe%22").await.body["totalResults"],
        0
    );
    scim_error(&s.list("filter=title%20co%20%22x%22").await, 400, "invalidFilter");
}

#[tokio::test]
async fn a_taken_user_name_is_a_conflict_in_any_case() {
    let s = start().await;
    assert_eq!(s.create(&jdoe()).await.status, 201);
    let mut again = jdoe();
    again["userName"] = json!("JDoe@Example.com");
    again["externalId"] = json!("other");
    scim_error(&s.create(&again).await, 409, "uniqueness");
    // A PATCH to another user's name too.
    let other = s
        .create(&json!({"userName": "rroe@example.com", "displayName": "R Roe"}))
        .await;
    let id = other.body["id"].as_str().unwrap();
    let a = s
        .patch(
            id,
            json!([{"op": "replace", "path": "userName", "value": "jdoe@example.com"}]),
            None,
        )
        .await;
    scim_error(&a, 409, "uniqueness");
    assert_eq!(s.sim.report().scim_conflicts, 2);
}

#[tokio::test]
async fn what_the_models_forbid_is_refused_with_the_reason() {
    let s = start().await;
    let no_display = json!({"userName": "a@example.com"});
    let a = s.create(&no_display).await;
    scim_error(&a, 400, "invalidValue");
    assert!(a.body["detail"].as_str().unwrap().contains("displayName"), "{}", a.body);
    let mut bad_phone = jdoe();
    bad_phone["phoneNumbers"] = json!([{"type": "fax", "value": "+1"}]);
    scim_error(&s.create(&bad_phone).await, 400, "invalidValue");
    let mut not_email = jdoe();
    not_email["userName"] = json!("jdoe");
    scim_error(&s.create(&not_email).await, 400, "invalidValue");
    let mut unknown_field = jdoe();
    unknown_field["nickName"] = json!("J");
    let a = s.create(&unknown_field).await;
    scim_error(&a, 400, "invalidValue");
    assert!(a.body["detail"].as_str().unwrap().contains("nickName"), "{}", a.body);
    assert!(s.sim.scim_users().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_patch_changes_what_it_names_and_a_stale_version_is_refused() {
    let s = start().await;
    let created = s.create(&jdoe()).await;
    let id = created.body["id"].as_str().unwrap();
    let ops = json!([
        {"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+13175550000"},
        {"op": "add", "path": "phoneNumbers[type eq \"home\"].value", "value": "+13175551111"},
        {"op": "remove", "path": "phoneNumbers[type eq \"work\"]"},
        {"op": "replace", "path": "displayName", "value": "Jane Q. Doe"}
    ]);
    let a = s.patch(id, ops, Some("W/\"1\"")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["etag"], "W/\"2\"");
    assert_eq!(a.body["displayName"], "Jane Q. Doe");
    let phones: Vec<(String, String)> = a.body["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["type"].as_str().unwrap().into(), p["value"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        phones,
        [
            ("mobile".to_string(), "+13175550000".to_string()),
            ("home".to_string(), "+13175551111".to_string())
        ]
    );
    // The version the client read is gone now.
    let stale = s
        .patch(
            id,
            json!([{"op": "replace", "path": "title", "value": "x"}]),
            Some("W/\"1\""),
        )
        .await;
    scim_error(&stale, 400, "invalidVers");
    scim_error(
        &s.patch(id, json!([{"op": "replace", "path": "nickName", "value": "J"}]), None)
            .await,
        400,
        "invalidPath",
    );
    let wrong_schema = json!({"schemas": ["urn:x"], "Operations": []});
    let a = s
        .call(
            reqwest::Method::PATCH,
            &format!("{USERS}/{id}"),
            Some(&wrong_schema),
            None,
        )
        .await;
    scim_error(&a, 400, "invalidSyntax");
    let r = s.sim.report();
    assert_eq!(
        (r.scim_users_patched, r.scim_patch_operations, r.scim_stale_versions),
        (1, 4, 1)
    );
    // Deactivating is a PATCH; deleting removes.
    let off = s
        .patch(
            id,
            json!([{"op": "replace", "path": "active", "value": false}]),
            Some("W/\"2\""),
        )
        .await;
    assert_eq!((off.status, &off.body["active"]), (200, &json!(false)));
    assert_eq!(
        s.call(reqwest::Method::DELETE, &format!("{USERS}/{id}"), None, None)
            .await
            .status,
        204
    );
    scim_error(
        &s.call(reqwest::Method::GET, &format!("{USERS}/{id}"), None, None).await,
        404,
        "",
    );
}

#[tokio::test]
async fn list_pages_hold_at_most_twenty_five() {
    let s = start().await;
    for i in 0..30 {
        let u = json!({"userName": format!("u{i:02}@example.com"), "displayName": format!("U {i}")});
        assert_eq!(s.create(&u).await.status, 201);
    }
    let big = s.list("count=100").await;
    assert_eq!(big.status, 200);
    assert_eq!(
        (&big.body["totalResults"], &big.body["itemsPerPage"]),
        (&json!(30), &json!(25))
    );
    assert_eq!(
        s.sim.report().scim_oversized_pages,
        1,
        "a client asking for more is counted"
    );
    let rest = s.list("startIndex=26&count=25").await;
    assert_eq!(rest.body["Resources"].as_array().unwrap().len(), 5);
    assert_eq!(rest.body["startIndex"], 26);
    assert_eq!(s.sim.report().scim_oversized_pages, 1);
}

#[tokio::test]
async fn each_organization_has_its_own_presence_definitions_and_sources() {
    let (a, b) = (start().await, start().await);
    let defs = a
        .call(reqwest::Method::GET, "/api/v2/presence/definitions", None, None)
        .await;
    assert_eq!(defs.status, 200, "{}", defs.body);
    let entities = defs.body["entities"].as_array().unwrap();
    let systems: Vec<&str> = entities.iter().map(|d| d["systemPresence"].as_str().unwrap()).collect();
    for p in ["Available", "Busy", "Away", "Meal", "Meeting", "Offline"] {
        assert!(systems.contains(&p), "{p} missing: {systems:?}");
    }
    assert!(entities.iter().all(|d| d["languageLabels"].is_object()));
    let other = b
        .call(reqwest::Method::GET, "/api/v2/presence/definitions", None, None)
        .await;
    assert_ne!(
        entities[0]["id"], other.body["entities"][0]["id"],
        "ids are per organization: look them up"
    );

    let created = a
        .post_json("/api/v2/presence/sources", &json!({"name": "cic-conduit"}))
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let listed = a
        .call(reqwest::Method::GET, "/api/v2/presence/sources", None, None)
        .await;
    assert_eq!(listed.body["entities"][0]["id"], id);
    let got = a
        .call(
            reqwest::Method::GET,
            &format!("/api/v2/presence/sources/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!((got.status, &got.body["name"]), (200, &json!("cic-conduit")));
    let nameless = a
        .post_json("/api/v2/presence/sources", &json!({"description": "x"}))
        .await;
    assert_eq!(nameless.status, 400, "name is required");
}

#[tokio::test]
async fn presence_events_are_checked_one_by_one() {
    let s = start().await;
    let user = s.create(&jdoe()).await.body["id"].as_str().unwrap().to_string();
    let source = s
        .post_json("/api/v2/presence/sources", &json!({"name": "cic-conduit"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let busy = s
        .sim
        .presence_definitions()
        .into_iter()
        .find(|d| d["systemPresence"] == "Busy")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = |id: &str, user: &str, definition: &str| {
        json!({"eventId": id, "eventDateTime": "2026-11-30T10:00:00.000Z", "userId": user,
               "sourceId": source, "presenceDefinitionId": definition})
    };
    let v4 = "3f2b8a4e-1c2d-4e5f-9a6b-7c8d9e0f1a2b";
    let v5 = "3f2b8a4e-1c2d-5e5f-9a6b-7c8d9e0f1a2b";
    let batch = json!({"userPresenceEvents": [
        event(v4, &user, &busy),
        event(v5, &user, &busy),
        event("6f2b8a4e-1c2d-4e5f-9a6b-7c8d9e0f1a2b", "nobody", &busy),
        event("7f2b8a4e-1c2d-4e5f-9a6b-7c8d9e0f1a2b", &user, "no-such-definition"),
    ]});
    let a = s.post_json("/api/v2/events/users/presence", &batch).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let errors = a.body["errors"].as_array().unwrap();
    let refused: Vec<&str> = errors.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
    assert_eq!(refused.len(), 3, "{errors:?}");
    assert!(!refused.contains(&v4));
    assert!(
        errors
            .iter()
            .all(|e| e["retryable"] == false && e["message"].as_str().is_some_and(|m| !m.is_empty()))
    );
    let taken = s.sim.presence_events();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].user_id.as_str(), taken[0].system_presence.as_deref()),
        (user.as_str(), Some("Busy"))
    );
    // The same event again is taken and counted as a duplicate.
    let again = json!({"userPresenceEvents": [event(v4, &user, &busy)]});
    assert_eq!(s.post_json("/api/v2/events/users/presence", &again).await.status, 200);
    assert_eq!(s.sim.report().presence_duplicates, 1);
    // A body that breaks the model is refused whole, naming the field.
    let broken = json!({"userPresenceEvents": [{"eventId": v4, "userId": user, "sourceId": "x"}]});
    let a = s.post_json("/api/v2/events/users/presence", &broken).await;
    assert_eq!(a.status, 400);
    assert!(a.body.to_string().contains("eventDateTime"), "{}", a.body);
}

/// The user mapping's writes, as the simulated organization takes them: the create body is
/// accepted, an edit in CIC becomes one PATCH, and once applied the diff is empty (a second
/// reconcile writes nothing).
#[tokio::test]
async fn the_mappings_least_write_makes_the_cloud_user_equal() {
    use cic_conduit::users::mapping::{create_body, desired, diff, patch_body};
    let s = start().await;
    let cic = |display: &str, mobile: &str| {
        json!({"configurationId": {"id": "jdoe", "displayName": display},
               "personalInformationProperties": {
                   "emailAddress": "jdoe@example.com",
                   "phoneNumberOfBusiness1": {"number": "+13175550100", "extension": "2100"},
                   "phoneNumberOfMobile": {"number": mobile, "extension": ""}}})
    };
    let first = desired(&cic("", "+13175550199"), None).unwrap();
    let created = s.create(&create_body(&first)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(diff(&created.body, &first).is_empty(), "created equal");
    let id = created.body["id"].as_str().unwrap().to_string();

    let edited = desired(&cic("Jane Doe", "+13175550000"), None).unwrap();
    let ops = diff(&created.body, &edited);
    assert_eq!(ops.len(), 2, "display name and mobile: {ops:?}");
    let tag = created.headers["etag"].to_str().unwrap().to_string();
    let patched = s
        .call(
            reqwest::Method::PATCH,
            &format!("{USERS}/{id}"),
            Some(&patch_body(ops)),
            Some(&tag),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let now = s.call(reqwest::Method::GET, &format!("{USERS}/{id}"), None, None).await;
    assert!(
        diff(&now.body, &edited).is_empty(),
        "equal after one PATCH: {}",
        now.body
    );
    let r = s.sim.report();
    assert_eq!((r.scim_users_created, r.scim_users_patched), (1, 1));
}

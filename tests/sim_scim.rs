//! The Genesys Cloud simulator's SCIM users, driven as a provisioning client of the real service
//! would: it refuses what the real service refuses (with a SCIM error that says why), versions
//! each user, and holds list pages to 25.

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
    let v: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Sim {
        sim,
        base,
        token: v["access_token"].as_str().unwrap().to_string(),
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

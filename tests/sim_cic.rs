//! The CIC (ICWS) simulator, driven over loopback as an ICWS client drives CIC: login, session
//! checks, queue subscriptions with their full-then-delta messages, polling, logout, backup.

mod common;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::traffic::Change;
use serde_json::{Value, json};

const CT: &str = "application/vnd.inin.icws+JSON;charset=utf-8";

struct Client {
    http: reqwest::Client,
    base: String,
    sid: String,
    csrf: String,
    cookie: String,
}

async fn start(cfg: CicSimConfig) -> (Arc<CicSim>, String, Shutdown) {
    let sim = CicSim::new(cfg);
    let sd = Shutdown::new();
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap(), sd.clone()).await.unwrap();
    (sim, format!("http://{addr}"), sd)
}

async fn login_raw(base: &str, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/icws/connection?include=features,version"))
        .header("content-type", CT)
        .header("accept-language", "en-us")
        .body(
            json!({"__type": "urn:inin.com:connection:icAuthConnectionRequestSettings",
                   "applicationName": "test", "userID": user, "password": password})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
}

async fn login(base: &str) -> Client {
    let resp = login_raw(base, "PureCloudAdmin", "sim-password").await;
    assert_eq!(resp.status().as_u16(), 201);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["features"][0], json!({"featureId": "messaging", "version": 2}));
    assert!(v["alternateHostList"].is_array());
    Client {
        http: reqwest::Client::new(),
        base: base.to_string(),
        sid: v["sessionId"].as_str().unwrap().to_string(),
        csrf: v["csrfToken"].as_str().unwrap().to_string(),
        cookie,
    }
}

impl Client {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/icws/{}{path}", self.base, self.sid))
            .header("ININ-ICWS-CSRF-Token", &self.csrf)
            .header("cookie", &self.cookie)
            .header("content-type", CT)
    }

    async fn subscribe(&self, sub: &str, workgroup: &str, attrs: &[&str]) -> u16 {
        self.req(reqwest::Method::PUT, &format!("/messaging/subscriptions/queues/{sub}"))
            .body(json!({"queueIds": [{"queueType": 2, "queueName": workgroup}], "attributeNames": attrs}).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn poll(&self) -> Vec<Value> {
        let resp = self
            .req(reqwest::Method::GET, "/messaging/messages")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }
}

fn change(id: &str, attrs: &[(&'static str, &str)]) -> Change {
    Change {
        interaction_id: id.to_string(),
        attributes: attrs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    }
}

#[tokio::test]
async fn login_and_session_checks_are_strict() {
    let (sim, base, _sd) = start(CicSimConfig::default()).await;
    let bad = login_raw(&base, "PureCloudAdmin", "wrong").await;
    assert_eq!(bad.status().as_u16(), 400);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["errorId"], "error.request.connection.authenticationFailure");
    let c = login(&base).await;
    assert_eq!(c.poll().await, Vec::<Value>::new());
    // Without the CSRF header, without the cookie, or for another session: 401.
    let no_csrf = c
        .http
        .get(format!("{}/icws/{}/messaging/messages", base, c.sid))
        .header("cookie", &c.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status().as_u16(), 401);
    let no_cookie = c
        .http
        .get(format!("{}/icws/{}/messaging/messages", base, c.sid))
        .header("ININ-ICWS-CSRF-Token", &c.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status().as_u16(), 401);
    let status = c
        .req(reqwest::Method::GET, "/connection/switchover-status")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().as_u16(), 200);
    let out = c.req(reqwest::Method::DELETE, "/connection").send().await.unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let after = c.req(reqwest::Method::GET, "/messaging/messages").send().await.unwrap();
    assert_eq!(after.status().as_u16(), 401, "a logged-out session is gone");
    let r = sim.report();
    assert_eq!((r.logins, r.logins_refused, r.unauthorized), (1, 1, 3));
}

#[tokio::test]
async fn a_subscription_gets_the_full_contents_then_only_deltas() {
    let (sim, base, _sd) = start(CicSimConfig {
        linger: std::time::Duration::ZERO,
        ..CicSimConfig::default()
    })
    .await;
    sim.apply(&[
        change(
            "1000000001",
            &[
                ("Eic_State", "A"),
                ("Eic_WorkgroupName", "Support"),
                ("Eic_RemoteAddress", "+13175551234"),
            ],
        ),
        change("1000000002", &[("Eic_State", "O"), ("Eic_WorkgroupName", "Sales")]),
    ]);
    let c = login(&base).await;
    assert_eq!(c.subscribe("s1", "Support", &["eic_state", "Eic_UserName"]).await, 200);
    let first = c.poll().await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["isDelta"], false);
    assert_eq!(first[0]["subscriptionId"], "s1");
    assert_eq!(
        first[0]["interactionsAdded"],
        json!([{"interactionId": "1000000001", "attributes": {"eic_state": "A"}}]),
        "only the subscribed queue, only the subscribed attributes, under the subscriber's names"
    );
    // A change: only what changed. Another workgroup's interaction: nothing.
    sim.apply(&[
        change(
            "1000000001",
            &[
                ("Eic_State", "C"),
                ("EIC_USERNAME", "jdoe"),
                ("Eic_RemoteAddress", "+13175551234"),
            ],
        ),
        change("1000000002", &[("Eic_State", "C")]),
    ]);
    let delta = c.poll().await;
    assert_eq!(delta.len(), 1);
    assert_eq!(delta[0]["isDelta"], true);
    assert_eq!(
        delta[0]["interactionsChanged"],
        json!([{"interactionId": "1000000001", "attributes": {"eic_state": "C", "Eic_UserName": "jdoe"}}])
    );
    // A new interaction in the queue is added whole; an ended one changes, then leaves.
    sim.apply(&[
        change("1000000003", &[("Eic_State", "O"), ("Eic_WorkgroupName", "Support")]),
        change("1000000001", &[("Eic_State", "I")]),
    ]);
    let m = c.poll().await;
    assert_eq!(m[0]["interactionsAdded"][0]["interactionId"], "1000000003");
    assert_eq!(
        m[0]["interactionsChanged"],
        json!([{"interactionId": "1000000001", "attributes": {"eic_state": "I"}}])
    );
    assert_eq!(m[0]["interactionsRemoved"], json!(["1000000001"]));
    // A transfer out of the queue removes it.
    sim.apply(&[change("1000000003", &[("Eic_WorkgroupName", "Sales")])]);
    assert_eq!(c.poll().await[0]["interactionsRemoved"], json!(["1000000003"]));
    // Re-subscribing starts again with the full contents.
    assert_eq!(c.subscribe("s1", "Sales", &["Eic_State"]).await, 200);
    let again = c.poll().await;
    assert_eq!(again[0]["isDelta"], false);
    assert_eq!(again[0]["interactionsAdded"].as_array().unwrap().len(), 2);
    // Bad subscriptions are refused with a reason.
    assert_eq!(c.subscribe("s2", "Support", &[]).await, 400);
}

#[tokio::test]
async fn the_backup_of_a_pair_refuses_logins_with_the_pair() {
    let (sim, base, _sd) = start(CicSimConfig {
        pair: vec!["cic-a".into(), "cic-b".into()],
        backup: true,
        ..CicSimConfig::default()
    })
    .await;
    let resp = login_raw(&base, "PureCloudAdmin", "sim-password").await;
    assert_eq!(resp.status().as_u16(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["alternateHostList"], json!(["cic-a", "cic-b"]));
    sim.set_backup(false);
    let c = login(&base).await;
    sim.drop_sessions();
    let gone = c.req(reqwest::Method::GET, "/messaging/messages").send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 401, "dropped sessions must log in again");
}

#[tokio::test]
async fn generated_traffic_reaches_subscribers() {
    let (sim, base, sd) = start(CicSimConfig::default()).await;
    let c = login(&base).await;
    for wg in ["Support", "Sales", "Billing", "Retention", "Technical"] {
        assert_eq!(c.subscribe(wg, wg, &["Eic_State", "Eic_CallIdKey"]).await, 200);
    }
    tokio::spawn(sim.clone().run_traffic(200.0, 0.05, sd.clone()));
    let added = Cell::new(0);
    let (cl, n) = (&c, &added);
    common::wait_until(
        std::time::Duration::from_secs(20),
        "generated traffic",
        move || async move {
            for m in cl.poll().await {
                n.set(n.get() + m["interactionsAdded"].as_array().map_or(0, |a| a.len()));
            }
            n.get() >= 50
        },
    )
    .await;
    assert!(sim.report().changes > 0);
    sd.trigger();
}

#[tokio::test]
async fn disconnected_interactions_linger_then_leave() {
    let (sim, base, _sd) = start(CicSimConfig {
        linger: std::time::Duration::from_millis(50),
        ..CicSimConfig::default()
    })
    .await;
    let c = login(&base).await;
    sim.apply(&[change(
        "1000000009",
        &[("Eic_State", "C"), ("Eic_WorkgroupName", "Support")],
    )]);
    assert_eq!(c.subscribe("s1", "Support", &["Eic_State"]).await, 200);
    c.poll().await;
    sim.apply(&[change("1000000009", &[("Eic_State", "E")])]);
    let m = c.poll().await;
    assert_eq!(m[0]["interactionsChanged"][0]["attributes"]["Eic_State"], "E");
    assert_eq!(
        m[0]["interactionsRemoved"],
        json!([]),
        "still in the queue while it lingers"
    );
    // A subscriber arriving now still sees how it ended.
    assert_eq!(c.subscribe("s2", "Support", &["Eic_State"]).await, 200);
    let snap = c.poll().await;
    assert_eq!(snap[0]["interactionsAdded"][0]["attributes"]["Eic_State"], "E");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        sim.sweep();
        let m = c.poll().await;
        if m.iter().any(|m| m["interactionsRemoved"] == json!(["1000000009"])) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never removed");
    }
    assert_eq!(sim.interactions(), 0);
}

#[tokio::test]
async fn user_statuses_and_the_user_directory() {
    let (sim, base, _sd) = start(CicSimConfig::default()).await;
    sim.set_status("agent001", "Available", true, false);
    let c = login(&base).await;
    let put = c
        .req(reqwest::Method::PUT, "/messaging/subscriptions/status/user-statuses")
        .body(json!({"userIds": ["agent001", "agent002"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let first = c.poll().await;
    assert_eq!(first[0]["__type"], "urn:inin.com:status:userStatusMessage");
    assert_eq!(first[0]["isDelta"], false);
    assert_eq!(first[0]["userStatusList"][0]["statusId"], "Available");
    let changed = first[0]["userStatusList"][0]["statusChanged"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(changed.len() == 16 && changed.ends_with('Z'), "{changed}");
    sim.set_status("agent002", "Away from desk", true, false);
    sim.set_status("agent077", "Gone home", false, false);
    let next = c.poll().await;
    assert_eq!(next.len(), 1, "only subscribed users: {next:?}");
    assert_eq!(next[0]["isDelta"], true);
    assert_eq!(next[0]["userStatusList"][0]["userId"], "agent002");

    // The directory, a page at a time.
    let page = c
        .req(
            reqwest::Method::GET,
            "/configuration/users?select=configurationId,personalInformationProperties",
        )
        .header("range", "items=0-19")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["content-range"], "items 0-19/50");
    let v: Value = page.json().await.unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert_eq!(items[1]["configurationId"]["id"], "agent001");
    assert!(items[1]["personalInformationProperties"]["phoneNumberOfBusiness1"]["number"].is_string());
    assert!(
        items[9]["personalInformationProperties"]["emailAddress"].is_null(),
        "some users lack an email"
    );
    let last = c
        .req(reqwest::Method::GET, "/configuration/users")
        .header("range", "items=40-99")
        .send()
        .await
        .unwrap();
    assert_eq!(last.headers()["content-range"], "items 40-49/50");
    let bad = c
        .req(reqwest::Method::GET, "/configuration/users")
        .header("range", "rows=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

/// The user directory changes over time: a read selects properties, a subscription gets every
/// user and then each change, and a scenario adds, edits and removes users.
#[tokio::test]
async fn the_user_directory_changes_and_subscribers_hear_each_change() {
    let (sim, base, _sd) = start(CicSimConfig {
        directory_users: 3,
        ..CicSimConfig::default()
    })
    .await;
    let c = login(&base).await;
    let ids: Value = c
        .req(reqwest::Method::GET, "/configuration/users?select=configurationId")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ids["items"][0]["personalInformationProperties"].is_null(),
        "only what was selected"
    );
    assert_eq!(ids["items"][2]["configurationId"]["id"], "agent002");
    let bad = c
        .req(reqwest::Method::GET, "/configuration/users?select=password")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let sub = c
        .req(reqwest::Method::PUT, "/messaging/subscriptions/configuration/users/u1")
        .json(&json!({"properties": ["configurationId", "personalInformationProperties"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status().as_u16(), 200);
    let first = c.poll().await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["__type"], "urn:inin.com:configuration.people:usersMessage");
    assert_eq!(
        (&first[0]["isDelta"], first[0]["added"].as_array().unwrap().len()),
        (&json!(false), 3)
    );

    let steps = cic_conduit::sim::cic::scenario::parse(concat!(
        r#"{"atMs": 0, "user": {"configurationId": {"id": "jdoe", "displayName": "Jane Doe"}, "personalInformationProperties": {"emailAddress": "jdoe@example.com"}}}"#,
        "\n",
        r#"{"atMs": 0, "user": {"configurationId": {"id": "agent001", "displayName": "Renamed"}}}"#,
        "\n",
        r#"{"atMs": 0, "userRemoved": "agent000"}"#,
    ))
    .unwrap();
    sim.clone().play(steps, Shutdown::new()).await;
    let msgs = c.poll().await;
    let kinds: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| {
            let key = ["added", "changed", "removed"]
                .into_iter()
                .find(|k| !m[*k].as_array().unwrap().is_empty())
                .unwrap();
            (key, m[key][0]["configurationId"]["id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        kinds,
        [("added", "jdoe"), ("changed", "agent001"), ("removed", "agent000")]
    );
    assert!(msgs.iter().all(|m| m["isDelta"] == true && m["subscriptionId"] == "u1"));
    let ids: Vec<String> = sim
        .directory()
        .iter()
        .map(|u| u["configurationId"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["agent001", "agent002", "jdoe"]);

    let off = c
        .req(
            reqwest::Method::DELETE,
            "/messaging/subscriptions/configuration/users/u1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(off.status().as_u16(), 204);
    sim.remove_user("jdoe");
    assert!(c.poll().await.is_empty(), "no messages after unsubscribing");
    assert_eq!(sim.report().user_changes, 4);
}

#[tokio::test]
async fn a_scenario_plays_in_order() {
    let (sim, base, sd) = start(CicSimConfig::default()).await;
    let c = login(&base).await;
    assert_eq!(c.subscribe("s1", "Support", &["Eic_State"]).await, 200);
    c.poll().await;
    let steps = cic_conduit::sim::cic::scenario::parse(
        r#"{"atMs": 0, "interactionId": "1000000042", "attributes": {"Eic_State": "O", "Eic_WorkgroupName": "Support"}}
{"atMs": 20, "interactionId": "1000000042", "attributes": {"Eic_State": "C"}}
{"atMs": 40, "switchover": "backup"}"#,
    )
    .unwrap();
    tokio::spawn(sim.clone().play(steps, sd.clone()));
    let states = RefCell::new(Vec::new());
    let (cl, st) = (&c, &states);
    // Until the switchover drops the session (401), collect the states polled.
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the scenario's end",
        move || async move {
            let resp = cl
                .req(reqwest::Method::GET, "/messaging/messages")
                .send()
                .await
                .unwrap();
            if resp.status().as_u16() == 401 {
                return true;
            }
            let msgs: Vec<Value> = resp.json().await.unwrap();
            for m in msgs {
                for key in ["interactionsAdded", "interactionsChanged"] {
                    for e in m[key].as_array().into_iter().flatten() {
                        st.borrow_mut()
                            .push(e["attributes"]["Eic_State"].as_str().unwrap().to_string());
                    }
                }
            }
            false
        },
    )
    .await;
    assert_eq!(states.into_inner(), ["O", "C"]);
    assert_eq!(
        login_raw(&base, "PureCloudAdmin", "sim-password")
            .await
            .status()
            .as_u16(),
        503
    );
}

#[test]
fn a_bad_scenario_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.jsonl");
    std::fs::write(
        &f,
        "{\"atMs\": 0, \"dropSessions\": true}\n{\"atMs\": 1, \"switchover\": \"maybe\"}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cic-conduit"))
        .args(["sim", "cic", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("switchover"), "{err}");
}

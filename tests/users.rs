//! User and status sync end to end: the CIC simulator's directory and statuses, the real conduit
//! binary, the Genesys Cloud simulator's SCIM users and presence events — over loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cic_conduit::shutdown::Shutdown;
use cic_conduit::sim::cic::{CicSim, CicSimConfig};
use cic_conduit::sim::cloud::{CloudSim, SimConfig};
use common::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const LIMIT: Duration = Duration::from_secs(30);

/// A CIC user as the directory holds it.
fn cic_user(id: &str, display: &str, email: Option<&str>, phones: &[(&str, &str, &str)]) -> Value {
    let mut personal = json!({});
    if let Some(e) = email {
        personal["emailAddress"] = json!(e);
    }
    for (property, number, ext) in phones {
        personal[*property] = json!({"number": number, "extension": ext});
    }
    json!({"configurationId": {"id": id, "displayName": display}, "personalInformationProperties": personal})
}

struct Rig {
    cic: Arc<CicSim>,
    cloud: Arc<CloudSim>,
    cloud_base: String,
    config: std::path::PathBuf,
    child: Option<std::process::Child>,
    addr: String,
    _stop: Shutdown,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new(directory: Vec<Value>) -> Rig {
        Rig::with(directory, 100_000).await
    }

    /// With the organization allowing `rpm` requests a minute.
    async fn with(directory: Vec<Value>, rpm: u64) -> Rig {
        let mut rig = Rig::prepared(directory, rpm).await;
        rig.start();
        rig
    }

    /// Everything but the conduit, which is not started yet (its `setup` has run).
    async fn prepared(directory: Vec<Value>, rpm: u64) -> Rig {
        let stop = Shutdown::new();
        let cic = CicSim::new(CicSimConfig {
            pair: vec!["127.0.0.1".into()],
            directory_users: 0,
            ..CicSimConfig::default()
        });
        for u in directory {
            cic.set_user(u);
        }
        let cic_addr = cic.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let cloud = CloudSim::new(SimConfig {
            requests_per_minute: rpm,
            ..SimConfig::default()
        });
        let cloud_addr = cloud.spawn("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("c.toml");
        let base = cloud_config_text(&data, cloud_addr, "")
            .replace("[sources.http]", "[sources.http]\nenabled = false")
            + &format!(
                "[sources.icws]\nenabled = true\nhosts = [\"http://{cic_addr}\"]\npassword = {{ env = \"TEST_CIC_PASSWORD\" }}\nworkgroups = [\"Support\"]\npoll_interval_ms = 100\nreconnect_max_ms = 1000\n[ha]\nmode = \"follow-primary\"\n[users]\nenabled = true\nstatus_map = {{ \"Custom Busy\" = \"Busy\" }}\n"
            );
        std::fs::write(&config, &base).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["setup", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let source = text
            .lines()
            .find_map(|l| l.strip_prefix("presence_source_id = \"")?.strip_suffix('"'))
            .expect("setup prints the presence source id")
            .to_string();
        std::fs::write(
            &config,
            base.replace("[users]\n", &format!("[users]\npresence_source_id = \"{source}\"\n")),
        )
        .unwrap();
        Rig {
            cic,
            cloud,
            cloud_base: format!("http://{cloud_addr}"),
            config,
            child: None,
            addr: String::new(),
            _stop: stop,
            _dir: dir,
        }
    }

    fn start(&mut self) {
        let (child, addr) = spawn_conduit_env(BIN, &self.config, &[("TEST_CIC_PASSWORD", "sim-password")]);
        self.child = Some(child);
        self.addr = addr;
    }

    /// SIGKILL.
    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        terminate(&child);
        assert!(child.wait().unwrap().success());
    }

    /// The cloud user whose `externalId` is `id`.
    fn cloud_user(&self, id: &str) -> Option<Value> {
        self.cloud.scim_user(id)
    }

    async fn health(&self) -> Value {
        serde_json::from_str(&get_text(&format!("http://{}/health", self.addr)).await).unwrap()
    }

    /// Waits for a full reconcile to have ended (after `before`, its last end seen).
    async fn reconciled_after(&self, before: &Value) {
        let before = before.clone();
        wait_until(LIMIT, "a reconcile", || async {
            let h = self.health().await;
            !h["users"]["last_reconcile"].is_null() && h["users"]["last_reconcile"] != before
        })
        .await;
    }

    /// Creates a cloud user directly (as an administrator would), returning it.
    async fn admin_create(&self, body: Value) -> Value {
        self.admin(reqwest::Method::POST, "", body, 201).await
    }

    async fn admin_patch(&self, id: &str, ops: Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.admin(reqwest::Method::PATCH, &format!("/{id}"), body, 200).await;
    }

    /// A SCIM request of an administrator's to `/users{path}`, answered `expect`.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value, expect: u16) -> Value {
        let token = sim_token(&self.cloud_base).await;
        let resp = client()
            .request(method, format!("{}/api/v2/scim/v2/users{path}", self.cloud_base))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), expect);
        resp.json().await.unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            drop(KillOnDrop(c.id()));
        }
    }
}

fn phones_of(u: &Value) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = u["phoneNumbers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["type"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    p.sort();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cic_users_are_kept_equal_to_the_organizations() {
    let all_phones = [
        ("phoneNumberOfBusiness1", "(317) 555-0100", "2100"),
        ("phoneNumberOfBusiness2", "317-555-0101", ""),
        ("phoneNumberOfMobile", "+1 317 555 0102", ""),
        ("phoneNumberOfHome1", "3175550103", "7"),
        ("phoneNumberOfFax", "3175550104", ""),
    ];
    let directory = vec![
        cic_user("jdoe", "John Doe", Some("jdoe@example.com"), &all_phones),
        cic_user("nomail", "No Mail", None, &[]),
        cic_user("blank", "", Some("blank@example.com"), &[]),
        cic_user("taken", "Taken", Some("owner@example.com"), &[]),
        cic_user("adopt", "Adopted", Some("adopt@example.com"), &[]),
    ];
    // Before the conduit: the organization has a user with `taken`'s email (another CIC
    // user's), and one with `adopt`'s email that nobody provisioned.
    let mut rig = Rig::prepared(directory, 100_000).await;
    rig.admin_create(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "owner@example.com", "displayName": "Owner", "externalId": "someone-else"}))
        .await;
    let adopted = rig
        .admin_create(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "adopt@example.com", "displayName": "Old name"}))
        .await;
    rig.start();

    // Initial sync: every mapping case.
    wait_until(LIMIT, "the first reconcile", || async {
        !rig.health().await["users"]["last_reconcile"].is_null()
    })
    .await;
    let h = rig.health().await;
    assert_eq!(
        (&h["users"]["synced"], &h["users"]["error"], &h["users"]["not_synced"]),
        (&json!(3), &json!(1), &json!(1)),
        "{h}"
    );
    let jdoe = rig.cloud_user("jdoe").expect("jdoe synced");
    assert_eq!(jdoe["userName"], "jdoe@example.com");
    assert_eq!(jdoe["displayName"], "John Doe");
    assert_eq!(
        phones_of(&jdoe),
        vec![
            ("home".into(), "tel:+13175550103;ext=7".into()),
            ("mobile".into(), "+13175550102".into()),
            ("other".into(), "+13175550104".into()),
            ("work".into(), "tel:+13175550100;ext=2100".into()),
            ("work2".into(), "+13175550101".into()),
        ]
    );
    assert_eq!(rig.cloud_user("blank").unwrap()["displayName"], "blank");
    assert!(rig.cloud_user("nomail").is_none());
    // Matched by email, not created twice: the same cloud user now carries the CIC id.
    let adopt = rig.cloud_user("adopt").unwrap();
    assert_eq!(adopt["id"], adopted["id"]);
    assert_eq!(adopt["displayName"], "Adopted");
    assert_eq!(
        rig.cloud.scim_users().len(),
        4,
        "owner, adopt, jdoe, blank and nothing else"
    );
    let report = rig.cloud.report();
    assert_eq!(
        report.scim_users_created,
        2 + 2,
        "two by the admin, jdoe and blank by the conduit"
    );
    assert_eq!(report.scim_conflicts, 0, "a taken email is found before any create");
    // The admin's listing says why each is not synced.
    let out = std::process::Command::new(BIN)
        .args(["users", "status", "--json", "--config"])
        .arg(&rig.config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a user in error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["nomail"]["state"], "not_synced");
    assert_eq!(listing["nomail"]["reason"], "not synced: no business email");
    assert_eq!(listing["taken"]["state"], "error");
    assert!(
        listing["taken"]["reason"]
            .as_str()
            .unwrap()
            .contains("belongs to another cloud user (CIC user someone-else)"),
        "{listing}"
    );
    assert_eq!(listing["jdoe"]["state"], "synced");
    assert!(listing["jdoe"]["last_synced"].is_string());

    // An edit in CIC reaches the cloud with one PATCH.
    let patched = rig.cloud.report().scim_users_patched;
    let mut edited = all_phones.to_vec();
    edited[2] = ("phoneNumberOfMobile", "3175550199", "");
    rig.cic
        .set_user(cic_user("jdoe", "John Doe", Some("jdoe@example.com"), &edited));
    wait_for(LIMIT, "the edit in the cloud", || {
        rig.cloud_user("jdoe")
            .is_some_and(|u| phones_of(&u).contains(&("mobile".into(), "+13175550199".into())))
    })
    .await;
    assert_eq!(rig.cloud.report().scim_users_patched, patched + 1);

    // A stale version: the cloud user changed behind the conduit; the edit still lands.
    let blank_id = rig.cloud_user("blank").unwrap()["id"].as_str().unwrap().to_string();
    rig.admin_patch(&blank_id, json!([{"op": "replace", "path": "title", "value": "Agent"}]))
        .await;
    let stale = rig.cloud.report().scim_stale_versions;
    rig.cic
        .set_user(cic_user("blank", "Now Named", Some("blank@example.com"), &[]));
    wait_for(LIMIT, "the display name added later", || {
        rig.cloud_user("blank").is_some_and(|u| u["displayName"] == "Now Named")
    })
    .await;
    assert_eq!(
        rig.cloud.report().scim_stale_versions,
        stale + 1,
        "sent once with the old version"
    );

    // A changed email updates the same user.
    rig.cic
        .set_user(cic_user("blank", "Now Named", Some("renamed@example.com"), &[]));
    wait_for(LIMIT, "the new email", || {
        rig.cloud_user("blank")
            .is_some_and(|u| u["userName"] == "renamed@example.com" && u["id"] == blank_id.as_str())
    })
    .await;

    // Removed from CIC: deactivated, not deleted.
    rig.cic.remove_user("adopt");
    wait_for(LIMIT, "adopt deactivated", || {
        rig.cloud_user("adopt").is_some_and(|u| u["active"] == false)
    })
    .await;
    assert_eq!(rig.cloud.report().scim_users_deleted, 0);

    // A restart reconciles an unchanged directory: no write, one page per 25 users.
    let before = rig.cloud.report();
    let last = rig.health().await["users"]["last_reconcile"].clone();
    rig.stop();
    rig.start();
    rig.reconciled_after(&last).await;
    let after = rig.cloud.report();
    assert_eq!(
        (
            after.scim_users_created,
            after.scim_users_patched,
            after.scim_users_deleted
        ),
        (
            before.scim_users_created,
            before.scim_users_patched,
            before.scim_users_deleted
        ),
        "an unchanged directory is not written"
    );
    assert_eq!(
        after.scim_list_requests - before.scim_list_requests,
        1,
        "6 cloud users: one page"
    );
    assert_eq!(after.scim_oversized_pages, 0);
    rig.stop();
}

/// The presences the cloud took for CIC user `id`, in arrival order.
fn presences(rig: &Rig, id: &str) -> Vec<String> {
    let Some(cloud_id) = rig.cloud_user(id).and_then(|u| u["id"].as_str().map(str::to_string)) else {
        return Vec::new();
    };
    rig.cloud
        .presence_events()
        .into_iter()
        .filter(|e| e.user_id == cloud_id)
        .map(|e| e.system_presence.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cic_statuses_become_presence_in_order_once() {
    let mut rig = Rig::new(vec![cic_user("jdoe", "John Doe", Some("jdoe@example.com"), &[])]).await;
    wait_for(LIMIT, "jdoe synced", || rig.cloud_user("jdoe").is_some()).await;
    for status in ["Available", "Do Not Disturb", "At Lunch", "Custom Busy", "Gone Home"] {
        rig.cic.set_status("jdoe", status, true, false);
    }
    let want = ["Available", "Busy", "Meal", "Busy", "Offline"];
    wait_for(LIMIT, "five presences", || presences(&rig, "jdoe").len() >= want.len()).await;
    assert_eq!(
        presences(&rig, "jdoe"),
        want,
        "in order, each mapped by meaning or by the config"
    );
    for e in rig.cloud.presence_events() {
        assert!(
            cic_conduit::sim::cloud::presence::is_v4_uuid(&e.event_id),
            "{}",
            e.event_id
        );
    }

    // A status nothing maps is reported, not guessed.
    rig.cic.set_status("jdoe", "Reorganizing the Files", true, false);
    let metrics_url = format!("http://{}/metrics", rig.addr);
    wait_until(LIMIT, "the unmapped status dead-lettered", || async {
        metric(
            &get_text(&metrics_url).await,
            "conduit_sink_events_dead_lettered_total{reason=\"unmapped_status\",sink=\"presence\"}",
        ) == 1.0
    })
    .await;

    // A user added to CIC whose status comes at once: the status waits for the user.
    rig.cic
        .set_user(cic_user("late", "Late", Some("late@example.com"), &[]));
    rig.cic.set_status("late", "In a Meeting", true, false);
    wait_for(LIMIT, "late's presence", || presences(&rig, "late") == ["Meeting"]).await;

    // A restart: the new session's snapshot of every status yields nothing already sent.
    let sent = rig.cloud.presence_events().len();
    rig.stop();
    rig.start();
    let metrics_url = format!("http://{}/metrics", rig.addr);
    wait_until(LIMIT, "the new session's status snapshot", || async {
        metric(
            &get_text(&metrics_url).await,
            "conduit_users_statuses_total{result=\"unchanged\"}",
        ) >= 2.0
    })
    .await;
    rig.cic.set_status("jdoe", "At a Training Session", true, false);
    wait_for(LIMIT, "the change after the restart", || {
        presences(&rig, "jdoe").len() == want.len() + 1
    })
    .await;
    let report = rig.cloud.report();
    assert_eq!(rig.cloud.presence_events().len(), sent + 1, "only the new change");
    assert_eq!(report.presence_duplicates, 0);
    assert_eq!(report.presence_events_refused, 0);
    rig.stop();
}

/// `n` CIC users `u000`.. with emails.
fn many(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = format!("u{i:03}");
            cic_user(&id, &format!("User {i}"), Some(&format!("{id}@example.com")), &[])
        })
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_the_initial_sync_lose_nothing_and_write_nothing_twice() {
    const USERS: usize = 150;
    // 1200 requests a minute: the sync takes several seconds, long enough to be cut.
    let mut rig = Rig::with(many(USERS), 1200).await;
    for at in [15, 45, 80, 120] {
        wait_for(LIMIT, "users created", || rig.cloud.report().scim_users_created >= at).await;
        rig.kill();
        rig.start();
    }
    wait_until(Duration::from_secs(60), "every user synced", || async {
        rig.health().await["users"]["synced"] == USERS
    })
    .await;
    let users = rig.cloud.scim_users();
    let mut ids: Vec<&str> = users.iter().filter_map(|u| u["externalId"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((users.len(), ids.len()), (USERS, USERS), "one cloud user per CIC user");
    let report = rig.cloud.report();
    assert_eq!(report.scim_users_created, USERS as u64, "each created once");
    assert_eq!((report.scim_users_patched, report.scim_conflicts), (0, 0));
    rig.stop();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_status_traffic_lose_no_change() {
    const USERS: usize = 10;
    let mut rig = Rig::new(many(USERS)).await;
    wait_until(LIMIT, "every user synced", || async {
        rig.health().await["users"]["synced"] == USERS
    })
    .await;
    // Each user goes through every standard status once: every change is a new id.
    let statuses: Vec<(&str, &str)> = cic_conduit::users::presence::DEFAULTS.to_vec();
    let mut sent = 0;
    // Changes set since this process started: a kill cuts delivery, not reading (what CIC
    // replaced before anyone read it is gone from CIC too; its snapshot holds the latest).
    let mut this_process = 0.0;
    for (step, (status, _)) in statuses.iter().enumerate() {
        for i in 0..USERS {
            rig.cic.set_status(&format!("u{i:03}"), status, true, false);
            sent += 1;
            this_process += 1.0;
        }
        if step % 4 == 1 {
            let url = format!("http://{}/metrics", rig.addr);
            wait_until(LIMIT, "the changes stored", || async {
                metric(&get_text(&url).await, "conduit_users_statuses_total{result=\"stored\"}") >= this_process
            })
            .await;
            // Cut while the step's changes are on their way.
            let at = rig.cloud.report().presence_events_accepted + 3;
            wait_for(LIMIT, "some of the step delivered", || {
                rig.cloud.report().presence_events_accepted >= at
            })
            .await;
            rig.kill();
            rig.start();
            this_process = 0.0;
            // The new session's snapshot read (and found already stored) before CIC goes on.
            let url = format!("http://{}/metrics", rig.addr);
            wait_until(LIMIT, "the new session's snapshot", || async {
                metric(
                    &get_text(&url).await,
                    "conduit_users_statuses_total{result=\"unchanged\"}",
                ) >= USERS as f64
            })
            .await;
        }
    }
    wait_for(LIMIT, "every change delivered", || {
        let mut ids: Vec<String> = rig.cloud.presence_events().into_iter().map(|e| e.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() >= sent
    })
    .await;
    let events = rig.cloud.presence_events();
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        sent,
        "each change exactly one id: none lost, none made twice"
    );
    // Each user's changes arrived in order (first arrivals; a batch cut by a kill is sent again
    // under the same ids).
    let want: Vec<&str> = statuses.iter().map(|(_, p)| *p).collect();
    for i in 0..USERS {
        let cloud_id = rig.cloud_user(&format!("u{i:03}")).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<String> = events
            .iter()
            .filter(|e| e.user_id == cloud_id && seen.insert(e.event_id.clone()))
            .map(|e| e.system_presence.clone().unwrap_or_default())
            .collect();
        assert_eq!(firsts, want, "user u{i:03}");
    }
    rig.stop();
}

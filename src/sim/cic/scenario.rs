//! Scenario files for the CIC simulator: a timeline of interaction changes, user-status changes,
//! users added, edited and removed, and switchovers, one JSON object a line (blank lines and lines
//! starting with `#` ignored):
//!
//! ```text
//! {"atMs": 0,    "interactionId": "1002658707", "attributes": {"Eic_State": "O", "Eic_WorkgroupName": "Support"}}
//! {"atMs": 1500, "interactionId": "1002658707", "attributes": {"Eic_State": "C", "Eic_UserName": "jdoe"}}
//! {"atMs": 2000, "userStatus": {"userId": "jdoe", "statusId": "On a call", "loggedIn": true, "onPhone": true}}
//! {"atMs": 3000, "user": {"configurationId": {"id": "jdoe", "displayName": "Jane Doe"},
//!   "personalInformationProperties": {"emailAddress": "jdoe@example.com",
//!   "phoneNumberOfMobile": {"number": "+13175550199", "extension": ""}}}}
//! {"atMs": 4000, "userRemoved": "jdoe"}
//! {"atMs": 9000, "switchover": "backup"}
//! {"atMs": 9500, "dropSessions": true}
//! ```
//!
//! `atMs` counts from the start of the play and must not go backwards. A bad line is refused with
//! its number and what is wrong.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::CicSim;
use crate::shutdown::Shutdown;
use crate::sim::traffic::Change;

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Interaction attributes change.
    Interaction {
        /// The interaction.
        id: String,
        /// Attribute name → value.
        attributes: Vec<(String, String)>,
    },
    /// A user's status changes.
    UserStatus {
        /// The user.
        user: String,
        /// The status.
        status: String,
        /// Logged in.
        logged_in: bool,
        /// On the phone.
        on_phone: bool,
    },
    /// A user is added to the directory, or replaced (a configuration object, see [`super::users`]).
    User(serde_json::Value),
    /// A user leaves the directory.
    UserRemoved(String),
    /// This server becomes the backup (`true`: sessions dropped) or the primary.
    Switchover {
        /// Whether it is now the backup.
        backup: bool,
    },
    /// Every session is dropped.
    DropSessions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Line {
    at_ms: u64,
    interaction_id: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
    user_status: Option<StatusLine>,
    switchover: Option<String>,
    drop_sessions: Option<bool>,
    user: Option<serde_json::Value>,
    user_removed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StatusLine {
    user_id: String,
    status_id: String,
    #[serde(default = "yes")]
    logged_in: bool,
    #[serde(default)]
    on_phone: bool,
}

fn yes() -> bool {
    true
}

/// Parses a scenario; errors name the line.
pub fn parse(text: &str) -> Result<Vec<(Duration, Step)>, String> {
    let mut out = Vec::new();
    let mut last = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {n}: {e}"))?;
        if l.at_ms < last {
            return Err(format!(
                "line {n}: atMs {} goes back in time (previous {last})",
                l.at_ms
            ));
        }
        last = l.at_ms;
        let given = [
            l.interaction_id.is_some(),
            l.user_status.is_some(),
            l.switchover.is_some(),
            l.drop_sessions == Some(true),
            l.user.is_some(),
            l.user_removed.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(format!(
                "line {n}: give exactly one of interactionId (with attributes), userStatus, user, userRemoved, switchover, dropSessions"
            ));
        }
        let step = if let Some(id) = l.interaction_id {
            let attributes: Vec<(String, String)> = l.attributes.unwrap_or_default().into_iter().collect();
            if id.is_empty() || attributes.is_empty() {
                return Err(format!(
                    "line {n}: an interaction step needs an interactionId and attributes"
                ));
            }
            Step::Interaction { id, attributes }
        } else if let Some(s) = l.user_status {
            Step::UserStatus {
                user: s.user_id,
                status: s.status_id,
                logged_in: s.logged_in,
                on_phone: s.on_phone,
            }
        } else if let Some(to) = l.switchover {
            match to.as_str() {
                "backup" => Step::Switchover { backup: true },
                "primary" => Step::Switchover { backup: false },
                other => {
                    return Err(format!(
                        "line {n}: switchover must be \"backup\" or \"primary\", not {other:?}"
                    ));
                }
            }
        } else if let Some(user) = l.user {
            let id = user["configurationId"]["id"].as_str().unwrap_or("");
            let known = user
                .as_object()
                .is_some_and(|o| o.keys().all(|k| super::users::PROPERTIES.contains(&k.as_str())));
            if id.is_empty() || !known {
                return Err(format!(
                    "line {n}: a user needs configurationId.id, and only configurationId and personalInformationProperties"
                ));
            }
            Step::User(user)
        } else if let Some(id) = l.user_removed.filter(|id| !id.is_empty()) {
            Step::UserRemoved(id)
        } else if l.drop_sessions == Some(true) {
            Step::DropSessions
        } else {
            return Err(format!("line {n}: userRemoved needs a user id"));
        };
        out.push((Duration::from_millis(l.at_ms), step));
    }
    Ok(out)
}

impl CicSim {
    /// Plays a scenario from now on, until its end or `shutdown`.
    pub async fn play(self: Arc<Self>, steps: Vec<(Duration, Step)>, shutdown: Shutdown) {
        let start = tokio::time::Instant::now();
        // Attribute names, interned: a scenario uses a handful, each kept once for the process.
        let mut names: std::collections::HashMap<String, &'static str> = std::collections::HashMap::new();
        for (at, step) in steps {
            tokio::select! {
                _ = tokio::time::sleep_until(start + at) => {}
                _ = shutdown.wait() => return,
            }
            match step {
                Step::Interaction { id, attributes } => {
                    // Attribute names are kept as the scenario spells them.
                    let attributes = attributes
                        .into_iter()
                        .map(|(k, v)| {
                            let name = *names
                                .entry(k)
                                .or_insert_with_key(|k| Box::leak(k.clone().into_boxed_str()));
                            (name, v)
                        })
                        .collect();
                    self.apply(&[Change {
                        interaction_id: id,
                        attributes,
                    }]);
                }
                Step::UserStatus {
                    user,
                    status,
                    logged_in,
                    on_phone,
                } => self.set_status(&user, &status, logged_in, on_phone),
                Step::Switchover { backup } => {
                    self.set_backup(backup);
                    if backup {
                        self.drop_sessions();
                    }
                }
                Step::DropSessions => self.drop_sessions(),
                Step::User(user) => self.set_user(user),
                Step::UserRemoved(id) => self.remove_user(&id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_names_bad_lines() {
        let text = r#"
# a call
{"atMs": 0, "interactionId": "1", "attributes": {"Eic_State": "O"}}
{"atMs": 10, "userStatus": {"userId": "jdoe", "statusId": "Available"}}
{"atMs": 20, "switchover": "backup"}
{"atMs": 30, "dropSessions": true}
"#;
        let steps = parse(text).unwrap();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[2], (Duration::from_millis(20), Step::Switchover { backup: true }));
        assert!(matches!(&steps[1].1, Step::UserStatus { logged_in: true, .. }));
        let users = parse(concat!(
            r#"{"atMs": 0, "user": {"configurationId": {"id": "jdoe", "displayName": ""}}}"#,
            "\n",
            r#"{"atMs": 5, "userRemoved": "jdoe"}"#
        ))
        .unwrap();
        assert!(matches!(&users[0].1, Step::User(u) if u["configurationId"]["id"] == "jdoe"));
        assert_eq!(users[1].1, Step::UserRemoved("jdoe".into()));
        let bad = parse(r#"{"atMs": 0, "user": {"configurationId": {"id": "x"}, "password": "p"}}"#);
        assert!(bad.unwrap_err().contains("line 1"));
        for (bad, why) in [
            (r#"{"atMs": 5}"#, "line 1: give exactly one"),
            (
                "{\"atMs\": 5, \"switchover\": \"sideways\"}",
                "line 1: switchover must be",
            ),
            (
                "{\"atMs\": 9, \"dropSessions\": true}\n{\"atMs\": 5, \"dropSessions\": true}",
                "line 2: atMs 5 goes back",
            ),
            (
                r#"{"atMs": 1, "interactionId": "1", "attributes": {"Eic_State": 3}}"#,
                "line 1:",
            ),
            (r#"{"atMs": 1, "color": "red"}"#, "line 1: unknown field"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with(why), "{err}");
        }
    }
}

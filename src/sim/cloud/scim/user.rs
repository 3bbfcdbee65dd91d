//! A SCIM user as the simulator keeps it (attributes, version, last change), as the API shows it
//! (`ScimV2User` with `id`, `schemas` and `meta`), and what makes one valid beyond its model.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::sim::cloud::models;
use crate::timefmt;

/// `schemas` of a user.
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The phone types the SDK allows.
const PHONE_TYPES: [&str; 11] = [
    "work",
    "work2",
    "work3",
    "work4",
    "home",
    "mobile",
    "other",
    "microsoftteams",
    "zoomphone",
    "eightbyeight",
    "ringcentral",
];

/// A stored user: its attributes (no `id`, no `meta`), version and last change.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) attrs: Map<String, Value>,
    pub(super) version: u64,
    pub(super) modified_ms: i64,
}

/// The organization's users.
#[derive(Debug, Default)]
pub(in crate::sim::cloud) struct Users {
    pub(super) by_id: BTreeMap<String, Stored>,
}

impl Users {
    pub(super) fn taken(&self, user_name: &str, except: Option<&str>) -> bool {
        self.by_id
            .iter()
            .any(|(id, u)| Some(id.as_str()) != except && user_name_of(&u.attrs).eq_ignore_ascii_case(user_name))
    }
}

pub(super) fn user_name_of(attrs: &Map<String, Value>) -> &str {
    attrs.get("userName").and_then(Value::as_str).unwrap_or("")
}

pub(super) fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The user as the API shows it (`ScimV2User`).
pub(super) fn shown(id: &str, u: &Stored) -> Value {
    let mut v = u.attrs.clone();
    v.insert("id".into(), json!(id));
    v.insert("schemas".into(), json!([USER_SCHEMA]));
    v.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "lastModified": timefmt::format_timestamp_ms(u.modified_ms),
            "location": format!("/api/v2/scim/v2/users/{id}"),
            "version": etag(u.version),
        }),
    );
    Value::Object(v)
}

/// What the model leaves open: an email as `userName`, known phone types, strings where strings
/// go. `None` when the user is valid.
pub(super) fn invalid(attrs: &Map<String, Value>) -> Option<String> {
    let name = user_name_of(attrs);
    let (local, domain) = name.split_once('@').unwrap_or(("", ""));
    if local.is_empty() || !domain.contains('.') || name.contains(char::is_whitespace) {
        return Some(format!("userName `{name}` must be an email address"));
    }
    if attrs
        .get("displayName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Some("displayName must be a non-empty string".into());
    }
    for p in attrs
        .get("phoneNumbers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = p["type"].as_str().unwrap_or("");
        if !PHONE_TYPES.contains(&t) {
            return Some(format!("phoneNumbers type `{t}` is not one of {PHONE_TYPES:?}"));
        }
        if p["value"].as_str().is_none_or(str::is_empty) {
            return Some(format!("phoneNumbers[type eq \"{t}\"] needs a value"));
        }
    }
    let faults = models::check("ScimV2User", &Value::Object(attrs.clone()), "");
    faults.first().cloned()
}

//! The documented CIC → Genesys Cloud user mapping (`interfaces.md` §2), and the least write
//! that makes a cloud user equal to its CIC user.
//!
//! | CIC (`configuration/users`) | SCIM |
//! |---|---|
//! | `configurationId.id` (the user name) | `externalId` (case exact) |
//! | `configurationId.displayName`, else the user name | `displayName` |
//! | `personalInformationProperties.emailAddress`: required | `userName` |
//! | `phoneNumberOfBusiness1` / `Business2` / `Mobile` / `Home1` / `Fax` | `phoneNumbers` `work` / `work2` / `mobile` / `home` / `other` |
//!
//! A phone is sent as E.164, or as a tel URI with its extension (`tel:+13175550100;ext=2100`);
//! a number that is not a phone number (after the configured default country code) is left out
//! and reported. Passwords, roles and permissions are never part of it. [`diff`] compares only
//! what the mapping owns: a phone type it does not map (`work3`, ...) set in the cloud stays.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The mapped phones: CIC property → SCIM phone type.
pub const PHONES: [(&str, &str); 5] = [
    ("phoneNumberOfBusiness1", "work"),
    ("phoneNumberOfBusiness2", "work2"),
    ("phoneNumberOfMobile", "mobile"),
    ("phoneNumberOfHome1", "home"),
    ("phoneNumberOfFax", "other"),
];

/// The user properties the mapping reads (`select=` of a directory read or subscription).
pub const SELECT: [&str; 2] = ["configurationId", "personalInformationProperties"];

/// `schemas` of a SCIM PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A cloud user as the mapping wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The CIC user name (`externalId`).
    pub external_id: String,
    /// The business email (`userName`).
    pub user_name: String,
    /// `displayName`.
    pub display_name: String,
    /// SCIM phone type → value.
    pub phones: BTreeMap<&'static str, String>,
    /// Phones left out: (CIC property, why).
    pub dropped_phones: Vec<(&'static str, String)>,
}

/// Why a CIC user is not synced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSynced {
    /// No business email: the mapping requires one.
    #[error("not synced: no business email")]
    NoEmail,
    /// The configuration object has no user id.
    #[error("not synced: no user id")]
    NoId,
}

/// The cloud user a CIC configuration object maps to.
pub fn desired(cic: &Value, default_cc: Option<&str>) -> Result<Desired, NotSynced> {
    let id = cic["configurationId"]["id"].as_str().unwrap_or("").trim();
    if id.is_empty() {
        return Err(NotSynced::NoId);
    }
    let personal = &cic["personalInformationProperties"];
    let email = personal["emailAddress"].as_str().unwrap_or("").trim();
    if email.is_empty() {
        return Err(NotSynced::NoEmail);
    }
    let display = cic["configurationId"]["displayName"].as_str().unwrap_or("").trim();
    let mut phones = BTreeMap::new();
    let mut dropped_phones = Vec::new();
    for (property, kind) in PHONES {
        let number = personal[property]["number"].as_str().unwrap_or("").trim();
        if number.is_empty() {
            continue;
        }
        let Some(e164) = crate::normalize::address::e164(number, default_cc) else {
            dropped_phones.push((property, format!("`{number}` is not a phone number")));
            continue;
        };
        let ext = personal[property]["extension"].as_str().unwrap_or("").trim();
        let value = if ext.is_empty() {
            e164
        } else {
            format!("tel:{e164};ext={ext}")
        };
        phones.insert(kind, value);
    }
    Ok(Desired {
        external_id: id.to_string(),
        user_name: email.to_string(),
        display_name: if display.is_empty() { id } else { display }.to_string(),
        phones,
        dropped_phones,
    })
}

/// The body that creates the user (`ScimV2CreateUser`).
pub fn create_body(d: &Desired) -> Value {
    let phones: Vec<Value> = d
        .phones
        .iter()
        .map(|(kind, value)| json!({"type": kind, "value": value}))
        .collect();
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": d.user_name,
        "displayName": d.display_name,
        "externalId": d.external_id,
        "active": true,
    });
    if !phones.is_empty() {
        body["phoneNumbers"] = Value::Array(phones);
    }
    body
}

/// The operations that make `current` (a `ScimV2User`) equal to `d` under the mapping, none
/// when it is; `active` is set back to true (a user in CIC is active).
pub fn diff(current: &Value, d: &Desired) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut replace = |path: &str, value: Value| ops.push(json!({"op": "replace", "path": path, "value": value}));
    if current["userName"].as_str() != Some(d.user_name.as_str()) {
        replace("userName", json!(d.user_name));
    }
    if current["displayName"].as_str() != Some(d.display_name.as_str()) {
        replace("displayName", json!(d.display_name));
    }
    if current["externalId"].as_str() != Some(d.external_id.as_str()) {
        replace("externalId", json!(d.external_id));
    }
    if current["active"] != json!(true) {
        replace("active", json!(true));
    }
    let now: BTreeMap<&str, &str> = current["phoneNumbers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["type"].as_str()?, p["value"].as_str().unwrap_or(""))))
        .collect();
    for (_, kind) in PHONES {
        let path = format!("phoneNumbers[type eq \"{kind}\"]");
        match (now.get(kind), d.phones.get(kind)) {
            (Some(have), Some(want)) if have == want => {}
            (Some(_), Some(want)) => ops.push(json!({"op": "replace", "path": format!("{path}.value"), "value": want})),
            (None, Some(want)) => ops.push(json!({"op": "add", "path": format!("{path}.value"), "value": want})),
            (Some(_), None) => ops.push(json!({"op": "remove", "path": path})),
            (None, None) => {}
        }
    }
    ops
}

/// The body of a PATCH with `ops` (`ScimV2PatchRequest`).
pub fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The PATCH that deactivates a user removed from CIC.
pub fn deactivate() -> Value {
    patch_body(vec![json!({"op": "replace", "path": "active", "value": false})])
}

#[cfg(test)]
mod tests;

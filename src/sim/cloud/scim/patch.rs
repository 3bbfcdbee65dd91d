//! A PATCH's operations applied to a user's attributes: `add`, `replace` and `remove` on the
//! simple attributes, on `phoneNumbers` and `emails` whole, and on one of their entries by type
//! (`phoneNumbers[type eq "work"]`, with or without `.value`). Anything else is refused with the
//! SCIM error type that says why.

use serde_json::{Map, Value, json};

/// Why an operation cannot be applied: (scimType, detail).
type OpError = (&'static str, String);

/// The simple attributes a PATCH may set, and whether each holds a string.
const SIMPLE: [(&str, bool); 5] = [
    ("displayName", true),
    ("userName", true),
    ("externalId", true),
    ("title", true),
    ("active", false),
];

/// Applies one operation to `attrs`.
pub(super) fn apply(attrs: &mut Map<String, Value>, op: &Value) -> Result<(), OpError> {
    let kind = op["op"].as_str().unwrap_or("").to_ascii_lowercase();
    if !["add", "replace", "remove"].contains(&kind.as_str()) {
        return Err(("invalidSyntax", format!("op `{kind}` is not add, replace or remove")));
    }
    let value = op.get("value").cloned().unwrap_or(Value::Null);
    let Some(path) = op["path"].as_str() else {
        // No path: the value's attributes each replace (or add to) the user's.
        let Some(obj) = value.as_object().filter(|_| kind != "remove") else {
            return Err(("noTarget", "an operation without a path needs an object value".into()));
        };
        for (k, v) in obj {
            set(attrs, k, v.clone())?;
        }
        return Ok(());
    };
    if kind == "remove" {
        return remove(attrs, path);
    }
    set(attrs, path, value)
}

/// `phoneNumbers[type eq "work"]` → ("phoneNumbers", "work", what follows the `]`).
fn multi_path(path: &str) -> Option<(&str, String, &str)> {
    let (attr, rest) = path.split_once('[')?;
    let (filter, after) = rest.split_once(']')?;
    let mut words = filter.trim().splitn(3, char::is_whitespace);
    let (a, o, v) = (words.next()?, words.next()?, words.next()?.trim());
    let v = v.strip_prefix('"')?.strip_suffix('"')?;
    (a.eq_ignore_ascii_case("type") && o.eq_ignore_ascii_case("eq")).then(|| (attr, v.to_string(), after))
}

fn set(attrs: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), OpError> {
    if let Some((name, is_str)) = SIMPLE.iter().find(|(n, _)| n.eq_ignore_ascii_case(path)) {
        let ok = if *is_str { value.is_string() } else { value.is_boolean() };
        if !ok {
            return Err((
                "invalidValue",
                format!("{name} takes a {}", if *is_str { "string" } else { "boolean" }),
            ));
        }
        attrs.insert((*name).to_string(), value);
        return Ok(());
    }
    if ["phoneNumbers", "emails"].iter().any(|a| a.eq_ignore_ascii_case(path)) {
        let name = if path.eq_ignore_ascii_case("emails") {
            "emails"
        } else {
            "phoneNumbers"
        };
        let Some(items) = value.as_array() else {
            return Err(("invalidValue", format!("{name} takes an array")));
        };
        attrs.insert(name.into(), Value::Array(items.clone()));
        return Ok(());
    }
    let Some((attr, ty, rest)) = multi_path(path) else {
        return Err(("invalidPath", format!("path `{path}` is not one this API takes")));
    };
    let name = match attr {
        a if a.eq_ignore_ascii_case("phoneNumbers") => "phoneNumbers",
        a if a.eq_ignore_ascii_case("emails") => "emails",
        _ => return Err(("invalidPath", format!("path `{path}` is not one this API takes"))),
    };
    let list = attrs.entry(name).or_insert_with(|| json!([]));
    let Some(items) = list.as_array_mut() else {
        return Err(("invalidValue", format!("{name} is not an array")));
    };
    let slot = items.iter().position(|p| p["type"] == json!(ty));
    match rest {
        ".value" => {
            if !value.is_string() {
                return Err(("invalidValue", format!("{path} takes a string")));
            }
            match slot {
                Some(i) => items[i]["value"] = value,
                None => items.push(json!({"type": ty, "value": value})),
            }
        }
        "" => {
            let Some(obj) = value.as_object() else {
                return Err(("invalidValue", format!("{path} takes an object")));
            };
            let mut item = obj.clone();
            item.insert("type".into(), json!(ty));
            match slot {
                Some(i) => items[i] = Value::Object(item),
                None => items.push(Value::Object(item)),
            }
        }
        _ => return Err(("invalidPath", format!("path `{path}` is not one this API takes"))),
    }
    Ok(())
}

fn remove(attrs: &mut Map<String, Value>, path: &str) -> Result<(), OpError> {
    if let Some((name, _)) = SIMPLE.iter().find(|(n, _)| n.eq_ignore_ascii_case(path)) {
        if ["userName", "displayName"].contains(name) {
            return Err(("mutability", format!("{name} cannot be removed")));
        }
        attrs.remove(*name);
        return Ok(());
    }
    if ["phoneNumbers", "emails"].iter().any(|a| a.eq_ignore_ascii_case(path)) {
        attrs.remove(if path.eq_ignore_ascii_case("emails") {
            "emails"
        } else {
            "phoneNumbers"
        });
        return Ok(());
    }
    match multi_path(path) {
        Some((attr, ty, "")) if attr.eq_ignore_ascii_case("phoneNumbers") || attr.eq_ignore_ascii_case("emails") => {
            let name = if attr.eq_ignore_ascii_case("emails") {
                "emails"
            } else {
                "phoneNumbers"
            };
            if let Some(items) = attrs.get_mut(name).and_then(Value::as_array_mut) {
                items.retain(|p| p["type"] != json!(ty));
            }
            Ok(())
        }
        _ => Err(("invalidPath", format!("path `{path}` is not one this API takes"))),
    }
}

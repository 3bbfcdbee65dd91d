//! From an [`InteractionEvent`] to a journey external-event entity, and the JSON schema
//! (draft-04) its attributes conform to — both derived from the same walk of the Avro schema, so
//! the two cannot drift apart.
//!
//! Rules: the entity's `id` is the event id and `dateCreated` its `occurred_at`; `observed_at`
//! (when this conduit saw it) is left out; every other Avro field becomes one flat attribute
//! named in camelCase (`interaction.call_id_key` → `callIdKey`; the customer record's fields get a `customer` prefix: `customerPhone`);
//! `timestamp-millis` fields become ISO-8601 strings, enums lower-case strings, longs integers;
//! null fields are left out; a non-nullable field is `required`. Each allow-listed custom
//! attribute becomes a string attribute `custom_<name>` (characters other than letters, digits
//! and `_` replaced by `_`). The schema has exactly the fields of the SDK's
//! `JourneyJsonSchemaRequest` (`$schema`, `title`, `description`, `required`, `properties`).

use std::collections::BTreeMap;

use apache_avro::Schema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::event::InteractionEvent;
use crate::event::codec::SCHEMA;
use crate::timefmt;

/// How one Avro field becomes an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Timestamp,
    Enum,
}

#[derive(Debug, Clone)]
struct Field {
    /// Path of field names from the event's root.
    path: Vec<String>,
    /// The attribute name.
    prop: String,
    kind: Kind,
    required: bool,
    /// Lower-cased enum symbols.
    symbols: Vec<String>,
}

/// Top-level fields carried by the entity itself, not as attributes — and `observed_at`, which
/// says when this conduit saw the change: an event's content must not depend on which conduit
/// sent it (both of a switchover pair send the same ids), so it stays in the buffer only.
const ENTITY_FIELDS: [&str; 3] = ["event_id", "occurred_at", "observed_at"];
/// Records whose fields keep their own names (no prefix).
const UNPREFIXED: [&str; 1] = ["interaction"];

fn camel(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        for (j, word) in part.split('_').filter(|w| !w.is_empty()).enumerate() {
            let mut cs = word.chars();
            if i == 0 && j == 0 {
                out.extend(cs.map(|c| c.to_ascii_lowercase()));
            } else if let Some(first) = cs.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(cs);
            }
        }
    }
    out
}

/// The attribute name of an allow-listed custom attribute.
pub fn custom_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    format!("custom_{clean}")
}

fn kind_of(s: &Schema) -> Option<(Kind, Vec<String>)> {
    Some(match s {
        Schema::String | Schema::Uuid(_) => (Kind::Str, vec![]),
        Schema::Long | Schema::Int => (Kind::Int, vec![]),
        Schema::Boolean => (Kind::Bool, vec![]),
        Schema::TimestampMillis => (Kind::Timestamp, vec![]),
        Schema::Enum(e) => (Kind::Enum, e.symbols.iter().map(|s| s.to_ascii_lowercase()).collect()),
        _ => return None,
    })
}

fn walk(schema: &Schema, path: &mut Vec<String>, prefix: &[&str], out: &mut Vec<Field>) {
    let Schema::Record(rec) = schema else { return };
    for f in &rec.fields {
        if path.is_empty() && ENTITY_FIELDS.contains(&f.name.as_str()) {
            continue;
        }
        path.push(f.name.clone());
        let (inner, nullable) = match &f.schema {
            Schema::Union(u) => {
                let non_null: Vec<&Schema> = u.variants().iter().filter(|v| **v != Schema::Null).collect();
                match non_null.as_slice() {
                    [one] => (*one, true),
                    _ => (&f.schema, true),
                }
            }
            other => (other, false),
        };
        if let Schema::Record(_) = inner {
            let mut p: Vec<&str> = prefix.to_vec();
            if !UNPREFIXED.contains(&f.name.as_str()) {
                p.push(&f.name);
            }
            walk(inner, path, &p, out);
        } else if let Some((kind, symbols)) = kind_of(inner) {
            let mut parts: Vec<&str> = prefix.to_vec();
            parts.push(&f.name);
            out.push(Field {
                path: path.clone(),
                prop: camel(&parts),
                kind,
                required: !nullable,
                symbols,
            });
        }
        path.pop();
    }
}

/// Maps events to entities; built once per sink.
#[derive(Debug, Clone)]
pub struct Mapper {
    fields: Vec<Field>,
    custom: Vec<(String, String)>,
    external_source_id: String,
}

/// One external-event entity.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// The event id.
    pub id: String,
    /// When it happened, ISO-8601.
    pub date_created: String,
    /// Customer identifiers.
    pub identifiers: Identifiers,
    /// The flattened event.
    pub attributes: Map<String, Value>,
}

/// `identifiers` of an entity.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Identifiers {
    /// At least one.
    pub external_ids: Vec<ExternalId>,
}

/// One identifier.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalId {
    /// Phone (E.164), email, or the interaction key.
    pub value: String,
    /// The configured external source.
    pub external_source_id: String,
}

impl Mapper {
    /// A mapper for the bundled schema, the configured custom attributes and external source.
    pub fn new(custom_attributes: &[String], external_source_id: &str) -> Self {
        let mut fields = Vec::new();
        walk(&SCHEMA, &mut Vec::new(), &[], &mut fields);
        Mapper {
            fields,
            custom: custom_attributes
                .iter()
                .map(|n| (n.to_ascii_lowercase(), custom_name(n)))
                .collect(),
            external_source_id: external_source_id.to_string(),
        }
    }

    /// The JSON schema (draft-04) the attributes conform to.
    pub fn json_schema(&self, title: &str) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in &self.fields {
            let mut p = match f.kind {
                Kind::Str => json!({"type": "string"}),
                Kind::Int => json!({"type": "integer"}),
                Kind::Bool => json!({"type": "boolean"}),
                Kind::Timestamp => json!({"type": "string", "format": "date-time"}),
                Kind::Enum => json!({"type": "string", "enum": f.symbols}),
            };
            p["description"] = json!(format!("The event's `{}`.", f.path.join(".")));
            props.insert(f.prop.clone(), p);
            if f.required {
                required.push(f.prop.clone());
            }
        }
        for (name, prop) in &self.custom {
            props.insert(
                prop.clone(),
                json!({"type": "string", "description": format!("Custom interaction attribute `{name}`.")}),
            );
        }
        json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": title,
            "description": "A change of a PureConnect (CIC) interaction, as cic-conduit delivers it (Avro schema io.cicconduit.v1.InteractionEvent).",
            "required": required,
            "properties": props,
        })
    }

    /// The entity for `ev`.
    pub fn entity(&self, ev: &InteractionEvent) -> Entity {
        let tree = serde_json::to_value(ev).unwrap_or(Value::Null);
        let mut attributes = Map::new();
        for f in &self.fields {
            let mut v = &tree;
            for p in &f.path {
                v = &v[p.as_str()];
            }
            let out = match (f.kind, v) {
                (_, Value::Null) => continue,
                (Kind::Timestamp, v) => match v.as_i64() {
                    Some(ms) => Value::String(timefmt::format_timestamp_ms(ms)),
                    None => continue,
                },
                (Kind::Enum, Value::String(s)) => Value::String(s.to_ascii_lowercase()),
                (_, v) => v.clone(),
            };
            attributes.insert(f.prop.clone(), out);
        }
        let lower: BTreeMap<String, &String> = ev.attributes.iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        for (name, prop) in &self.custom {
            if let Some(v) = lower.get(name) {
                attributes.insert(prop.clone(), Value::String((*v).clone()));
            }
        }
        let mut ids = Vec::with_capacity(2);
        for value in [&ev.customer.phone, &ev.customer.email].into_iter().flatten() {
            ids.push(ExternalId {
                value: value.clone(),
                external_source_id: self.external_source_id.clone(),
            });
        }
        if ids.is_empty() {
            // No customer identifier (caller id withheld, internal call): the interaction key
            // still ties the interaction's events together.
            ids.push(ExternalId {
                value: ev.interaction.call_id_key.clone(),
                external_source_id: self.external_source_id.clone(),
            });
        }
        Entity {
            id: ev.event_id.clone(),
            date_created: timefmt::format_timestamp_ms(ev.occurred_at),
            identifiers: Identifiers { external_ids: ids },
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cloud::jsonschema::{check_schema, validate};

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(camel(&["call_id_key"]), "callIdKey");
        assert_eq!(camel(&["customer", "caller_id_withheld"]), "customerCallerIdWithheld");
        assert_eq!(custom_name("Account Tier"), "custom_Account_Tier");
    }

    #[test]
    fn entities_conform_to_the_derived_schema() {
        let m = Mapper::new(&["AccountTier".into(), "Missing".into()], "src-1");
        let schema = m.json_schema("t");
        check_schema(&schema).unwrap();
        let ev = InteractionEvent::example();
        let e = m.entity(&ev);
        assert_eq!(e.id, ev.event_id);
        assert_eq!(e.date_created, "2024-04-09T14:03:11.000Z");
        assert_eq!(e.identifiers.external_ids[0].value, "+13175551234");
        assert_eq!(e.attributes["callIdKey"], "100265870720240409");
        assert_eq!(e.attributes["eventType"], "connected");
        assert_eq!(e.attributes["state"], "connected");
        assert_eq!(e.attributes["customerPhone"], "+13175551234");
        assert_eq!(e.attributes["custom_AccountTier"], "gold");
        assert_eq!(e.attributes["initiatedAt"], "2024-04-09T14:03:00.000Z");
        assert!(!e.attributes.contains_key("terminatedAt"), "nulls are left out");
        assert!(!e.attributes.contains_key("eventId"), "the id is the entity's");
        let attrs = serde_json::to_value(&e.attributes).unwrap();
        assert_eq!(validate(&schema, &attrs, "a"), Vec::<String>::new());
        for r in schema["required"].as_array().unwrap() {
            assert!(e.attributes.contains_key(r.as_str().unwrap()), "{r}");
        }
    }

    #[test]
    fn a_withheld_caller_is_identified_by_the_interaction_key() {
        let m = Mapper::new(&[], "src-1");
        let mut ev = InteractionEvent::example();
        ev.customer.phone = None;
        ev.customer.caller_id_withheld = true;
        let e = m.entity(&ev);
        assert_eq!(e.identifiers.external_ids.len(), 1);
        assert_eq!(e.identifiers.external_ids[0].value, ev.interaction.call_id_key);
        assert_eq!(e.attributes["customerCallerIdWithheld"], true);
    }
}

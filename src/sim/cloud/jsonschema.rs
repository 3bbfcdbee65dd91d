//! The JSON Schema (draft-04) subset that external-event schemas use: a flat object whose
//! properties are strings, numbers, integers or booleans.
//!
//! [`check_schema`] refuses a schema the organization would not store (wrong `$schema`, no
//! title, nested or unknown property types, `required` naming an undeclared property);
//! [`validate`] checks an entity's `attributes` against a stored schema and says, per attribute,
//! what is wrong. An attribute the schema does not declare does not match it: the schema is
//! closed (the SDK's `JourneyJsonSchemaRequest` has no `additionalProperties` to say otherwise).

use serde_json::Value;

/// The only `$schema` accepted.
pub const DRAFT_04: &str = "http://json-schema.org/draft-04/schema#";

const TYPES: [&str; 4] = ["string", "number", "integer", "boolean"];

/// Why a schema cannot be stored: one message per problem.
pub fn check_schema(schema: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let Some(obj) = schema.as_object() else {
        return Err(vec!["the schema must be a JSON object".into()]);
    };
    if obj.get("$schema").and_then(Value::as_str) != Some(DRAFT_04) {
        errors.push(format!("$schema must be \"{DRAFT_04}\""));
    }
    if obj
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(|t| t.trim().is_empty())
    {
        errors.push("title is required".into());
    }
    match obj.get("properties").and_then(Value::as_object) {
        None => errors.push("properties is required and must be an object".into()),
        Some(props) => {
            if props.is_empty() {
                errors.push("properties must declare at least one attribute".into());
            }
            for (name, p) in props {
                let ty = p.get("type").and_then(Value::as_str);
                if !ty.is_some_and(|t| TYPES.contains(&t)) {
                    errors.push(format!("properties.{name}.type must be one of {}", TYPES.join(", ")));
                }
                if let Some(e) = p.get("enum")
                    && e.as_array().is_none_or(|a| a.is_empty())
                {
                    errors.push(format!("properties.{name}.enum must be a non-empty array"));
                }
            }
        }
    }
    if let Some(req) = obj.get("required") {
        match req.as_array() {
            None => errors.push("required must be an array of property names".into()),
            Some(names) => {
                for n in names {
                    let declared = n
                        .as_str()
                        .and_then(|n| obj.get("properties")?.as_object()?.get(n))
                        .is_some();
                    if !declared {
                        errors.push(format!("required names {n}, which is not a declared property"));
                    }
                }
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "boolean" => v.is_boolean(),
        _ => false,
    }
}

/// Checks `attributes` against a schema that passed [`check_schema`]; the messages name the
/// attribute at `path` (e.g. `entities[3].attributes.state`).
pub fn validate(schema: &Value, attributes: &Value, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(attrs) = attributes.as_object() else {
        return vec![format!("{path} must be an object")];
    };
    let empty = serde_json::Map::new();
    let props = schema["properties"].as_object().unwrap_or(&empty);
    if let Some(req) = schema["required"].as_array() {
        for n in req.iter().filter_map(Value::as_str) {
            if !attrs.contains_key(n) {
                errors.push(format!("{path}.{n} is required by the schema"));
            }
        }
    }
    for (name, v) in attrs {
        let Some(p) = props.get(name) else {
            errors.push(format!("{path}.{name} is not declared in the schema"));
            continue;
        };
        let ty = p["type"].as_str().unwrap_or("");
        if !type_matches(ty, v) {
            errors.push(format!("{path}.{name} must be of type {ty}"));
            continue;
        }
        if let Some(allowed) = p["enum"].as_array()
            && !allowed.contains(v)
        {
            errors.push(format!("{path}.{name} must be one of the schema's enum values"));
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as u64;
            if p["maxLength"].as_u64().is_some_and(|m| len > m) {
                errors.push(format!("{path}.{name} is longer than maxLength"));
            }
            if p["minLength"].as_u64().is_some_and(|m| len < m) {
                errors.push(format!("{path}.{name} is shorter than minLength"));
            }
        }
        if let Some(n) = v.as_f64() {
            if p["minimum"].as_f64().is_some_and(|m| n < m) {
                errors.push(format!("{path}.{name} is below minimum"));
            }
            if p["maximum"].as_f64().is_some_and(|m| n > m) {
                errors.push(format!("{path}.{name} is above maximum"));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$schema": DRAFT_04,
            "title": "t",
            "required": ["state"],
            "properties": {
                "state": {"type": "string", "enum": ["connected", "held"]},
                "ms": {"type": "integer", "minimum": 0},
                "name": {"type": "string", "maxLength": 3},
                "flag": {"type": "boolean"}
            }
        })
    }

    #[test]
    fn accepts_a_flat_schema_and_refuses_the_rest() {
        assert_eq!(check_schema(&schema()), Ok(()));
        let mut nested = schema();
        nested["properties"]["obj"] = json!({"type": "object"});
        assert_eq!(check_schema(&nested).unwrap_err().len(), 1);
        let mut bad = schema();
        bad["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        bad["required"] = json!(["nope"]);
        bad.as_object_mut().unwrap().remove("title");
        assert_eq!(check_schema(&bad).unwrap_err().len(), 3);
        assert!(check_schema(&json!([])).is_err());
    }

    #[test]
    fn validates_attributes() {
        let s = schema();
        assert!(validate(&s, &json!({"state": "held", "ms": 5, "flag": true}), "a").is_empty());
        let errs = validate(&s, &json!({"ms": -1, "name": "abcd", "flag": "yes", "extra": 1}), "a");
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs.iter().any(|e| e == "a.state is required by the schema"));
        assert!(errs.iter().any(|e| e == "a.extra is not declared in the schema"));
        assert_eq!(validate(&s, &json!({"state": "gone"}), "a").len(), 1);
        assert_eq!(validate(&s, &json!({"state": "held", "ms": 1.5}), "a").len(), 1);
        assert_eq!(validate(&s, &json!("x"), "a"), vec!["a must be an object".to_string()]);
    }
}

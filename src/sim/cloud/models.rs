//! The official SDK's API models, the simulator's ground truth for every body the conduit sends
//! and every answer it reads: which fields each model has, their types and formats, and which
//! are required.
//!
//! Taken from the official JavaScript SDK, npm `purecloud-platform-client-v2` [`SDK`]
//! (`index.d.ts`: a field without `?` is required), whose field names and types agree with the
//! Python SDK, PyPI `purecloudplatformclientv2` 269.0.0 (`models/*.py`). A body is checked against
//! its model: an object; every required field present and not null; every field of its type
//! (`DateTime`: an ISO-8601 date-time with a zone); no field the model does not have — a
//! misspelt field is an error here, not silently dropped.

use serde_json::Value;

mod users;

/// The SDK the table below was taken from.
pub const SDK: &str = "purecloud-platform-client-v2 262.0.0";

/// A field's type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// A string.
    Str,
    /// A string holding an ISO-8601 date-time (`format: date-time`).
    DateTime,
    /// A JSON number without fraction.
    Int,
    /// `true` or `false`.
    Bool,
    /// A free-form object (`{ [key: string]: object }`).
    Map,
    /// Another model, by name.
    Model(&'static str),
    /// An array of strings.
    Strings,
    /// An array of another model.
    ArrayOf(&'static str),
    /// A JSON number.
    Num,
    /// Any JSON value (`object` in `index.d.ts`: the SCIM patch operation's `value`).
    Any,
}

/// One field of a model.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The JSON name.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Required (no `?` in `index.d.ts`).
    pub required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

/// Every model the conduit sends or reads: (model, fields).
pub const MODELS: &[(&str, &[Field])] = &[
    // POST .../configurations/{id}/events
    (
        "ExternalEventsRequest",
        &[req("entities", Ty::ArrayOf("ExternalEvent"))],
    ),
    (
        "ExternalEvent",
        &[
            req("id", Ty::Str),
            req("dateCreated", Ty::DateTime),
            req("identifiers", Ty::Model("ExternalEventIdentifiers")),
            req("attributes", Ty::Map),
        ],
    ),
    (
        "ExternalEventIdentifiers",
        &[req("externalIds", Ty::ArrayOf("ExternalEventExternalId"))],
    ),
    (
        "ExternalEventExternalId",
        &[req("value", Ty::Str), req("externalSourceId", Ty::Str)],
    ),
    (
        "ExternalEventsResponse",
        &[req("unprocessedEntities", Ty::ArrayOf("UnprocessedExternalEvent"))],
    ),
    (
        "UnprocessedExternalEvent",
        &[
            req("event", Ty::Model("ExternalEvent")),
            req("originalRequestIndex", Ty::Int),
            req("isRetryable", Ty::Bool),
            req("errorMessage", Ty::Str),
            opt("statusCode", Ty::Int),
        ],
    ),
    // POST/GET .../schemas, PUT .../schemas/{id}
    (
        "JourneyJsonSchemaRequest",
        &[
            req("$schema", Ty::Str),
            req("title", Ty::Str),
            opt("description", Ty::Str),
            opt("required", Ty::Strings),
            req("properties", Ty::Map),
        ],
    ),
    (
        "JourneySchemaUpdateRequest",
        &[
            req("version", Ty::Int),
            req("enabled", Ty::Bool),
            req("jsonSchema", Ty::Model("JourneyJsonSchemaRequest")),
        ],
    ),
    (
        "JourneyExternalEventsSchema",
        &[
            opt("id", Ty::Str),
            opt("version", Ty::Int),
            opt("enabled", Ty::Bool),
            opt("dateCreated", Ty::DateTime),
            opt("createdBy", Ty::Model("DomainEntityRef")),
            opt("jsonSchema", Ty::Model("JourneyJsonSchemaDocument")),
            opt("selfUri", Ty::Str),
        ],
    ),
    (
        "JourneyJsonSchemaDocument",
        &[
            req("$schema", Ty::Str),
            req("title", Ty::Str),
            opt("description", Ty::Str),
            opt("required", Ty::Strings),
            opt("properties", Ty::Map),
        ],
    ),
    (
        "JourneyExternalEventsSchemaListing",
        &[
            opt("total", Ty::Int),
            opt("entities", Ty::ArrayOf("JourneyExternalEventsSchema")),
            opt("selfUri", Ty::Str),
        ],
    ),
    // POST/GET .../configurations
    (
        "CreateExternalEventsConfigurationRequest",
        &[
            req("name", Ty::Str),
            req("description", Ty::Str),
            req("divisionId", Ty::Str),
            req("schemaId", Ty::Str),
            req("source", Ty::Str),
        ],
    ),
    (
        "ExternalEventsConfiguration",
        &[
            req("id", Ty::Str),
            opt("name", Ty::Str),
            req("description", Ty::Str),
            req("divisionId", Ty::Str),
            req("divisionIdActive", Ty::Bool),
            req("schemaId", Ty::Str),
            req("schemaActive", Ty::Bool),
            req("source", Ty::Str),
            req("dateLastModified", Ty::DateTime),
            opt("selfUri", Ty::Str),
        ],
    ),
    (
        "ExternalEventsConfigurationListing",
        &[
            opt("entities", Ty::ArrayOf("ExternalEventsConfiguration")),
            opt("pageSize", Ty::Int),
            opt("pageNumber", Ty::Int),
            opt("total", Ty::Int),
            opt("lastUri", Ty::Str),
            opt("firstUri", Ty::Str),
            opt("selfUri", Ty::Str),
            opt("nextUri", Ty::Str),
            opt("previousUri", Ty::Str),
            opt("pageCount", Ty::Int),
        ],
    ),
    // GET /api/v2/authorization/divisions/home
    (
        "AuthzDivision",
        &[
            opt("id", Ty::Str),
            opt("name", Ty::Str),
            req("description", Ty::Str),
            opt("homeDivision", Ty::Bool),
            opt("objectCounts", Ty::Map),
            opt("selfUri", Ty::Str),
        ],
    ),
    (
        "DomainEntityRef",
        &[opt("id", Ty::Str), opt("name", Ty::Str), opt("selfUri", Ty::Str)],
    ),
    // Every error answer
    (
        "ErrorBody",
        &[
            opt("message", Ty::Str),
            opt("code", Ty::Str),
            opt("status", Ty::Int),
            opt("entityId", Ty::Str),
            opt("entityName", Ty::Str),
            opt("messageWithParams", Ty::Str),
            opt("messageParams", Ty::Map),
            opt("contextId", Ty::Str),
            opt("details", Ty::ArrayOf("Detail")),
            opt("errors", Ty::ArrayOf("ErrorBody")),
        ],
    ),
    (
        "Detail",
        &[
            opt("errorCode", Ty::Str),
            opt("fieldName", Ty::Str),
            opt("entityId", Ty::Str),
            opt("entityName", Ty::Str),
        ],
    ),
];

/// The fields of a model in the table.
pub fn fields(model: &str) -> Option<&'static [Field]> {
    MODELS
        .iter()
        .chain(users::MODELS)
        .find(|(m, _)| *m == model)
        .map(|(_, f)| *f)
}

/// Checks `v` against `model`; each fault names its path (`at` is the path of `v` itself, empty
/// for the body).
pub fn check(model: &str, v: &Value, at: &str) -> Vec<String> {
    let mut faults = Vec::new();
    check_into(model, v, at, &mut faults);
    faults
}

fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

fn check_into(model: &str, v: &Value, at: &str, faults: &mut Vec<String>) {
    let Some(fields) = fields(model) else {
        faults.push(format!("{at}: model {model} is not in the table"));
        return;
    };
    let here = if at.is_empty() { "the body" } else { at };
    let Some(obj) = v.as_object() else {
        faults.push(format!("{here} must be an object ({model})"));
        return;
    };
    for f in fields {
        match obj.get(f.name) {
            None | Some(Value::Null) if f.required => {
                faults.push(format!("{} is required ({model})", path(at, f.name)))
            }
            None | Some(Value::Null) => {}
            Some(x) => check_type(f.ty, x, &path(at, f.name), faults),
        }
    }
    for k in obj.keys() {
        if !fields.iter().any(|f| f.name == k) {
            faults.push(format!("{} is not a field of {model}", path(at, k)));
        }
    }
}

fn check_type(ty: Ty, v: &Value, at: &str, faults: &mut Vec<String>) {
    let ok = match ty {
        Ty::Str => v.is_string(),
        Ty::DateTime => match v.as_str() {
            Some(s) => {
                if !super::journey::is_iso8601_date_time(s) {
                    faults.push(format!("{at} `{s}` is not an ISO-8601 date-time"));
                }
                true
            }
            None => false,
        },
        Ty::Int => v.is_i64() || v.is_u64(),
        Ty::Bool => v.is_boolean(),
        Ty::Map => v.is_object(),
        Ty::Model(m) => {
            check_into(m, v, at, faults);
            true
        }
        Ty::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::Num => v.is_number(),
        Ty::Any => true,
        Ty::ArrayOf(m) => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_into(m, item, &format!("{at}[{i}]"), faults);
                }
                true
            }
            None => false,
        },
    };
    if !ok {
        faults.push(format!("{at} must be {}", describe(ty)));
    }
}

fn describe(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "a string",
        Ty::DateTime => "an ISO-8601 date-time string",
        Ty::Int => "an integer",
        Ty::Bool => "a boolean",
        Ty::Map => "an object",
        Ty::Model(_) => "an object",
        Ty::Strings => "an array of strings",
        Ty::ArrayOf(_) => "an array",
        Ty::Num => "a number",
        Ty::Any => "a JSON value",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_model_the_table_names_is_in_it() {
        for (model, fields) in MODELS {
            for f in *fields {
                if let Ty::Model(m) | Ty::ArrayOf(m) = f.ty {
                    assert!(super::fields(m).is_some(), "{model}.{} names {m}", f.name);
                }
            }
        }
    }

    #[test]
    fn finds_each_kind_of_fault() {
        let body = json!({
            "name": "n", "description": 3, "schemaId": "s", "source": "cic", "divisonId": "typo"
        });
        let f = check("CreateExternalEventsConfigurationRequest", &body, "");
        assert_eq!(
            f,
            [
                "description must be a string",
                "divisionId is required (CreateExternalEventsConfigurationRequest)",
                "divisonId is not a field of CreateExternalEventsConfigurationRequest",
            ]
        );
        let ev = json!({"entities": [{"id": "a", "dateCreated": "yesterday",
            "identifiers": {"externalIds": [{"value": "v"}]}, "attributes": {}}]});
        let f = check("ExternalEventsRequest", &ev, "");
        assert_eq!(
            f,
            [
                "entities[0].dateCreated `yesterday` is not an ISO-8601 date-time",
                "entities[0].identifiers.externalIds[0].externalSourceId is required (ExternalEventExternalId)",
            ]
        );
        assert!(check("ExternalEventsResponse", &json!({"unprocessedEntities": []}), "").is_empty());
        assert_eq!(check("ExternalEventsResponse", &json!({}), "").len(), 1);
    }
}

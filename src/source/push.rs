//! The push body: a JSON array or NDJSON of
//! `{"interactionId": "...", "attributes": {"Eic_State": "C", ...}, "observedAt": optional}`,
//! optionally gzip-compressed.
//!
//! Parsing is strict and total: every problem becomes an [`ItemError`] naming the item's index,
//! the field and why, so the sender can fix it; nothing here panics on any input.

use std::io::Read;

use serde::Serialize;
use serde_json::Value;

use crate::normalize::Observation;
use crate::timefmt;

/// Longest accepted `interactionId`.
pub const MAX_ID_LEN: usize = 64;
/// Most attributes in one item.
pub const MAX_ATTRIBUTES: usize = 256;
/// Longest accepted attribute name.
pub const MAX_NAME_LEN: usize = 128;
/// Earliest accepted `observedAt`: 2000-01-01T00:00:00Z, in Unix ms.
pub const EARLIEST_OBSERVED_MS: i64 = 946_684_800_000;
/// How far ahead of this machine's clock an `observedAt` may be (a sender's clock skew).
pub const MAX_AHEAD_MS: i64 = 24 * 3600 * 1000;

/// Why one item was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// Its position in the request (0-based; for NDJSON, the non-empty line).
    pub index: usize,
    /// The offending field (`interactionId`, `attributes.Eic_State`, ...), empty for the item.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (compressed or decompressed).
    #[error("body exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// gzip that does not decompress.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// A JSON array that does not parse.
    #[error("body is not valid JSON: {0}")]
    BadJson(String),
    /// No items.
    #[error("body holds no items")]
    Empty,
    /// More items than allowed.
    #[error("body holds {count} items; the limit is {max}")]
    TooManyItems {
        /// Items sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Some items are invalid; none is accepted.
    #[error("{} invalid item(s)", .0.len())]
    Items(Vec<ItemError>),
}

/// Decompresses a gzip body, refusing more than `limit` bytes of output (zip bombs).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(body.len() * 4);
    let mut dec = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(out)
}

/// Parses and validates every item; all or nothing.
pub fn parse(body: &[u8], max_items: usize) -> Result<Vec<Observation>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let values: Vec<Result<Value, String>> = match first {
        None => return Err(BodyError::Empty),
        Some(b'[') => match serde_json::from_slice::<Vec<Value>>(body) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => return Err(BodyError::BadJson(e.to_string())),
        },
        Some(_) => body
            .split(|b| *b == b'\n')
            .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|l| serde_json::from_slice::<Value>(l).map_err(|e| format!("invalid JSON: {e}")))
            .collect(),
    };
    if values.is_empty() {
        return Err(BodyError::Empty);
    }
    if values.len() > max_items {
        return Err(BodyError::TooManyItems {
            count: values.len(),
            max: max_items,
        });
    }
    let mut out = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    let now_ms = timefmt::now_ms();
    for (index, v) in values.into_iter().enumerate() {
        let item = v
            .map_err(|reason| {
                vec![ItemError {
                    index,
                    field: String::new(),
                    reason,
                }]
            })
            .and_then(|v| item(index, v, now_ms));
        match item {
            Ok(o) => out.push(o),
            Err(mut e) => {
                if errors.len() < 100 {
                    errors.append(&mut e);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(BodyError::Items(errors))
    }
}

fn item(index: usize, v: Value, now_ms: i64) -> Result<Observation, Vec<ItemError>> {
    let err = |field: &str, reason: &str| ItemError {
        index,
        field: field.into(),
        reason: reason.into(),
    };
    let Value::Object(map) = v else {
        return Err(vec![err("", "expected an object with interactionId and attributes")]);
    };
    let mut errors = Vec::new();
    let mut interaction_id = None;
    let mut attributes = None;
    let mut observed_at_ms = None;
    for (k, v) in map {
        match k.as_str() {
            "interactionId" => match v {
                Value::String(s) if !s.trim().is_empty() && s.len() <= MAX_ID_LEN => interaction_id = Some(s),
                Value::String(s) if s.len() > MAX_ID_LEN => {
                    errors.push(err("interactionId", &format!("longer than {MAX_ID_LEN} characters")))
                }
                _ => errors.push(err("interactionId", "must be a non-empty string")),
            },
            "attributes" => match v {
                Value::Object(attrs) => {
                    if attrs.len() > MAX_ATTRIBUTES {
                        errors.push(err("attributes", &format!("more than {MAX_ATTRIBUTES} attributes")));
                        continue;
                    }
                    let mut list = Vec::with_capacity(attrs.len());
                    for (name, value) in attrs {
                        if name.is_empty() || name.len() > MAX_NAME_LEN {
                            errors.push(err(
                                "attributes",
                                &format!("attribute names must be 1 to {MAX_NAME_LEN} characters"),
                            ));
                            continue;
                        }
                        match value {
                            Value::String(s) => list.push((name, s)),
                            _ => errors.push(err(
                                &format!("attributes.{name}"),
                                "must be a string (ICWS sends every value as a string)",
                            )),
                        }
                    }
                    attributes = Some(list);
                }
                _ => errors.push(err("attributes", "must be an object of attribute name to string value")),
            },
            "observedAt" => {
                let ms = match v {
                    Value::Null => None,
                    Value::String(s) => match timefmt::parse_timestamp_ms(&s) {
                        Some(ms) => Some(ms),
                        None => {
                            errors.push(err(
                                "observedAt",
                                "not an ISO-8601 timestamp such as 2024-04-09T14:03:11Z",
                            ));
                            None
                        }
                    },
                    Value::Number(n) => match n.as_i64() {
                        Some(ms) if ms >= 0 => Some(ms),
                        _ => {
                            errors.push(err("observedAt", "epoch milliseconds must be a non-negative integer"));
                            None
                        }
                    },
                    _ => {
                        errors.push(err("observedAt", "must be an ISO-8601 string or epoch milliseconds"));
                        None
                    }
                };
                match ms {
                    Some(ms) if !(EARLIEST_OBSERVED_MS..=now_ms + MAX_AHEAD_MS).contains(&ms) => errors.push(err(
                        "observedAt",
                        "out of range: must be from 2000-01-01T00:00:00Z to one day from now (is the sender's clock right?)",
                    )),
                    Some(ms) => observed_at_ms = Some(ms),
                    None => {}
                }
            }
            other => errors.push(err(
                other,
                "unknown field; allowed: interactionId, attributes, observedAt",
            )),
        }
    }
    if interaction_id.is_none() && !errors.iter().any(|e| e.field == "interactionId") {
        errors.push(err("interactionId", "required"));
    }
    if attributes.is_none() && !errors.iter().any(|e| e.field.starts_with("attributes")) {
        errors.push(err("attributes", "required"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Observation {
        interaction_id: interaction_id.expect("checked"),
        attributes: attributes.expect("checked"),
        observed_at_ms,
        left: false,
        found: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_and_ndjson() {
        let arr = br#"[{"interactionId":"1","attributes":{"Eic_State":"C"}},{"interactionId":"2","attributes":{},"observedAt":"2024-04-09T14:03:11Z"}]"#;
        let items = parse(arr, 10).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1].observed_at_ms,
            timefmt::parse_timestamp_ms("2024-04-09T14:03:11Z")
        );
        let nd = b"{\"interactionId\":\"1\",\"attributes\":{}}\n\n{\"interactionId\":\"2\",\"attributes\":{},\"observedAt\":1700000000000}\n";
        assert_eq!(parse(nd, 10).unwrap().len(), 2);
    }

    #[test]
    fn item_errors_name_index_and_field() {
        let body = br#"[{"interactionId":"1","attributes":{"Eic_State":"C"}},
                        {"interactionId":"","attributes":{"Eic_State":3}},
                        {"attributes":{}, "color":"red"},
                        {"interactionId":"4","attributes":{},"observedAt":"soon"}]"#;
        let Err(BodyError::Items(errs)) = parse(body, 10) else {
            panic!()
        };
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert!(got.contains(&(1, "interactionId")));
        assert!(got.contains(&(1, "attributes.Eic_State")));
        assert!(got.contains(&(2, "color")));
        assert!(got.contains(&(2, "interactionId")));
        assert!(got.contains(&(3, "observedAt")));
        assert!(!got.iter().any(|(i, _)| *i == 0));
    }

    #[test]
    fn observed_at_far_from_now_is_refused() {
        for bad in [
            r#"9223372036854775807"#,
            r#""1970-01-01T00:00:01Z""#,
            r#""2999-01-01T00:00:00Z""#,
            r#"5"#,
        ] {
            let body = format!(r#"[{{"interactionId":"1","attributes":{{}},"observedAt":{bad}}}]"#);
            let Err(BodyError::Items(e)) = parse(body.as_bytes(), 10) else {
                panic!("{bad} accepted")
            };
            assert_eq!(e[0].field, "observedAt");
            assert!(e[0].reason.contains("out of range"), "{bad}: {}", e[0].reason);
        }
        let now = timefmt::now_ms();
        let ok = format!(r#"[{{"interactionId":"1","attributes":{{}},"observedAt":{now}}}]"#);
        assert!(parse(ok.as_bytes(), 10).is_ok());
    }

    #[test]
    fn whole_body_errors() {
        assert_eq!(parse(b"  ", 10), Err(BodyError::Empty));
        assert_eq!(parse(b"[]", 10), Err(BodyError::Empty));
        assert!(matches!(parse(b"[{", 10), Err(BodyError::BadJson(_))));
        let many = format!("[{}]", [r#"{"interactionId":"1","attributes":{}}"#; 3].join(","));
        assert_eq!(
            parse(many.as_bytes(), 2),
            Err(BodyError::TooManyItems { count: 3, max: 2 })
        );
        let Err(BodyError::Items(e)) = parse(b"not json\n", 10) else {
            panic!()
        };
        assert_eq!(e[0].index, 0);
    }

    #[test]
    fn gzip_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b' '; 100_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 1000);
        assert_eq!(gunzip(&gz, 1000), Err(BodyError::TooLarge { limit: 1000 }));
        assert_eq!(gunzip(&gz, 200_000).unwrap().len(), 100_000);
        assert!(matches!(gunzip(b"plain", 100), Err(BodyError::BadGzip(_))));
    }
}

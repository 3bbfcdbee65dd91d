//! The push body: a JSON array or NDJSON of
//! `{"interactionId": "...", "attributes": {"Eic_State": "C", ...}, "observedAt": optional}`,
//! optionally gzip-compressed.
//!
//! Parsing is strict and total: every problem becomes an [`ItemError`] naming the item's index,
//! the field and why, so the sender can fix it; nothing here panics on any input.

use std::io::Read;

use serde::Serialize;

use crate::normalize::Observation;
use crate::timefmt;

mod item;

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
pub fn parse(body: &[u8], max_items: usize) -> Result<Vec<Observation<'_>>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<Result<item::Parsed<'_>, String>> = match first {
        None => return Err(BodyError::Empty),
        Some(b'[') => match serde_json::from_slice::<Vec<item::Parsed<'_>>>(body) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => return Err(BodyError::BadJson(e.to_string())),
        },
        Some(_) => body
            .split(|b| *b == b'\n')
            .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|l| serde_json::from_slice::<item::Parsed<'_>>(l).map_err(|e| format!("invalid JSON: {e}")))
            .collect(),
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    if items.len() > max_items {
        return Err(BodyError::TooManyItems {
            count: items.len(),
            max: max_items,
        });
    }
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let now_ms = timefmt::now_ms();
    for (index, parsed) in items.into_iter().enumerate() {
        let item = parsed
            .map_err(|reason| {
                vec![ItemError {
                    index,
                    field: String::new(),
                    reason,
                }]
            })
            .and_then(|p| p.finish(index, now_ms));
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
    fn attributes_come_by_name_with_the_last_of_a_repeated_name() {
        let body = br#"[{"attributes":{"b":"1","a":"2","b":"3"},"interaction\u0049d":"x","observedAt":null}]"#;
        let o = parse(body, 10).unwrap().remove(0);
        assert_eq!(o.interaction_id, "x", "an escaped key is the same key");
        assert_eq!(o.observed_at_ms, None);
        let attrs: Vec<(&str, &str)> = o.attributes.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(attrs, [("a", "2"), ("b", "3")]);
    }

    #[test]
    fn text_is_borrowed_from_the_body_unless_it_had_escapes() {
        use std::borrow::Cow;
        let body = br#"[{"interactionId":"100","attributes":{"Eic_State":"C","Eic_RemoteName":"J\u00f6rg \"JJ\""}}]"#;
        let o = parse(body, 10).unwrap().remove(0);
        assert!(matches!(o.interaction_id, Cow::Borrowed("100")));
        let (name, value) = &o.attributes[1];
        assert!(matches!(name, Cow::Borrowed("Eic_State")) && matches!(value, Cow::Borrowed("C")));
        let (_, remote) = &o.attributes[0];
        assert!(matches!(remote, Cow::Owned(_)));
        assert_eq!(remote, "Jörg \"JJ\"");
    }

    #[test]
    fn every_shape_of_a_wrong_item_is_named() {
        let many: String = (0..=MAX_ATTRIBUTES).map(|i| format!(r#""n{i}":"v","#)).collect();
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let body = format!(
            r#"[[1,2], "item", 7, null,
               {{"interactionId":"1","attributes":[]}},
               {{"interactionId":"1","attributes":{{{}}}}},
               {{"interactionId":"1","attributes":{{"{long}":"v","": "v"}}}},
               {{"interactionId":{{"a":1}},"attributes":{{"x":{{"y":[1]}}}},"observedAt":1.5}},
               {{"interactionId":"{}","attributes":{{}},"observedAt":true}},
               {{"interactionId":"  ","interactionId":"ok","attributes":{{"a":1}},"attributes":{{}}}}]"#,
            many.trim_end_matches(','),
            "i".repeat(MAX_ID_LEN + 1)
        );
        let Err(BodyError::Items(errs)) = parse(body.as_bytes(), 20) else {
            panic!()
        };
        let got: Vec<(usize, &str, &str)> = errs
            .iter()
            .map(|e| (e.index, e.field.as_str(), e.reason.as_str()))
            .collect();
        for i in 0..4 {
            assert!(
                got.contains(&(i, "", "expected an object with interactionId and attributes")),
                "{got:?}"
            );
        }
        assert!(
            got.iter()
                .any(|e| e.0 == 4 && e.1 == "attributes" && e.2.contains("must be an object"))
        );
        assert!(got.contains(&(5, "attributes", "more than 256 attributes")), "{got:?}");
        assert_eq!(
            got.iter()
                .filter(|e| e.0 == 6 && e.2.contains("names must be 1 to"))
                .count(),
            2
        );
        assert!(got.iter().any(|e| e.0 == 7 && e.1 == "interactionId"));
        assert!(got.iter().any(|e| e.0 == 7 && e.1 == "attributes.x"));
        assert!(
            got.iter()
                .any(|e| e.0 == 7 && e.1 == "observedAt" && e.2.contains("integer"))
        );
        assert!(got.iter().any(|e| e.0 == 8 && e.2.contains("longer than 64")));
        assert!(
            got.iter()
                .any(|e| e.0 == 8 && e.1 == "observedAt" && e.2.contains("ISO-8601 string or"))
        );
        assert!(
            !got.iter().any(|e| e.0 == 9),
            "the last of a repeated field counts: {got:?}"
        );
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

//! The Avro specification's schema fingerprint: CRC-64-AVRO of the Parsing Canonical Form, the
//! 8 bytes an Avro single-object record's header carries, in the byte order the specification
//! gives (little-endian) — the value Java's `SchemaNormalization.parsingFingerprint64`, Python's
//! fastavro and fingerprint-keyed registries compute, so any Avro tool finds the schema of what
//! the conduit writes.
//!
//! Written here rather than taken from apache-avro, whose canonical form keeps attributes the
//! specification strips (`logicalType`), which gives other bytes.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde_json::{Map, Value};

/// The specification's `EMPTY` constant: the fingerprint of no bytes.
const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

static TABLE: LazyLock<[u64; 256]> = LazyLock::new(|| {
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
        }
        *slot = fp;
    }
    t
});

/// CRC-64-AVRO of `bytes`, as the specification's 64-bit number.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    let t = &*TABLE;
    bytes
        .iter()
        .fold(EMPTY, |fp, b| (fp >> 8) ^ t[((fp ^ u64::from(*b)) & 0xff) as usize])
}

/// The 8 header bytes of a schema given as JSON text: CRC-64-AVRO of its Parsing Canonical Form,
/// little-endian. `None` if the text is not JSON.
pub fn fingerprint(schema_json: &str) -> Option<[u8; 8]> {
    let form = canonical_form(schema_json)?;
    Some(crc64_avro(form.as_bytes()).to_le_bytes())
}

/// Lower-case hex of header bytes, as fastavro prints a fingerprint.
pub fn hex(fp: &[u8; 8]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// The specification's Parsing Canonical Form of a schema given as JSON text.
pub fn canonical_form(schema_json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(schema_json).ok()?;
    let mut out = String::with_capacity(schema_json.len());
    canonical(&v, "", &mut HashSet::new(), &mut out);
    Some(out)
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

fn fullname(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

/// A JSON string literal: serde_json escapes only what JSON requires ([STRINGS]).
fn string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("strings serialize"));
}

/// Writes `v` in canonical form: [PRIMITIVES], [FULLNAMES], [STRIP], [ORDER] (name, type,
/// fields, symbols, items, values, size) and [WHITESPACE]; a named type already written is
/// referred to by its full name.
fn canonical(v: &Value, namespace: &str, defined: &mut HashSet<String>, out: &mut String) {
    match v {
        Value::String(s) if PRIMITIVES.contains(&s.as_str()) => string(s, out),
        Value::String(s) => string(&fullname(s, namespace), out),
        Value::Array(branches) => {
            out.push('[');
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(b, namespace, defined, out);
            }
            out.push(']');
        }
        Value::Object(o) => object(o, namespace, defined, out),
        other => out.push_str(&other.to_string()),
    }
}

fn object(o: &Map<String, Value>, namespace: &str, defined: &mut HashSet<String>, out: &mut String) {
    let Some(ty) = o.get("type") else {
        out.push_str("null");
        return;
    };
    let Some(ty) = ty.as_str() else {
        // `{"type": {...}}` or `{"type": [...]}`: the inner schema
        return canonical(ty, namespace, defined, out);
    };
    match ty {
        "array" | "map" => {
            let key = if ty == "array" { "items" } else { "values" };
            out.push_str(&format!("{{\"type\":\"{ty}\",\"{key}\":"));
            canonical(o.get(key).unwrap_or(&Value::Null), namespace, defined, out);
            out.push('}');
        }
        "record" | "error" | "enum" | "fixed" => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or("");
            let own_ns = o.get("namespace").and_then(Value::as_str).unwrap_or(namespace);
            let full = fullname(name, own_ns);
            if !defined.insert(full.clone()) {
                return string(&full, out);
            }
            let inner_ns = full.rsplit_once('.').map_or("", |(ns, _)| ns).to_string();
            out.push_str("{\"name\":");
            string(&full, out);
            out.push_str(",\"type\":");
            string(if ty == "error" { "record" } else { ty }, out);
            if let Some(Value::Array(fields)) = o.get("fields") {
                out.push_str(",\"fields\":[");
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"name\":");
                    string(f.get("name").and_then(Value::as_str).unwrap_or(""), out);
                    out.push_str(",\"type\":");
                    canonical(f.get("type").unwrap_or(&Value::Null), &inner_ns, defined, out);
                    out.push('}');
                }
                out.push(']');
            }
            if let Some(symbols) = o.get("symbols") {
                out.push_str(",\"symbols\":");
                out.push_str(&symbols.to_string());
            }
            if let Some(size) = o.get("size") {
                out.push_str(",\"size\":");
                out.push_str(&size.to_string());
            }
            out.push('}');
        }
        // a primitive in object form, or a named type referred to in object form
        other => canonical(&Value::String(other.to_string()), namespace, defined, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_known_values() {
        // Java's SchemaNormalization.parsingFingerprint64("null") = 0x63dd24e7cc258f8a.
        assert_eq!(crc64_avro(b"\"null\""), 0x63dd_24e7_cc25_8f8a);
        assert_eq!(hex(&fingerprint("\"null\"").unwrap()), "8a8f25cce724dd63");
        assert_eq!(fingerprint(r#"{"type": "null"}"#), fingerprint("\"null\""));
    }

    #[test]
    fn strips_what_does_not_change_parsing() {
        let a = r#"{"type":"record","name":"R","namespace":"x.y","doc":"d","fields":[
            {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"default":0,"doc":"q"},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},
            {"name":"again","type":"E"}]}"#;
        assert_eq!(
            canonical_form(a).unwrap(),
            r#"{"name":"x.y.R","type":"record","fields":[{"name":"t","type":"long"},{"name":"e","type":{"name":"x.y.E","type":"enum","symbols":["A","B"]}},{"name":"again","type":"x.y.E"}]}"#
        );
    }
}

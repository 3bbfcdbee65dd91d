//! One pushed item, read straight from the body's bytes into an [`Observation`] (no JSON tree
//! in between, its text borrowed from the body unless it had escapes), with every problem kept
//! as an [`ItemError`] instead of stopping at the first.
//!
//! The checks and their wording are the push body's contract (see [`super`]); the attributes
//! come out sorted by name with the last of a repeated name kept, as a JSON object read into a
//! map would give them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{EARLIEST_OBSERVED_MS, ItemError, MAX_AHEAD_MS, MAX_ATTRIBUTES, MAX_ID_LEN, MAX_NAME_LEN};
use crate::normalize::Observation;
use crate::timefmt;

/// A field's problem: the field and why.
type Fault = (String, String);

/// An item as read: what it holds and what is wrong with it.
#[derive(Default)]
pub struct Parsed<'de> {
    interaction_id: Option<Cow<'de, str>>,
    attributes: Option<Vec<(Cow<'de, str>, Cow<'de, str>)>>,
    observed_at: Option<Loose<'de>>,
    faults: Vec<Fault>,
}

impl<'de> Parsed<'de> {
    /// The observation, or every problem of the item at `index` (`now_ms` bounds `observedAt`).
    pub fn finish(self, index: usize, now_ms: i64) -> Result<Observation<'de>, Vec<ItemError>> {
        let Parsed {
            interaction_id,
            attributes,
            observed_at,
            mut faults,
        } = self;
        let observed_at_ms = observed_at.and_then(|v| observed_ms(v, now_ms, &mut faults));
        if interaction_id.is_none() && !faults.iter().any(|f| f.0 == "interactionId") {
            faults.push(fault("interactionId", "required"));
        }
        if attributes.is_none() && !faults.iter().any(|f| f.0.starts_with("attributes")) {
            faults.push(fault("attributes", "required"));
        }
        match (interaction_id, attributes) {
            (Some(interaction_id), Some(attributes)) if faults.is_empty() => Ok(Observation {
                interaction_id,
                attributes,
                observed_at_ms,
                left: false,
                found: false,
            }),
            _ => Err(faults
                .into_iter()
                .map(|(field, reason)| ItemError { index, field, reason })
                .collect()),
        }
    }
}

fn fault(field: &str, reason: &str) -> Fault {
    (field.to_string(), reason.to_string())
}

/// `observedAt` checked: a timestamp string or epoch milliseconds, within range.
fn observed_ms(v: Loose<'_>, now_ms: i64, faults: &mut Vec<Fault>) -> Option<i64> {
    let ms = match v {
        Loose::Null => None,
        Loose::Str(s) => match timefmt::parse_timestamp_ms(&s) {
            Some(ms) => Some(ms),
            None => {
                faults.push(fault(
                    "observedAt",
                    "not an ISO-8601 timestamp such as 2024-04-09T14:03:11Z",
                ));
                None
            }
        },
        Loose::Int(Some(ms)) if ms >= 0 => Some(ms),
        Loose::Int(_) => {
            faults.push(fault("observedAt", "epoch milliseconds must be a non-negative integer"));
            None
        }
        Loose::Other => {
            faults.push(fault("observedAt", "must be an ISO-8601 string or epoch milliseconds"));
            None
        }
    };
    match ms {
        Some(ms) if !(EARLIEST_OBSERVED_MS..=now_ms + MAX_AHEAD_MS).contains(&ms) => {
            faults.push(fault(
                "observedAt",
                "out of range: must be from 2000-01-01T00:00:00Z to one day from now (is the sender's clock right?)",
            ));
            None
        }
        ms => ms,
    }
}

/// A JSON value as far as the checks need it.
enum Loose<'de> {
    Str(Cow<'de, str>),
    /// A number: the integer when it is one that fits.
    Int(Option<i64>),
    Null,
    /// Anything else (read and dropped).
    Other,
}

impl<'de> de::Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::Int(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::Int(i64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::Int(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The visitor methods of a value that must be an object: any other value is read whole (so the
/// body's next item is still found) and answered with `$other`.
macro_rules! not_an_object {
    ($ty:ty, $other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$ty, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$ty, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($other)
        }
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($other)
        }
    };
}

/// The `attributes` object: name → string value, or why not.
enum Attributes<'de> {
    List(Vec<(Cow<'de, str>, Cow<'de, str>)>, Vec<Fault>),
    TooMany,
    NotAnObject,
}

impl<'de> de::Deserialize<'de> for Attributes<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attributes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attribute name to string value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes<'de>, A::Error> {
                let mut list = Vec::with_capacity(map.size_hint().unwrap_or(16).min(MAX_ATTRIBUTES));
                let mut faults = Vec::new();
                let mut count = 0;
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    count += 1;
                    if count > MAX_ATTRIBUTES {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let value = map.next_value::<Loose>()?;
                    if name.is_empty() || name.len() > MAX_NAME_LEN {
                        faults.push(fault(
                            "attributes",
                            &format!("attribute names must be 1 to {MAX_NAME_LEN} characters"),
                        ));
                        continue;
                    }
                    match value {
                        Loose::Str(s) => list.push((name, s)),
                        _ => faults.push((
                            format!("attributes.{name}"),
                            "must be a string (ICWS sends every value as a string)".into(),
                        )),
                    }
                }
                if count > MAX_ATTRIBUTES {
                    return Ok(Attributes::TooMany);
                }
                // As a map gives them: by name, the last of a repeated name kept.
                list.sort_by(|a, b| a.0.cmp(&b.0));
                list.reverse();
                list.dedup_by(|later, earlier| later.0 == earlier.0);
                list.reverse();
                Ok(Attributes::List(list, faults))
            }
            not_an_object!(Attributes<'de>, Attributes::NotAnObject);
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parsed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with interactionId and attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
                let mut p = Parsed::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match &*key {
                        "interactionId" => {
                            p.faults.retain(|f| f.0 != "interactionId");
                            p.interaction_id = None;
                            match map.next_value::<Loose>()? {
                                Loose::Str(s) if !s.trim().is_empty() && s.len() <= MAX_ID_LEN => {
                                    p.interaction_id = Some(s)
                                }
                                Loose::Str(s) if s.len() > MAX_ID_LEN => p
                                    .faults
                                    .push(fault("interactionId", &format!("longer than {MAX_ID_LEN} characters"))),
                                _ => p.faults.push(fault("interactionId", "must be a non-empty string")),
                            }
                        }
                        "attributes" => {
                            p.faults.retain(|f| !f.0.starts_with("attributes"));
                            p.attributes = None;
                            match map.next_value::<Attributes>()? {
                                Attributes::List(list, mut faults) => {
                                    p.attributes = Some(list);
                                    p.faults.append(&mut faults);
                                }
                                Attributes::TooMany => p
                                    .faults
                                    .push(fault("attributes", &format!("more than {MAX_ATTRIBUTES} attributes"))),
                                Attributes::NotAnObject => p.faults.push(fault(
                                    "attributes",
                                    "must be an object of attribute name to string value",
                                )),
                            }
                        }
                        "observedAt" => p.observed_at = Some(map.next_value::<Loose>()?),
                        other => {
                            map.next_value::<IgnoredAny>()?;
                            p.faults.push(fault(
                                other,
                                "unknown field; allowed: interactionId, attributes, observedAt",
                            ));
                        }
                    }
                }
                Ok(p)
            }
            not_an_object!(Parsed<'de>, not_an_object());
        }
        d.deserialize_any(V)
    }
}

fn not_an_object<'de>() -> Parsed<'de> {
    Parsed {
        faults: vec![fault("", "expected an object with interactionId and attributes")],
        ..Parsed::default()
    }
}

/// A string, borrowed from the body unless it had escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

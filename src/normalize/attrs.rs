//! The `Eic_*` attributes the normalizer understands, and their value parsers.
//!
//! Names are matched case-insensitively (ICWS does not promise a case). Every parser is total:
//! an unparseable value is `None` plus a warning for the caller to count.

use crate::event::{Direction, MediaType};

/// A known attribute: its slot in [`super::table::Tracked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Attr {
    /// `Eic_CallId`.
    CallId,
    /// `Eic_CallIdKey`.
    CallIdKey,
    /// `Eic_State`.
    State,
    /// `Eic_CallDirection`.
    Direction,
    /// `Eic_ObjectType`.
    ObjectType,
    /// `Eic_RemoteAddress`.
    RemoteAddress,
    /// `Eic_RemoteName`.
    RemoteName,
    /// `Eic_RemoteTnRaw`.
    RemoteTnRaw,
    /// `Eic_LocalAddress`.
    LocalAddress,
    /// `Eic_WorkgroupName`.
    Workgroup,
    /// `Eic_UserName`.
    UserName,
    /// `Eic_InitiationTime`.
    InitiationTime,
    /// `Eic_TerminationTime`.
    TerminationTime,
    /// `Eic_ConnectDurationTime`.
    ConnectDuration,
}

/// How many known attributes there are.
pub const KNOWN: usize = 14;

/// The ICWS names of the known attributes, in slot order.
pub const NAMES: [&str; KNOWN] = [
    "Eic_CallId",
    "Eic_CallIdKey",
    "Eic_State",
    "Eic_CallDirection",
    "Eic_ObjectType",
    "Eic_RemoteAddress",
    "Eic_RemoteName",
    "Eic_RemoteTnRaw",
    "Eic_LocalAddress",
    "Eic_WorkgroupName",
    "Eic_UserName",
    "Eic_InitiationTime",
    "Eic_TerminationTime",
    "Eic_ConnectDurationTime",
];

const ALL: [Attr; KNOWN] = [
    Attr::CallId,
    Attr::CallIdKey,
    Attr::State,
    Attr::Direction,
    Attr::ObjectType,
    Attr::RemoteAddress,
    Attr::RemoteName,
    Attr::RemoteTnRaw,
    Attr::LocalAddress,
    Attr::Workgroup,
    Attr::UserName,
    Attr::InitiationTime,
    Attr::TerminationTime,
    Attr::ConnectDuration,
];

impl Attr {
    /// The known attribute with this name, in any case. Names as ICWS spells them are matched
    /// exactly first (one comparison, where the case-blind search tries every name in turn).
    pub fn lookup(name: &str) -> Option<Attr> {
        if name.len() < 8 || !name.as_bytes()[..4].eq_ignore_ascii_case(b"Eic_") {
            return None;
        }
        let exact = match name {
            "Eic_CallId" => Some(Attr::CallId),
            "Eic_CallIdKey" => Some(Attr::CallIdKey),
            "Eic_State" => Some(Attr::State),
            "Eic_CallDirection" => Some(Attr::Direction),
            "Eic_ObjectType" => Some(Attr::ObjectType),
            "Eic_RemoteAddress" => Some(Attr::RemoteAddress),
            "Eic_RemoteName" => Some(Attr::RemoteName),
            "Eic_RemoteTnRaw" => Some(Attr::RemoteTnRaw),
            "Eic_LocalAddress" => Some(Attr::LocalAddress),
            "Eic_WorkgroupName" => Some(Attr::Workgroup),
            "Eic_UserName" => Some(Attr::UserName),
            "Eic_InitiationTime" => Some(Attr::InitiationTime),
            "Eic_TerminationTime" => Some(Attr::TerminationTime),
            "Eic_ConnectDurationTime" => Some(Attr::ConnectDuration),
            _ => None,
        };
        exact.or_else(|| NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| ALL[i]))
    }
}

/// Maps `Eic_CallDirection`; `None` with `ok = false` for an unknown value.
pub fn direction(v: &str) -> Option<Direction> {
    match v.trim() {
        "I" | "i" => Some(Direction::Inbound),
        "O" | "o" => Some(Direction::Outbound),
        s if s.eq_ignore_ascii_case("inbound") => Some(Direction::Inbound),
        s if s.eq_ignore_ascii_case("outbound") => Some(Direction::Outbound),
        _ => None,
    }
}

/// Maps `Eic_ObjectType` (exact strings are undocumented, so matching is loose); an unknown but
/// non-empty type is [`MediaType::Other`].
pub fn media_type(v: &str) -> Option<MediaType> {
    // The common spellings without the normalizing copy.
    match v {
        "Call" => return Some(MediaType::Call),
        "Chat" => return Some(MediaType::Chat),
        "Email" => return Some(MediaType::Email),
        "Callback" => return Some(MediaType::Callback),
        _ => {}
    }
    let norm: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if norm.is_empty() {
        return None;
    }
    Some(match norm.as_str() {
        "call" | "telephone" | "phone" | "voice" => MediaType::Call,
        "chat" | "webchat" => MediaType::Chat,
        "email" | "emailobject" => MediaType::Email,
        "callback" | "webcallback" => MediaType::Callback,
        "genericobject" | "generic" | "genericinteraction" => MediaType::Generic,
        "workitem" => MediaType::Workitem,
        s if s.starts_with("social") => MediaType::Social,
        _ => MediaType::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(Attr::lookup("eic_state"), Some(Attr::State));
        assert_eq!(Attr::lookup("EIC_CALLIDKEY"), Some(Attr::CallIdKey));
        assert_eq!(Attr::lookup("Eic_Nonsense"), None);
        assert_eq!(Attr::lookup("Eic_"), None);
        assert_eq!(Attr::lookup("Custom_State"), None);
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            assert_eq!(Attr::lookup(NAMES[i]), Some(*a), "{}", NAMES[i]);
            assert_eq!(Attr::lookup(&NAMES[i].to_lowercase()), Some(*a));
        }
    }

    #[test]
    fn event_types_index_their_list() {
        for (i, t) in crate::event::EventType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn media_and_direction() {
        assert_eq!(media_type("Call"), Some(MediaType::Call));
        assert_eq!(media_type("Generic Object"), Some(MediaType::Generic));
        assert_eq!(media_type("Work Item"), Some(MediaType::Workitem));
        assert_eq!(media_type("E-mail"), Some(MediaType::Email));
        assert_eq!(media_type("Social Conversation"), Some(MediaType::Social));
        assert_eq!(media_type("Fax"), Some(MediaType::Other));
        assert_eq!(media_type(""), None);
        assert_eq!(direction("O"), Some(Direction::Outbound));
        assert_eq!(direction("?"), None);
    }
}

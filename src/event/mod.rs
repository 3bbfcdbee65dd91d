//! The canonical event model: [`InteractionEvent`], mirrored field for field by
//! `schemas/interaction_event.v2.avsc`, plus its borrowed form ([`view`]), deterministic ids
//! ([`id`]), Avro codec ([`codec`], writing through [`avro`]) and the specification's schema
//! fingerprint ([`fingerprint`]).
//!
//! Promises: every event this crate writes conforms to the current schema; optional fields are
//! `None` (Avro `null`) rather than invented; the serde names below are the Avro names.

pub mod avro;
pub mod codec;
pub mod fingerprint;
pub mod id;
pub mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use codec::{CodecError, EventCodec};
pub use view::{EventSink, EventView};

/// What happened to the interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// First seen.
    Started,
    /// Offered to the queue (`Eic_State` O): waiting for an agent.
    Queued,
    /// Connected to an agent.
    Connected,
    /// Put on hold.
    Held,
    /// Taken off hold.
    Resumed,
    /// Parked.
    Parked,
    /// In voicemail or messaging.
    Voicemail,
    /// Its workgroup or agent changed.
    Transferred,
    /// Disconnected (locally or remotely: see the interaction's state).
    Ended,
    /// Offered to an agent, whose phone or client is ringing (`Eic_State` A): carries the agent.
    Alerting,
    /// An outbound call being dialed (`Eic_State` R, proceeding).
    Dialing,
    /// Any other change of `Eic_State` (suspended, system, not set): the new state is in
    /// `interaction.state`.
    StateChanged,
}

impl EventType {
    /// Every type, in schema order.
    pub const ALL: [EventType; 12] = [
        EventType::Started,
        EventType::Queued,
        EventType::Connected,
        EventType::Held,
        EventType::Resumed,
        EventType::Parked,
        EventType::Voicemail,
        EventType::Transferred,
        EventType::Ended,
        EventType::Alerting,
        EventType::Dialing,
        EventType::StateChanged,
    ];

    /// Lower-case name for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Started => "started",
            EventType::Queued => "queued",
            EventType::Connected => "connected",
            EventType::Held => "held",
            EventType::Resumed => "resumed",
            EventType::Parked => "parked",
            EventType::Voicemail => "voicemail",
            EventType::Transferred => "transferred",
            EventType::Ended => "ended",
            EventType::Alerting => "alerting",
            EventType::Dialing => "dialing",
            EventType::StateChanged => "state_changed",
        }
    }
}

/// The interaction's medium (`Eic_ObjectType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaType {
    /// A telephone call.
    Call,
    /// A web chat.
    Chat,
    /// An email.
    Email,
    /// A callback request.
    Callback,
    /// A generic object.
    Generic,
    /// A work item.
    Workitem,
    /// A social media conversation.
    Social,
    /// Some other object type.
    Other,
}

/// Inbound or outbound (`Eic_CallDirection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// The customer contacted us.
    Inbound,
    /// We contacted the customer.
    Outbound,
}

/// CIC's interaction state (`Eic_State`), every documented letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Empty: not set.
    NotSet,
    /// `A`.
    Alerting,
    /// `C`.
    Connected,
    /// `H`.
    Held,
    /// `M`: messaging or voicemail.
    Messaging,
    /// `O`.
    Offering,
    /// `P`.
    Parked,
    /// `R`: outbound, awaiting answer.
    Proceeding,
    /// `X`.
    Suspended,
    /// `S`.
    System,
    /// `I`: disconnected by our side.
    DisconnectedLocal,
    /// `E`: disconnected by the remote party.
    DisconnectedRemote,
}

impl State {
    /// Maps an `Eic_State` value; `None` for an unknown letter.
    pub fn from_letter(s: &str) -> Option<State> {
        Some(match s.trim() {
            "" => State::NotSet,
            "A" | "a" => State::Alerting,
            "C" | "c" => State::Connected,
            "H" | "h" => State::Held,
            "M" | "m" => State::Messaging,
            "O" | "o" => State::Offering,
            "P" | "p" => State::Parked,
            "R" | "r" => State::Proceeding,
            "X" | "x" => State::Suspended,
            "S" | "s" => State::System,
            "I" | "i" => State::DisconnectedLocal,
            "E" | "e" => State::DisconnectedRemote,
            _ => return None,
        })
    }

    /// The `Eic_State` letter (upper case; empty for [`State::NotSet`]).
    pub fn letter(self) -> &'static str {
        match self {
            State::NotSet => "",
            State::Alerting => "A",
            State::Connected => "C",
            State::Held => "H",
            State::Messaging => "M",
            State::Offering => "O",
            State::Parked => "P",
            State::Proceeding => "R",
            State::Suspended => "X",
            State::System => "S",
            State::DisconnectedLocal => "I",
            State::DisconnectedRemote => "E",
        }
    }

    /// Whether the interaction is over.
    pub fn is_disconnected(self) -> bool {
        matches!(self, State::DisconnectedLocal | State::DisconnectedRemote)
    }
}

/// The interaction's fields as of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// `Eic_CallIdKey`, the unique key (derived from the call id and a date when CIC sent none).
    pub call_id_key: String,
    /// `Eic_CallId`.
    pub call_id: String,
    /// Medium.
    pub media_type: Option<MediaType>,
    /// Inbound or outbound.
    pub direction: Option<Direction>,
    /// CIC state.
    pub state: Option<State>,
    /// ACD workgroup.
    pub workgroup: Option<String>,
    /// Agent (CIC user name).
    pub agent: Option<String>,
    /// Our line address.
    pub local_address: Option<String>,
    /// The customer's address as CIC gave it.
    pub remote_address: Option<String>,
    /// The customer's name as CIC gave it.
    pub remote_name: Option<String>,
    /// Start, Unix ms.
    pub initiated_at: Option<i64>,
    /// End, Unix ms.
    pub terminated_at: Option<i64>,
    /// Time connected, ms.
    pub connected_duration_ms: Option<i64>,
}

/// Who the customer is, as far as Genesys Cloud can match it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Customer {
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Email address, lower case.
    pub email: Option<String>,
    /// Caller id withheld (BLCKD, NOCLID, OOA, PRIV).
    pub caller_id_withheld: bool,
}

/// One meaningful change of a CIC interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionEvent {
    /// Deterministic UUID (see [`id`]).
    pub event_id: String,
    /// What happened.
    pub event_type: EventType,
    /// When it happened, Unix ms.
    pub occurred_at: i64,
    /// When it was observed, Unix ms.
    pub observed_at: i64,
    /// The CIC server it came from.
    pub cic_server: String,
    /// The interaction as of this event.
    pub interaction: Interaction,
    /// The customer's identifiers.
    pub customer: Customer,
    /// Allow-listed custom attributes.
    pub attributes: BTreeMap<String, String>,
}

impl InteractionEvent {
    /// A typical event (an inbound call connected to an agent), for documentation, tests and
    /// benchmarks.
    pub fn example() -> InteractionEvent {
        InteractionEvent {
            event_id: "6f1c1f8e-8f1b-5d8a-9d5e-1c2b3a4d5e6f".into(),
            event_type: EventType::Connected,
            occurred_at: 1_712_671_391_000,
            observed_at: 1_712_671_391_120,
            cic_server: "cic01".into(),
            interaction: Interaction {
                call_id_key: "100265870720240409".into(),
                call_id: "1002658707".into(),
                media_type: Some(MediaType::Call),
                direction: Some(Direction::Inbound),
                state: Some(State::Connected),
                workgroup: Some("Support".into()),
                agent: Some("jdoe".into()),
                local_address: Some("+13175550100".into()),
                remote_address: Some("+13175551234".into()),
                remote_name: Some("Pat Customer".into()),
                initiated_at: Some(1_712_671_380_000),
                terminated_at: None,
                connected_duration_ms: None,
            },
            customer: Customer {
                phone: Some("+13175551234".into()),
                email: None,
                caller_id_withheld: false,
            },
            attributes: BTreeMap::from([("AccountTier".to_string(), "gold".to_string())]),
        }
    }
}

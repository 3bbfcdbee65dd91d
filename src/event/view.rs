//! A borrowed view of an event: what the Avro writer ([`super::avro`]) reads. It lets an event
//! be encoded from wherever its fields already are — an [`InteractionEvent`], or the
//! normalizer's tracked state — without first copying every string into an owned event.
//!
//! Promises: a view and the event it was made from ([`InteractionEvent::view`],
//! [`EventView::to_event`]) say the same thing field for field; attributes come out in name
//! order, as an [`InteractionEvent`]'s map gives them.

use std::collections::BTreeMap;

use super::{Customer, Direction, EventType, Interaction, InteractionEvent, MediaType, State};

/// An event whose text is borrowed.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    /// See [`InteractionEvent::event_id`].
    pub event_id: &'a str,
    /// What happened.
    pub event_type: EventType,
    /// When it happened, Unix ms.
    pub occurred_at: i64,
    /// When it was observed, Unix ms.
    pub observed_at: i64,
    /// The CIC server it came from.
    pub cic_server: &'a str,
    /// The interaction as of this event.
    pub interaction: InteractionView<'a>,
    /// The customer's identifiers.
    pub customer: CustomerView<'a>,
    /// Allow-listed custom attributes.
    pub attributes: AttributesView<'a>,
}

/// [`Interaction`], borrowed.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // field for field as Interaction
pub struct InteractionView<'a> {
    pub call_id_key: &'a str,
    pub call_id: &'a str,
    pub media_type: Option<MediaType>,
    pub direction: Option<Direction>,
    pub state: Option<State>,
    pub workgroup: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub local_address: Option<&'a str>,
    pub remote_address: Option<&'a str>,
    pub remote_name: Option<&'a str>,
    pub initiated_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub connected_duration_ms: Option<i64>,
}

/// [`Customer`], borrowed.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // field for field as Customer
pub struct CustomerView<'a> {
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub caller_id_withheld: bool,
}

/// The custom attributes, wherever they are kept.
#[derive(Debug, Clone, Copy)]
pub enum AttributesView<'a> {
    /// An owned event's map.
    Map(&'a BTreeMap<String, String>),
    /// Names and values side by side (a `None` value is absent), listed through `order`: the
    /// positions of `names` sorted by name. A name repeating the one before it is skipped.
    Slots {
        /// Attribute names.
        names: &'a [String],
        /// Their values, position for position.
        values: &'a [Option<Box<str>>],
        /// Positions in name order.
        order: &'a [usize],
    },
}

impl<'a> AttributesView<'a> {
    /// No attributes.
    pub const NONE: AttributesView<'static> = AttributesView::Slots {
        names: &[],
        values: &[],
        order: &[],
    };

    /// Calls `f` with each attribute in name order.
    pub fn for_each(&self, mut f: impl FnMut(&'a str, &'a str)) {
        match *self {
            AttributesView::Map(m) => m.iter().for_each(|(k, v)| f(k, v)),
            AttributesView::Slots { names, values, order } => {
                let mut last: Option<&str> = None;
                for &i in order {
                    let (Some(name), Some(Some(value))) = (names.get(i), values.get(i)) else {
                        continue;
                    };
                    if last == Some(name.as_str()) {
                        continue;
                    }
                    last = Some(name);
                    f(name, value);
                }
            }
        }
    }

    /// How many attributes [`Self::for_each`] gives.
    pub fn len(&self) -> usize {
        match *self {
            AttributesView::Map(m) => m.len(),
            AttributesView::Slots { .. } => {
                let mut n = 0;
                self.for_each(|_, _| n += 1);
                n
            }
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl InteractionEvent {
    /// This event, borrowed.
    pub fn view(&self) -> EventView<'_> {
        let i = &self.interaction;
        EventView {
            event_id: &self.event_id,
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            observed_at: self.observed_at,
            cic_server: &self.cic_server,
            interaction: InteractionView {
                call_id_key: &i.call_id_key,
                call_id: &i.call_id,
                media_type: i.media_type,
                direction: i.direction,
                state: i.state,
                workgroup: i.workgroup.as_deref(),
                agent: i.agent.as_deref(),
                local_address: i.local_address.as_deref(),
                remote_address: i.remote_address.as_deref(),
                remote_name: i.remote_name.as_deref(),
                initiated_at: i.initiated_at,
                terminated_at: i.terminated_at,
                connected_duration_ms: i.connected_duration_ms,
            },
            customer: CustomerView {
                phone: self.customer.phone.as_deref(),
                email: self.customer.email.as_deref(),
                caller_id_withheld: self.customer.caller_id_withheld,
            },
            attributes: AttributesView::Map(&self.attributes),
        }
    }
}

impl EventView<'_> {
    /// The owned event this view describes.
    pub fn to_event(&self) -> InteractionEvent {
        let i = &self.interaction;
        let s = |v: Option<&str>| v.map(str::to_string);
        let mut attributes = BTreeMap::new();
        self.attributes.for_each(|k, v| {
            attributes.insert(k.to_string(), v.to_string());
        });
        InteractionEvent {
            event_id: self.event_id.to_string(),
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            observed_at: self.observed_at,
            cic_server: self.cic_server.to_string(),
            interaction: Interaction {
                call_id_key: i.call_id_key.to_string(),
                call_id: i.call_id.to_string(),
                media_type: i.media_type,
                direction: i.direction,
                state: i.state,
                workgroup: s(i.workgroup),
                agent: s(i.agent),
                local_address: s(i.local_address),
                remote_address: s(i.remote_address),
                remote_name: s(i.remote_name),
                initiated_at: i.initiated_at,
                terminated_at: i.terminated_at,
                connected_duration_ms: i.connected_duration_ms,
            },
            customer: Customer {
                phone: s(self.customer.phone),
                email: s(self.customer.email),
                caller_id_withheld: self.customer.caller_id_withheld,
            },
            attributes,
        }
    }
}

/// Where a producer of events (the normalizer) puts them: owned in a list, or straight into
/// encoded records.
pub trait EventSink {
    /// Takes one event.
    fn event(&mut self, ev: &EventView<'_>);
}

impl EventSink for Vec<InteractionEvent> {
    fn event(&mut self, ev: &EventView<'_>) {
        self.push(ev.to_event());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_and_its_view_agree() {
        let ev = InteractionEvent::example();
        assert_eq!(ev.view().to_event(), ev);
    }

    #[test]
    fn slots_come_in_name_order_without_absent_or_repeated_names() {
        let names: Vec<String> = ["b", "a", "c", "a"].iter().map(|s| s.to_string()).collect();
        let values: Vec<Option<Box<str>>> = vec![Some("2".into()), Some("1".into()), None, Some("x".into())];
        let order = [1, 3, 0, 2];
        let view = AttributesView::Slots {
            names: &names,
            values: &values,
            order: &order,
        };
        let mut seen = Vec::new();
        view.for_each(|k, v| seen.push((k, v)));
        assert_eq!(seen, [("a", "1"), ("b", "2")]);
        assert_eq!(view.len(), 2);
        assert!(AttributesView::NONE.is_empty());
    }
}

//! User sync: CIC's user directory kept equal to the paired organization's users, over SCIM.
//!
//! It is a reconciliation, not an event log: it compares CIC's directory with the organization's
//! users and writes the difference. [`mapping`] owns the documented CIC → Genesys Cloud mapping
//! and the least write that makes a cloud user equal to its CIC user; [`feed`] the hand-off from
//! the ICWS source; [`sync`] the component that writes (through [`scim`]) and keeps each user's
//! [`status`]. Statuses are a stream instead: [`change`] is a CIC status change as the buffer
//! keeps it, [`presence`] which presence a CIC status means and the deterministic id of its
//! event (delivered by [`crate::sink::presence`]).

pub mod change;
pub mod feed;
pub mod mapping;
pub mod presence;
pub mod scim;
pub mod status;
pub mod sync;

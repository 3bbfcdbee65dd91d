//! User sync: CIC's user directory kept equal to the paired organization's users, over SCIM.
//!
//! It is a reconciliation, not an event log: it compares CIC's directory with the organization's
//! users and writes the difference. [`mapping`] owns the documented CIC → Genesys Cloud mapping
//! and the least write that makes a cloud user equal to its CIC user; [`presence`] which presence
//! a CIC status means and the deterministic id of a presence event.

pub mod change;
pub mod mapping;
pub mod presence;
pub mod scim;
pub mod status;
pub mod sync;

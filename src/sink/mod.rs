//! Sinks: the destinations in Genesys Cloud. This module holds what every sink shares — how a
//! response is classified ([`classify`]) and how requests are paced from the rate-limit headers
//! ([`ratelimit`]); the destinations themselves build on these.

pub mod classify;
pub mod ratelimit;

//! Sinks: the destinations in Genesys Cloud. This module holds what every sink shares — how a
//! response is classified ([`classify`]), how requests are paced from the rate-limit headers
//! ([`ratelimit`]), and the shared OAuth token cache ([`oauth`]); the destinations build on these.

pub mod classify;
pub mod oauth;
pub mod ratelimit;

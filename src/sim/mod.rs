//! Simulators of the two outside services, faithful to `interfaces.md`: product code that
//! operators use for staging and capacity planning, and that the tests run against. They check
//! what they receive as strictly as the real services and can inject the real services' failures.
//! [`cic`] is CIC's ICWS API, [`cloud`] Genesys Cloud; [`traffic`] generates the realistic CIC
//! interaction load they (and `cic-conduit demo`) replay; [`tls`] serves them over HTTPS.

pub mod cic;

/// A seed for a simulator's opaque ids (tokens, sessions, correlation ids): the start time.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
}

/// The `n`th id of a simulator seeded with `seed`, in `space`.
fn nth_uuid(space: &str, seed: u64, n: u64) -> uuid::Uuid {
    crate::event::id::v5(&uuid::Uuid::NAMESPACE_OID, &[format!("{space}:{seed}:{n}").as_bytes()])
}

/// The `n`th opaque id (tokens, sessions, correlation ids): 32 hex digits.
fn opaque_id(space: &str, seed: u64, n: u64) -> String {
    nth_uuid(space, seed, n).simple().to_string()
}

/// The `n`th id of an object the API returns (users, schemas, sources): a hyphenated UUID.
fn object_id(space: &str, seed: u64, n: u64) -> String {
    nth_uuid(space, seed, n).hyphenated().to_string()
}
pub mod cloud;
pub mod tls;
pub mod traffic;

//! Simulators of the two outside services, faithful to `interfaces.md`: product code that
//! operators use for staging and capacity planning, and that the tests run against. They check
//! what they receive as strictly as the real services and can inject the real services' failures.
//! [`cic`] is CIC's ICWS API, [`cloud`] Genesys Cloud; [`traffic`] generates the realistic CIC
//! interaction load they (and `cic-conduit demo`) replay.

pub mod cic;
pub mod cloud;
pub mod traffic;

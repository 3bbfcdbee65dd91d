//! cic-conduit: the sidecar that carries Genesys PureConnect (CIC) interaction events to the
//! paired Genesys Cloud organization without losing any it accepted.
//!
//! # Module map
//!
//! Data flows top to bottom:
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the TOML file, `CONDUIT_` environment overrides, secrets, validation into the structs the code runs on |
//! | [`settings`] | a validated config made ready to run, once: the role, secrets resolved, addresses and URLs parsed |
//! | [`source`] | inputs: the ICWS source (reads CIC itself: interactions, and for user sync the directory and statuses) and the HTTP push endpoint (`POST /v1/interactions`) |
//! | [`normalize`] | per-interaction state; ICWS `Eic_*` attribute maps in, [`event::InteractionEvent`]s out |
//! | [`event`] | the canonical event model, its Avro schema (`schemas/`), deterministic ids, the codec |
//! | [`buffer`] | the durability boundary: the [`buffer::Buffer`] contract (keyed appends, opaque positions, owned readers), the embedded segmented disk log, and a Kafka topic with a consumer group of dispatchers ([`buffer::kafka`]) |
//! | [`dispatch`] | buffer → sinks, the same for every sink: routing by kind, lanes, batches, pacing and pauses per OAuth client, retries, dead letters, acknowledgements, the drain on shutdown |
//! | [`deadletter`] | records refused for good, kept in Avro files under `<data_dir>/dead-letter/`: generic over the kind of record, written for any sink |
//! | [`sink`] | the [`sink::Sink`] abstraction and the Genesys Cloud destinations: journey external events, user presence, OAuth, classification, pacing, set-up |
//! | [`users`] | user and status sync: the CIC → Genesys Cloud user mapping, the component that keeps the organization's users equal to CIC's directory over SCIM (and each user's sync status), CIC status changes and the presence each means |
//! | [`sim`] | simulators of CIC (ICWS, over HTTP or HTTPS) and Genesys Cloud, and a CIC traffic generator: product code |
//! | [`demo`] | `cic-conduit demo`: the CIC and Genesys Cloud simulators and the conduit between them, in one process |
//! | [`outbound`] | what every outbound call shares: no redirects, bounded body reads, error descriptions without URLs, where a password may go |
//! | [`retry`] | the backoff every retry loop shares |
//! | [`locks`] | the one mutex-poison policy: a poisoned lock is taken over |
//! | [`private_fs`] | customer data on disk is owner-only: 0700 directories, 0600 files |
//! | [`server`] | the HTTP listener: push source, the Integration Health page (`/`), `/health`, `/livez`, `/readyz`, `/metrics` |
//! | [`metrics`] | every Prometheus metric name, in one place |
//! | [`health`] | the integration-health document served at `/health` (and shown by the page) |
//! | [`history`] | the last hour of delivery, sampled from the metrics, for the page's charts |
//! | [`app`] | the composition root: start what the role runs from the settings, under the supervisor; stop it in order on a signal |
//! | [`cli`] | the `cic-conduit` command line |
//! | [`timefmt`] | ISO-8601 parsing and formatting without a calendar dependency |
//! | [`shutdown`] | the signal every long-running task selects on |
//! | [`switch`] | the Interaction Administrator switch (`enabled`), flipped at run time by a reload |
//! | [`supervisor`] | runs every long-running task; one that panics or stops on its own stops the process |
//! | `service` | Windows only: `cic-conduit service install / uninstall / run`, the Service Control Manager's stop as a graceful shutdown, the log to a file under `%ProgramData%` |
//! | [`telemetry`] | tracing set-up (human or JSON logs, to standard error or a rolled file) |

pub mod app;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod deadletter;
pub mod demo;
pub mod dispatch;
pub mod event;
pub mod health;
pub mod history;
pub mod locks;
pub mod metrics;
pub mod normalize;
pub mod outbound;
pub mod private_fs;
pub mod retry;
pub mod server;
#[cfg(windows)]
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod sink;
pub mod source;
pub mod supervisor;
pub mod switch;
pub mod telemetry;
pub mod timefmt;
pub mod users;

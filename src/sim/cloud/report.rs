//! What the simulator saw, as `GET /sim/report` shows it, and the accepted entities
//! `GET /sim/events` lists.

use serde::{Deserialize, Serialize};

/// What the simulator saw.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Token requests.
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused for bad credentials.
    pub auth_failures: u64,
    /// API requests (any path under `/api/`).
    pub api_requests: u64,
    /// API requests refused for a missing, unknown, expired or revoked token.
    pub unauthorized: u64,
    /// 429 answers sent.
    pub rate_limited: u64,
    /// Requests from a client that came before the `Retry-After` it was last given had passed.
    pub early_retries: u64,
    /// Valid external-event requests.
    pub event_requests: u64,
    /// Entities in valid requests.
    pub entities_received: u64,
    /// Entities accepted (stored).
    pub entities_accepted: u64,
    /// Distinct entity ids accepted.
    pub unique_ids: u64,
    /// Entities accepted with an id accepted before.
    pub duplicates: u64,
    /// Of those, the ones whose content (`dateCreated`, `identifiers`, `attributes`) differs from
    /// what arrived first under that id: one id meaning two things.
    pub conflicting_duplicates: u64,
    /// External-event requests refused as invalid (400, 404, 413, 415, 422).
    pub invalid_requests: u64,
    /// Entities returned in `unprocessedEntities` (the `reject_fraction` fault).
    pub entities_rejected: u64,
    /// Of those, the ones marked retryable.
    pub entities_rejected_retryable: u64,
    /// 5xx answers injected by the `error_fraction` fault.
    pub server_errors: u64,
    /// Answers refused because of an outage.
    pub outage_refusals: u64,
    /// SCIM users created.
    pub scim_users_created: u64,
    /// SCIM users changed by a PATCH.
    pub scim_users_patched: u64,
    /// Operations in those PATCHes.
    pub scim_patch_operations: u64,
    /// SCIM users deleted.
    pub scim_users_deleted: u64,
    /// SCIM list requests.
    pub scim_list_requests: u64,
    /// Of those, the ones that asked for more than a page allows (cut to it).
    pub scim_oversized_pages: u64,
    /// PATCHes refused for a stale `If-Match` (400 `invalidVers`).
    pub scim_stale_versions: u64,
    /// Writes refused because the `userName` belongs to another user (409 `uniqueness`).
    pub scim_conflicts: u64,
    /// Other SCIM requests refused as invalid.
    pub scim_invalid_requests: u64,
    /// Presence events taken.
    pub presence_events_accepted: u64,
    /// Presence events listed in an answer's `errors` (unknown user, source or definition; an
    /// `eventId` that is not a version-4 UUID).
    pub presence_events_refused: u64,
    /// Presence events taken whose `eventId` came before.
    pub presence_duplicates: u64,
    /// Presence event batches refused whole (400: the body breaks its model).
    pub presence_invalid_requests: u64,
}

/// One accepted entity, as `GET /sim/events` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// The entity id.
    pub id: String,
    /// Its `dateCreated`.
    pub date_created: String,
    /// `attributes.callIdKey`, when present.
    pub call_id_key: Option<String>,
    /// `attributes.eventType`, when present.
    pub event_type: Option<String>,
    /// A digest of its content (`dateCreated`, `identifiers`, `attributes`): equal contents have
    /// equal digests.
    pub content: String,
}

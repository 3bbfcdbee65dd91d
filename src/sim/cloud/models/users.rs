//! The SDK models of user and status sync: SCIM 2.0 users (`/api/v2/scim/v2/users`), presence
//! sources, presence definitions and user presence events (`BatchUserPresenceEventRequest`,
//! answered with a `BatchEventResponse`) — from the same `index.d.ts` as the
//! [parent](super)'s table (a field without `?` is required).

use super::{Field, Ty, opt, req};

/// The models of user and status sync: (model, fields).
pub const MODELS: &[(&str, &[Field])] = &[
    // POST /api/v2/scim/v2/users
    (
        "ScimV2CreateUser",
        &[
            opt("schemas", Ty::Strings),
            opt("active", Ty::Bool),
            req("userName", Ty::Str),
            req("displayName", Ty::Str),
            opt("password", Ty::Str),
            opt("title", Ty::Str),
            opt("phoneNumbers", Ty::ArrayOf("ScimPhoneNumber")),
            opt("emails", Ty::ArrayOf("ScimEmail")),
            opt("externalId", Ty::Str),
            opt("groups", Ty::ArrayOf("ScimV2GroupReference")),
            opt("roles", Ty::ArrayOf("ScimUserRole")),
            opt(ENTERPRISE, Ty::Model("ScimV2EnterpriseUser")),
            opt(GENESYS, Ty::Model("ScimUserExtensions")),
        ],
    ),
    // GET, POST, PATCH answers
    (
        "ScimV2User",
        &[
            opt("id", Ty::Str),
            opt("schemas", Ty::Strings),
            opt("active", Ty::Bool),
            opt("userName", Ty::Str),
            opt("displayName", Ty::Str),
            opt("password", Ty::Str),
            opt("title", Ty::Str),
            opt("phoneNumbers", Ty::ArrayOf("ScimPhoneNumber")),
            opt("emails", Ty::ArrayOf("ScimEmail")),
            opt("externalId", Ty::Str),
            opt("groups", Ty::ArrayOf("ScimV2GroupReference")),
            opt("roles", Ty::ArrayOf("ScimUserRole")),
            opt(ENTERPRISE, Ty::Model("ScimV2EnterpriseUser")),
            opt(GENESYS, Ty::Model("ScimUserExtensions")),
            opt("meta", Ty::Model("ScimMetadata")),
        ],
    ),
    (
        "ScimPhoneNumber",
        &[opt("value", Ty::Str), opt("type", Ty::Str), opt("primary", Ty::Bool)],
    ),
    (
        "ScimEmail",
        &[opt("value", Ty::Str), opt("type", Ty::Str), opt("primary", Ty::Bool)],
    ),
    (
        "ScimMetadata",
        &[
            opt("resourceType", Ty::Str),
            opt("lastModified", Ty::DateTime),
            opt("location", Ty::Str),
            opt("version", Ty::Str),
        ],
    ),
    (
        "ScimV2GroupReference",
        &[opt("type", Ty::Str), opt("value", Ty::Str), opt("$ref", Ty::Str)],
    ),
    ("ScimUserRole", &[opt("value", Ty::Str)]),
    (
        "ScimV2EnterpriseUser",
        &[
            opt("division", Ty::Str),
            opt("department", Ty::Str),
            opt("manager", Ty::Model("Manager")),
            opt("employeeNumber", Ty::Str),
            opt("dateHire", Ty::Str),
        ],
    ),
    ("Manager", &[opt("value", Ty::Str), opt("$ref", Ty::Str)]),
    (
        "ScimUserExtensions",
        &[
            opt("routingSkills", Ty::ArrayOf("ScimUserRoutingSkill")),
            opt("routingLanguages", Ty::ArrayOf("ScimUserRoutingLanguage")),
            opt("externalIds", Ty::ArrayOf("ScimGenesysUserExternalId")),
        ],
    ),
    (
        "ScimUserRoutingSkill",
        &[req("name", Ty::Str), opt("proficiency", Ty::Num)],
    ),
    (
        "ScimUserRoutingLanguage",
        &[req("name", Ty::Str), opt("proficiency", Ty::Num)],
    ),
    (
        "ScimGenesysUserExternalId",
        &[req("authority", Ty::Str), req("value", Ty::Str)],
    ),
    // PATCH /api/v2/scim/v2/users/{id}
    (
        "ScimV2PatchRequest",
        &[
            req("schemas", Ty::Strings),
            opt("Operations", Ty::ArrayOf("ScimV2PatchOperation")),
        ],
    ),
    (
        "ScimV2PatchOperation",
        &[req("op", Ty::Str), opt("path", Ty::Str), opt("value", Ty::Any)],
    ),
    // GET /api/v2/scim/v2/users
    (
        "ScimUserListResponse",
        &[
            opt("schemas", Ty::Strings),
            opt("totalResults", Ty::Int),
            opt("startIndex", Ty::Int),
            opt("itemsPerPage", Ty::Int),
            opt("Resources", Ty::ArrayOf("ScimV2User")),
        ],
    ),
    (
        "ScimError",
        &[
            opt("schemas", Ty::Strings),
            opt("status", Ty::Str),
            opt("scimType", Ty::Str),
            opt("detail", Ty::Str),
        ],
    ),
    // Presence sources: POST, GET /api/v2/presence/sources
    (
        "Source",
        &[
            opt("id", Ty::Str),
            req("name", Ty::Str),
            opt("description", Ty::Str),
            opt("type", Ty::Str),
            opt("deactivated", Ty::Bool),
            opt("selfUri", Ty::Str),
        ],
    ),
    (
        "SourceEntityListing",
        &[
            opt("total", Ty::Int),
            opt("entities", Ty::ArrayOf("Source")),
            opt("selfUri", Ty::Str),
        ],
    ),
    // GET /api/v2/presence/definitions
    (
        "OrganizationPresenceDefinition",
        &[
            opt("id", Ty::Str),
            opt("name", Ty::Str),
            opt("type", Ty::Str),
            req("languageLabels", Ty::Map),
            opt("systemPresence", Ty::Str),
            opt("divisionId", Ty::Str),
            opt("deactivated", Ty::Bool),
            opt("selfUri", Ty::Str),
        ],
    ),
    (
        "OrganizationPresenceDefinitionEntityListing",
        &[
            opt("total", Ty::Int),
            opt("entities", Ty::ArrayOf("OrganizationPresenceDefinition")),
            opt("selfUri", Ty::Str),
        ],
    ),
    // POST /api/v2/events/users/presence
    (
        "BatchUserPresenceEventRequest",
        &[opt("userPresenceEvents", Ty::ArrayOf("UserPresenceEvent"))],
    ),
    (
        "UserPresenceEvent",
        &[
            req("eventId", Ty::Str),
            req("eventDateTime", Ty::DateTime),
            req("userId", Ty::Str),
            req("sourceId", Ty::Str),
            opt("presenceDefinitionId", Ty::Str),
            opt("message", Ty::Str),
        ],
    ),
    ("BatchEventResponse", &[opt("errors", Ty::ArrayOf("EventError"))]),
    (
        "EventError",
        &[
            opt("eventId", Ty::Str),
            opt("message", Ty::Str),
            opt("retryable", Ty::Bool),
        ],
    ),
];

/// The enterprise extension's key.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The Genesys extension's key.
pub const GENESYS: &str = "urn:ietf:params:scim:schemas:extension:genesys:purecloud:2.0:User";

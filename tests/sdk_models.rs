//! Every request body the conduit can send to Genesys Cloud, built by the conduit's own code,
//! conforms to its model in the official SDK (the simulator's table, `src/sim/cloud/models.rs`).

use cic_conduit::event::{EventType, InteractionEvent};
use cic_conduit::sim::cloud::models::{self, SDK};
use cic_conduit::sink::journey::Mapper;
use cic_conduit::sink::setup::{configuration_request, schema_update_request};
use serde_json::{Value, json};

fn assert_conforms(model: &str, body: &Value) {
    let faults = models::check(model, body, "");
    assert!(faults.is_empty(), "{model} ({SDK}): {faults:#?}\n{body:#}");
}

#[test]
fn journey_events_of_every_type_and_shape() {
    let mapper = Mapper::new(&["AccountTier".to_string()], "source-1");
    let mut entities = Vec::new();
    for ty in EventType::ALL {
        let mut ev = InteractionEvent::example();
        ev.event_type = ty;
        entities.push(serde_json::to_value(mapper.entity(&ev)).unwrap());
        // The sparsest event: every optional field null, the caller id withheld.
        let mut bare = InteractionEvent::example();
        bare.event_type = ty;
        bare.interaction.media_type = None;
        bare.interaction.direction = None;
        bare.interaction.state = None;
        bare.interaction.workgroup = None;
        bare.interaction.agent = None;
        bare.interaction.remote_address = None;
        bare.interaction.initiated_at = None;
        bare.customer = Default::default();
        bare.customer.caller_id_withheld = true;
        bare.attributes.clear();
        entities.push(serde_json::to_value(mapper.entity(&bare)).unwrap());
    }
    assert_conforms("ExternalEventsRequest", &json!({ "entities": entities }));
}

#[test]
fn setup_bodies() {
    let mapper = Mapper::new(&["AccountTier".to_string()], "source-1");
    let schema = mapper.json_schema(cic_conduit::sink::setup::SCHEMA_TITLE);
    assert_conforms("JourneyJsonSchemaRequest", &schema);
    assert_conforms(
        "CreateExternalEventsConfigurationRequest",
        &configuration_request("cic-conduit interaction events", "div-1", "schema-1", "cic"),
    );
    // An existing schema as the API lists it (`JourneyExternalEventsSchema`).
    let existing = json!({"id": "schema-1", "version": 3, "enabled": true,
        "jsonSchema": {"$schema": "http://json-schema.org/draft-04/schema#", "title": "t", "properties": {}}});
    assert_conforms("JourneyExternalEventsSchema", &existing);
    assert_conforms("JourneySchemaUpdateRequest", &schema_update_request(&existing, &schema));
}

#[test]
fn the_table_catches_what_the_models_forbid() {
    // Without this, the tests above would pass on an empty table.
    let c = configuration_request("n", "d", "s", "cic");
    let mut no_division = c.clone();
    no_division.as_object_mut().unwrap().remove("divisionId");
    assert!(!models::check("CreateExternalEventsConfigurationRequest", &no_division, "").is_empty());
    let mut schema = Mapper::new(&[], "x").json_schema("t");
    schema.as_object_mut().unwrap().remove("$schema");
    assert!(!models::check("JourneyJsonSchemaRequest", &schema, "").is_empty());
}

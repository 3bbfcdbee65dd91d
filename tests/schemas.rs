//! Every schema in `schemas/` parses, and the evolution rules hold between each schema version
//! and the current writer schema, in both directions.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

fn schemas() -> Vec<(String, Schema)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    let mut out: Vec<(String, Schema)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avsc"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let schema = Schema::parse_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), schema)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_schema_parses_and_the_bundled_one_is_among_them() {
    let all = schemas();
    assert!(!all.is_empty());
    let current = &*cic_conduit::event::codec::SCHEMA;
    assert!(
        all.iter().any(|(_, s)| s == current),
        "the writer schema must be a file in schemas/"
    );
}

#[test]
fn every_version_reads_the_current_writer_and_back() {
    let current = &*cic_conduit::event::codec::SCHEMA;
    for (name, old) in schemas().iter().filter(|(n, _)| n.starts_with("interaction_event.")) {
        SchemaCompatibility::can_read(current, old)
            .unwrap_or_else(|e| panic!("{name} cannot read the current writer: {e}"));
        SchemaCompatibility::can_read(old, current)
            .unwrap_or_else(|e| panic!("the current reader cannot read {name}: {e}"));
    }
}

#[test]
fn data_written_now_resolves_under_each_version() {
    use apache_avro::reader::datum::GenericDatumReader;
    let codec = cic_conduit::event::EventCodec::new();
    let mut ev = cic_conduit::event::InteractionEvent::example();
    ev.interaction.media_type = None;
    ev.customer = Default::default();
    let bytes = codec.encode(&ev).unwrap();
    let current = &*cic_conduit::event::codec::SCHEMA;
    for (name, old) in schemas() {
        let reader = GenericDatumReader::builder(current)
            .reader_schema(&old)
            .build()
            .unwrap();
        let value = reader
            .read_value(&mut &bytes[10..])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let back: cic_conduit::event::InteractionEvent = apache_avro::from_value(&value).unwrap();
        assert_eq!(back, ev, "{name}");
    }
}

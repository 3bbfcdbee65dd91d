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
    let bytes = codec.encode(&ev);
    let current = &*cic_conduit::event::codec::SCHEMA;
    for (name, old) in schemas()
        .into_iter()
        .filter(|(n, _)| n.starts_with("interaction_event."))
    {
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

/// The fixture: schema file name → fingerprint hex, as an independent implementation computed it.
fn fingerprint_fixture() -> Vec<(String, String)> {
    let text = include_str!("fixtures/schema_fingerprints.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, fp) = l.split_once(' ').unwrap();
            (name.to_string(), fp.trim().to_string())
        })
        .collect()
}

#[test]
fn every_schema_has_the_specifications_fingerprint() {
    use cic_conduit::event::fingerprint::{fingerprint, hex};
    let fixture = fingerprint_fixture();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    let (names, _): (Vec<String>, Vec<Schema>) = schemas().into_iter().unzip();
    assert_eq!(
        names,
        fixture.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "every schema in schemas/ needs its fixture line"
    );
    for (name, expected) in &fixture {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        assert_eq!(&hex(&fingerprint(&text).unwrap()), expected, "{name}");
    }
    // And the buffer's records carry it.
    let codec = cic_conduit::event::EventCodec::new();
    let bytes = codec.encode(&cic_conduit::event::InteractionEvent::example());
    let current = fixture.iter().find(|(n, _)| n == "interaction_event.v2.avsc").unwrap();
    assert_eq!(hex(&bytes[2..10].try_into().unwrap()), current.1);
    assert_eq!(
        cic_conduit::event::codec::SCHEMA_TEXT,
        std::fs::read_to_string(format!("{dir}/interaction_event.v2.avsc")).unwrap()
    );
}

#[test]
fn dead_letter_files_carry_exactly_the_published_schema() {
    use cic_conduit::deadletter::{DeadLetter, DeadLetters};
    let dir = tempfile::tempdir().unwrap();
    let dl: DeadLetters = DeadLetters::open(dir.path()).unwrap();
    let codec = cic_conduit::event::EventCodec::new();
    let ev = cic_conduit::event::InteractionEvent::example();
    dl.write(&[DeadLetter {
        seq: 7,
        partition: 0,
        sink: "journey".into(),
        reason: "invalid".into(),
        status: Some(400),
        correlation_id: Some("c-1".into()),
        message: "bad attribute".into(),
        at_ms: 1_712_671_391_000,
        payload: codec.encode(&ev).into(),
        event: Some(ev.clone()),
    }])
    .unwrap();
    let file = std::fs::read_dir(dl.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "avro"))
        .unwrap();
    let reader = apache_avro::Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let published =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/dead_letter.v2.avsc")).unwrap();
    let published = Schema::parse_str(&published).unwrap();
    assert_eq!(
        reader.writer_schema(),
        &published,
        "the file's schema is the published one"
    );
    // Its event branch is the current interaction event schema.
    let Schema::Record(rec) = &published else {
        panic!("a record")
    };
    let event = rec.fields.iter().find(|f| f.name == "event").unwrap();
    let Schema::Union(u) = &event.schema else {
        panic!("a union")
    };
    assert_eq!(&u.variants()[1], &*cic_conduit::event::codec::SCHEMA);
    assert_eq!(reader.count(), 1);
}

#[test]
fn a_reader_of_version_1_reads_the_new_event_types_by_its_default() {
    use apache_avro::reader::datum::GenericDatumReader;
    use cic_conduit::event::EventType;
    let v1 = schemas()
        .into_iter()
        .find(|(n, _)| n == "interaction_event.v1.avsc")
        .unwrap()
        .1;
    let codec = cic_conduit::event::EventCodec::new();
    for ty in [EventType::Alerting, EventType::Dialing, EventType::StateChanged] {
        let mut ev = cic_conduit::event::InteractionEvent::example();
        ev.event_type = ty;
        let bytes = codec.encode(&ev);
        let reader = GenericDatumReader::builder(&cic_conduit::event::codec::SCHEMA)
            .reader_schema(&v1)
            .build()
            .unwrap();
        let value = reader.read_value(&mut &bytes[10..]).unwrap();
        let back: cic_conduit::event::InteractionEvent = apache_avro::from_value(&value).unwrap();
        assert_eq!(back.event_type, EventType::Queued, "{ty:?}");
        assert_eq!(back.event_id, ev.event_id);
    }
}

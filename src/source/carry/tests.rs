use std::borrow::Cow;
use std::collections::BTreeMap;

use super::*;
use crate::buffer::{Buffer, DiskBuffer};
use crate::config::{BufferConfig, NormalizeConfig};
use crate::event::InteractionEvent;
use crate::metrics::Metrics;
use crate::normalize::{Normalizer, Observation};

fn buffer_cfg(dir: &Path) -> BufferConfig {
    BufferConfig {
        segment_max_bytes: 1024,
        ..BufferConfig::with_dir(dir)
    }
}

fn ingest(buffer: Arc<dyn Buffer>) -> Ingest {
    let n = NormalizeConfig {
        custom_attributes: vec!["Tier".into()],
        ..NormalizeConfig::default()
    };
    Ingest::new(Normalizer::new("cic01", &n, Metrics::new().normalize), buffer)
}

fn obs(id: &str, at: i64, attrs: &[(&str, &str)]) -> Observation<'static> {
    let mut attributes: Vec<(Cow<'static, str>, Cow<'static, str>)> =
        vec![("Eic_CallIdKey".into(), format!("{id}20240409").into())];
    attributes.extend(attrs.iter().map(|(k, v)| (k.to_string().into(), v.to_string().into())));
    Observation {
        interaction_id: id.to_string().into(),
        attributes,
        observed_at_ms: Some(at),
        left: false,
        found: false,
    }
}

/// Three interactions' lives, one change per step, with times.
fn lives() -> Vec<Observation<'static>> {
    let mut out = Vec::new();
    let steps: [&[(&str, &str)]; 7] = [
        &[
            ("Eic_State", "O"),
            ("Eic_WorkgroupName", "Support"),
            ("Eic_RemoteName", "Pat"),
        ],
        &[("Eic_State", "A"), ("Eic_UserName", "jdoe")],
        &[("Eic_State", "C"), ("Tier", "gold")],
        &[("Eic_State", "H")],
        &[("Eic_State", "C"), ("Eic_RemoteName", "Pat Smith")],
        &[("Eic_WorkgroupName", "Sales"), ("Eic_UserName", "asmith")],
        &[("Eic_State", "E")],
    ];
    for (i, step) in steps.iter().enumerate() {
        for id in ["1", "2", "3"] {
            out.push(obs(id, 1_700_000_000_000 + i as i64 * 1000, step));
        }
    }
    out
}

/// Everything the observations yield, one at a time.
async fn feed(
    ing: &Ingest,
    obs: &[Observation<'_>],
    codec: &crate::event::EventCodec,
    all: &mut Vec<InteractionEvent>,
) {
    let before = ing.buffer().write_position();
    for o in obs {
        ing.ingest(std::slice::from_ref(o)).await.unwrap();
    }
    ing.buffer()
        .replay_from(before, &mut |r| all.push(codec.decode(&r.payload).unwrap()))
        .unwrap();
}

/// The current attributes of every interaction, as an ICWS snapshot after a gap gives them.
fn snapshot(obs: &[Observation<'_>], at: i64) -> Vec<Observation<'static>> {
    let mut merged: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for o in obs {
        merged
            .entry(o.interaction_id.to_string())
            .or_default()
            .extend(o.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    merged
        .into_iter()
        .map(|(id, a)| Observation {
            interaction_id: id.into(),
            attributes: a.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            observed_at_ms: Some(at),
            left: false,
            found: true,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_leaves_the_state_exactly_as_it_was() {
    let codec = crate::event::EventCodec::new();
    let all = lives();
    // The reference never stops.
    let refdir = tempfile::tempdir().unwrap();
    let reference = ingest(Arc::new(
        DiskBuffer::open(&buffer_cfg(refdir.path()), Metrics::new().buffer).unwrap(),
    ));
    let mut expected = Vec::new();
    feed(&reference, &all, &codec, &mut expected).await;

    for saved_at in [0, 4, 10] {
        for crashed_at in [saved_at, saved_at + 3, 14, all.len() - 1] {
            let dir = tempfile::tempdir().unwrap();
            let mut got = Vec::new();
            {
                let disk = Arc::new(DiskBuffer::open(&buffer_cfg(dir.path()), Metrics::new().buffer).unwrap());
                let b: Arc<dyn Buffer> = disk.clone();
                let ing = Arc::new(ingest(b.clone()));
                let carrier = Carrier::new(dir.path(), "cic01", ing.clone(), None);
                feed(&ing, &all[..saved_at], &codec, &mut got).await;
                assert!(carrier.save().await);
                feed(&ing, &all[saved_at..crashed_at], &codec, &mut got).await;
                // Everything was delivered: acknowledged records may go, but not those after
                // the saved position. Then the process dies without saving again.
                disk.ack_seqs(0..disk.stats().next_seq);
                b.close().await.unwrap();
            }
            let carried = load(dir.path(), "cic01").expect("saved");
            let b: Arc<dyn Buffer> = Arc::new(
                DiskBuffer::open_retaining(&buffer_cfg(dir.path()), Metrics::new().buffer, carried.position()).unwrap(),
            );
            let ing = ingest(b);
            let restored = restore(carried, &ing, None, false);
            assert_eq!(restored.missing, 0);
            // The snapshot after the restart is nothing new...
            let mut again = Vec::new();
            feed(
                &ing,
                &snapshot(&all[..crashed_at], 1_800_000_000_000),
                &codec,
                &mut again,
            )
            .await;
            assert!(again.is_empty(), "saved {saved_at}, crashed {crashed_at}: {again:?}");
            // ...and what follows is exactly what the process that never stopped made of it.
            feed(&ing, &all[crashed_at..], &codec, &mut got).await;
            assert_eq!(got, expected, "saved {saved_at}, crashed {crashed_at}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_damaged_foreign_or_legacy_file_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path(), "cic01").is_none(), "none yet");
    std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
    assert!(load(dir.path(), "cic01").is_none(), "damaged");
    std::fs::remove_file(dir.path().join(FILE)).unwrap();

    // The previous version's ICWS file: its interactions are the watched-queue view.
    let b: Arc<dyn Buffer> =
        Arc::new(DiskBuffer::open(&buffer_cfg(&dir.path().join("b")), Metrics::new().buffer).unwrap());
    let ing = Arc::new(ingest(b));
    ing.ingest(&[obs("7", 1, &[("Eic_State", "C")])]).await.unwrap();
    let state = ing.snapshot(SNAPSHOT_WAIT).await.unwrap().interactions;
    let legacy = serde_json::json!({"version": 1, "cic_server": "cic01", "interactions": state});
    std::fs::write(dir.path().join(LEGACY_FILE), legacy.to_string()).unwrap();
    assert!(load(dir.path(), "cic02").is_none(), "another server's");
    let carried = load(dir.path(), "cic01").expect("legacy file read");
    assert_eq!(carried.position(), None);
    let b2: Arc<dyn Buffer> =
        Arc::new(DiskBuffer::open(&buffer_cfg(&dir.path().join("c")), Metrics::new().buffer).unwrap());
    let fresh = Arc::new(ingest(b2));
    let members = Members::default();
    let restored = restore(carried, &fresh, Some(&members), false);
    assert_eq!((restored.interactions, restored.replayed), (1, 0));
    assert_eq!(members.ids(), vec!["7".to_string()]);
    assert_eq!(
        fresh
            .ingest(&[obs("7", 2, &[("Eic_State", "C")])])
            .await
            .unwrap()
            .events,
        0
    );

    // Saving writes the new file and retires the legacy one.
    let carrier = Carrier::new(dir.path(), "cic01", fresh, Some(Arc::new(members)));
    assert!(carrier.save().await);
    assert!(!dir.path().join(LEGACY_FILE).exists());
    let again = load(dir.path(), "cic01").unwrap();
    assert_eq!(again.position(), Some(crate::buffer::Position::seq(0)));
    assert_eq!(again.icws_members, vec!["7".to_string()]);
}

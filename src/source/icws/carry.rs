//! What the ICWS source carries over a restart of the conduit: the interactions that were in the
//! watched queues and had not ended, with the normalizer's state for each.
//!
//! A restart is a gap like a lost session, only longer: a call that ended and was cleared from
//! its queue meanwhile is missing from the first snapshot, and only this state lets the source
//! still end it (with the id a seen end would have had; see [`super::members`]). The file
//! (`<data_dir>/icws-state.json`) is written when a session ends, at shutdown, and every
//! [`super::SWITCHOVER_REFRESH`] while a session lasts — atomically (temporary file, sync,
//! rename) — and read once at start. After a crash it can be that old: an interaction that
//! ended since then ends again, with the same id, which is harmless. A missing, damaged or
//! foreign file (another `cic_server`) is set aside with a warning; it never stops the conduit.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::members::Members;
use crate::normalize::table::Tracked;
use crate::source::Ingest;

/// The file's format version.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Carried {
    version: u32,
    cic_server: String,
    interactions: Vec<(String, Tracked)>,
}

/// Collects what to carry (cheap: under the two locks, no I/O).
pub fn collect(cic_server: &str, members: &Members, ingest: &Ingest) -> Vec<u8> {
    let carried = Carried {
        version: VERSION,
        cic_server: cic_server.to_string(),
        interactions: ingest.export_tracked(&members.ids()),
    };
    serde_json::to_vec(&carried).unwrap_or_default()
}

/// Writes collected state to `path` atomically. Each write has a temporary file of its own, so
/// a save still finishing in the background never mixes with the next one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{n}.tmp"));
    let mut f = crate::private_fs::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        crate::buffer::segment::sync_dir(dir)?;
    }
    Ok(())
}

/// Reads `path` back into `members` and the normalizer; how many interactions it restored.
pub fn restore(path: &Path, cic_server: &str, members: &Members, ingest: &Ingest) -> usize {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the ICWS state; starting without it");
            return 0;
        }
    };
    let carried: Carried = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the ICWS state is damaged; starting without it");
            return 0;
        }
    };
    if carried.version != VERSION || carried.cic_server != cic_server {
        tracing::warn!(
            file = %path.display(), cic_server = %carried.cic_server, version = carried.version,
            "the ICWS state is for another server or version; starting without it"
        );
        return 0;
    }
    let n = carried.interactions.len();
    members.restore(carried.interactions.iter().map(|(id, _)| id.clone()));
    ingest.import_tracked(carried.interactions);
    n
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::buffer::DiskBuffer;
    use crate::config::{BufferConfig, NormalizeConfig};
    use crate::metrics::Metrics;
    use crate::normalize::{Normalizer, Observation};

    fn ingest(dir: &Path) -> Ingest {
        let m = Metrics::new();
        let buffer = DiskBuffer::open(&BufferConfig::with_dir(dir), m.buffer.clone()).unwrap();
        Ingest::new(
            Normalizer::new("cic01", &NormalizeConfig::default(), m.normalize),
            Arc::new(buffer),
        )
    }

    fn call(id: &str, state: &str) -> Observation {
        Observation {
            interaction_id: id.into(),
            attributes: vec![("Eic_State".into(), state.into())],
            ..Observation::default()
        }
    }

    #[test]
    fn live_interactions_come_back_and_anything_odd_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (before, members) = (ingest(&dir.path().join("a")), Members::default());
        rt.block_on(before.ingest(&[call("1", "C"), call("2", "C"), call("3", "E")]))
            .unwrap();
        members.restore(["1".to_string(), "3".to_string()]);
        let path = dir.path().join("icws-state.json");
        write(&path, &collect("cic01", &members, &before)).unwrap();

        let (after, members) = (ingest(&dir.path().join("b")), Members::default());
        assert_eq!(
            restore(&path, "cic01", &members, &after),
            1,
            "only 1: 2 was not in the queues, 3 ended"
        );
        assert_eq!((members.ids(), after.tracked()), (vec!["1".to_string()], 1));
        // It carries on: the same state again is nothing new.
        let stored = rt.block_on(after.ingest(&[call("1", "C")])).unwrap();
        assert_eq!(stored.events, 0);

        for (text, server) in [
            (&b"{not json"[..], "cic01"),
            (&std::fs::read(&path).unwrap()[..], "cic02"),
        ] {
            std::fs::write(&path, text).unwrap();
            let (fresh, members) = (ingest(&dir.path().join(server)), Members::default());
            assert_eq!(restore(&path, server, &members, &fresh), 0);
            assert!(members.is_empty());
        }
        assert_eq!(
            restore(&dir.path().join("missing.json"), "cic01", &Members::default(), &before),
            0
        );
    }
}

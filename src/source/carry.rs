//! What the sources carry over a restart of the conduit: the normalizer's state (every tracked
//! interaction, with how many events of each type it has had), each CIC user's last stored status
//! and the ICWS source's view of the watched queues, saved together with the buffer position that state is exact for.
//!
//! Promise: after a stop at any moment — a SIGKILL included — no event id is ever reused for
//! different content, and the first observations after the restart yield only what truly changed.
//! The file (`<data_dir>/source-state.json`) is saved every [`SAVE_EVERY`] (every second while the
//! buffer is more than half full), right after start and at shutdown, atomically (temporary file, sync, rename, directory sync). It can be up to
//! [`SAVE_EVERY`] old after a crash; what happened since is in the buffer, which is the source of
//! truth: each save tells the buffer to keep its records from the saved position on
//! ([`crate::buffer::Buffer::retain_from`]), and at start the records written since are replayed
//! into the normalizer ([`crate::normalize::Normalizer::replay`]), leaving its state as it was
//! when the process stopped. The snapshot is taken between batches ([`Ingest::snapshot`]), so
//! the position is exact: every record before it is in the saved state, none after.
//!
//! An interaction first seen after the last save and still live is taken back into the ICWS
//! source's queue view too when ICWS is the only source (with the push source on as well, a
//! replayed interaction cannot be told to be CIC's queue's or a sender's, and is left out: if it
//! was the queue's and left it while the conduit was down, it ends by the idle timeout instead of
//! with an `ENDED`). A missing, damaged or foreign file (another `cic_server`) is set aside with
//! a warning; it never stops the conduit. The file of earlier versions (`icws-state.json`, no
//! position) is read once and taken back without a replay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Ingest;
use super::icws::members::Members;
use crate::buffer::Position;
use crate::normalize::table::Tracked;
use crate::shutdown::Shutdown;

/// The file, under the data dir.
pub const FILE: &str = "source-state.json";
/// The file earlier versions wrote (ICWS interactions only, no buffer position).
pub const LEGACY_FILE: &str = "icws-state.json";
/// How often the state is saved while the conduit runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);
/// While the buffer is more than half full, how often the state is saved instead: the records
/// kept for it then count (see [`crate::buffer::Buffer::retain_from`]), so it moves on sooner.
pub const SAVE_EVERY_UNDER_PRESSURE: Duration = Duration::from_secs(1);
/// How long a save waits for the batches in flight (an append waiting for room included, up to
/// `buffer.block_timeout_ms`) before it gives up until the next turn.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);
/// Records decoded and replayed at a time.
const REPLAY_CHUNK: usize = 4096;

/// The file's format version (1: `icws-state.json`, no position; 2: the position a sequence
/// number of the disk log, read as such).
const VERSION: u32 = 3;

/// A saved buffer position, as each version wrote it.
#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Saved {
    /// Version 2: a sequence number of the disk log.
    Seq(u64),
    /// Version 3 on.
    At(Position),
}

/// The file's contents.
#[derive(Serialize, Deserialize)]
pub struct Carried {
    version: u32,
    cic_server: String,
    /// The buffer position the state is exact for (none in version 1).
    #[serde(default)]
    position: Option<Saved>,
    interactions: Vec<(String, Tracked)>,
    /// The ICWS source's watched-queue view (version 1: the interactions themselves).
    #[serde(default)]
    icws_members: Vec<String>,
    /// The users' last stored statuses (none before user sync).
    #[serde(default)]
    statuses: Vec<super::LastStatus>,
}

impl Carried {
    /// The buffer position it is exact for, if it has one.
    pub fn position(&self) -> Option<Position> {
        self.position.map(|p| match p {
            Saved::Seq(seq) => Position::seq(seq),
            Saved::At(p) => p,
        })
    }
}

/// Reads the carried state under `data_dir` for `cic_server`, if there is a usable one.
pub fn load(data_dir: &Path, cic_server: &str) -> Option<Carried> {
    let (path, legacy) = [(data_dir.join(FILE), false), (data_dir.join(LEGACY_FILE), true)]
        .into_iter()
        .find(|(p, _)| p.exists())?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the carried source state; starting without it");
            return None;
        }
    };
    let mut carried: Carried = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the carried source state is damaged; starting without it");
            return None;
        }
    };
    let version_ok = if legacy {
        carried.version == 1
    } else {
        carried.version == VERSION || carried.version == 2
    };
    if !version_ok || carried.cic_server != cic_server {
        tracing::warn!(
            file = %path.display(), cic_server = %carried.cic_server, version = carried.version,
            "the carried source state is for another server or version; starting without it"
        );
        return None;
    }
    if legacy {
        carried.icws_members = carried.interactions.iter().map(|(id, _)| id.clone()).collect();
        carried.position = None;
    }
    Some(carried)
}

/// What [`restore`] took back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Interactions in the saved state.
    pub interactions: usize,
    /// Buffer records replayed on top of it.
    pub replayed: usize,
    /// Records that should have been replayed but were no longer in the buffer.
    pub missing: u64,
}

/// Takes `carried` back into the normalizer, replays the buffer's records written after it was
/// saved, and restores the ICWS queue view into `members` (see the module notes for
/// `members_from_replay`). Call once, before any source runs.
pub fn restore(carried: Carried, ingest: &Ingest, members: Option<&Members>, members_from_replay: bool) -> Restored {
    let mut done = Restored {
        interactions: carried.interactions.len(),
        ..Restored::default()
    };
    let position = carried.position();
    ingest.import_tracked(carried.interactions);
    ingest.import_statuses(carried.statuses);
    let mut live: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
    if let Some(position) = position {
        let mut chunk = Vec::with_capacity(REPLAY_CHUNK.min(1024));
        let mut undecodable = 0u64;
        let mut replay = |chunk: &mut Vec<crate::event::InteractionEvent>| {
            ingest.replay(chunk);
            for ev in chunk.drain(..) {
                let ended = ev.event_type == crate::event::EventType::Ended;
                live.insert(ev.interaction.call_id, !ended);
            }
        };
        let replayed = ingest.buffer().replay_from(position, &mut |record| {
            if record.kind == crate::buffer::Kind::UserStatus {
                if let Some(c) = crate::users::change::StatusChange::decode(&record.payload) {
                    ingest.import_statuses([(c.user_id, c.status_id, c.changed)]);
                }
                return;
            }
            if record.kind != crate::buffer::Kind::Interaction {
                return;
            }
            match ingest.codec().decode(&record.payload) {
                Ok(ev) => {
                    chunk.push(ev);
                    done.replayed += 1;
                }
                Err(_) => undecodable += 1,
            }
            if chunk.len() >= REPLAY_CHUNK {
                replay(&mut chunk);
            }
        });
        replay(&mut chunk);
        match replayed {
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the buffer to bring the carried source state up to date");
            }
            Ok(r) if r.foreign => tracing::warn!(
                %position,
                "the carried source state is from another buffer; taken back as it was saved"
            ),
            Ok(r) => done.missing = r.missing,
        }
        if done.missing > 0 {
            tracing::warn!(
                records = done.missing,
                %position,
                "records written after the carried source state was saved are no longer in the buffer: events of the interactions they touched may be repeated"
            );
        }
        if undecodable > 0 {
            tracing::warn!(
                records = undecodable,
                "buffer records that do not decode were left out of the replay"
            );
        }
    }
    if let Some(m) = members {
        m.restore(carried.icws_members);
        if members_from_replay {
            m.restore(live.into_iter().filter(|(_, live)| *live).map(|(id, _)| id));
        }
    }
    done
}

/// Saves the state every [`SAVE_EVERY`] and on demand.
pub struct Carrier {
    /// Where (`<data_dir>/source-state.json`).
    path: PathBuf,
    /// This CIC server's name (the state is only for it).
    cic_server: String,
    /// The shared ingest whose normalizer is saved.
    ingest: Arc<Ingest>,
    /// The ICWS source's queue view, when that source runs.
    members: Option<Arc<Members>>,
}

impl Carrier {
    /// Saves the state of `ingest` (and of the ICWS source's queue view, when it runs) for
    /// `cic_server` under `data_dir`.
    pub fn new(data_dir: &Path, cic_server: &str, ingest: Arc<Ingest>, members: Option<Arc<Members>>) -> Self {
        Carrier {
            path: data_dir.join(FILE),
            cic_server: cic_server.to_string(),
            ingest,
            members,
        }
    }

    /// Saves now; false if it could not (logged; the previous file and its position stand).
    pub async fn save(&self) -> bool {
        let Some(super::Snapshot {
            position,
            interactions,
            statuses,
        }) = self.ingest.snapshot(SNAPSHOT_WAIT).await
        else {
            tracing::warn!("the sources were too busy to save their state; trying again later");
            return false;
        };
        let carried = Carried {
            version: VERSION,
            cic_server: self.cic_server.clone(),
            position: Some(Saved::At(position)),
            interactions,
            icws_members: self.members.as_ref().map(|m| m.ids()).unwrap_or_default(),
            statuses,
        };
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&carried).map_err(std::io::Error::other)?;
            write(&path, &bytes)?;
            // The legacy file is superseded once the new one is safely written.
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_file(dir.join(LEGACY_FILE));
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.ingest.buffer().retain_from(position);
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, file = %self.path.display(), "cannot save the source state; the previous one stands");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "the source state save did not finish");
                false
            }
        }
    }

    /// Saves now and every [`SAVE_EVERY`] (every [`SAVE_EVERY_UNDER_PRESSURE`] while the buffer
    /// is more than half full) until shutdown; the caller saves once more after the sources
    /// stopped.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            self.save().await;
            let due = tokio::time::Instant::now() + SAVE_EVERY;
            loop {
                if !shutdown.sleep(SAVE_EVERY_UNDER_PRESSURE).await {
                    return;
                }
                let st = self.ingest.buffer().stats();
                if tokio::time::Instant::now() >= due || st.bytes > st.max_bytes / 2 {
                    break;
                }
            }
        }
    }
}

/// Writes `bytes` to `path` atomically. Each write has a temporary file of its own, so a save
/// still finishing in the background never mixes with the next one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::private_fs::replace_file(path, &path.with_extension(format!("json.{n}.tmp")), bytes)
}

#[cfg(test)]
mod tests;

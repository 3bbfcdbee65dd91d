//! Putting the log back after a failed group (see the [writer](super)'s notes): to the mark
//! taken before the group, at once, and again with backoff while that fails too, until
//! [`GIVE_UP_AFTER`].

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Writer;
use crate::buffer::segment::{self, sync_dir};

/// How long putting the log back to its last good state may keep failing before the buffer
/// gives up and asks for a restart.
#[cfg(not(test))]
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Short in tests, which check that giving up happens.
#[cfg(test)]
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(500);

/// Longest pause between two attempts to put the log back.
const REPAIR_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where the log ended before a group: what a failed group is undone to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    /// The active segment's first sequence number.
    pub(super) seg_first_seq: u64,
    /// Its length.
    pub(super) seg_len: u64,
    /// The next sequence number.
    pub(super) next_seq: u64,
}

/// A log that could not yet be put back after a failed group.
pub(super) struct Broken {
    pub(super) mark: Mark,
    pub(super) since: Instant,
    pub(super) next_try: Instant,
    pub(super) backoff: Duration,
}

impl Writer {
    /// Tries again to put the log back to the mark of the group that failed, if one did and its
    /// backoff has passed; gives up for good after [`GIVE_UP_AFTER`].
    pub(super) fn repair(&mut self) {
        let Some(b) = self.broken.as_mut() else { return };
        let now = Instant::now();
        if now < b.next_try {
            return;
        }
        let mark = b.mark;
        match self.undo(mark) {
            Ok(()) => {
                tracing::warn!("buffer recovered from the disk error; accepting appends again");
                self.broken = None;
                self.shared.failed.store(false, Ordering::SeqCst);
            }
            Err(e) => {
                let b = self.broken.as_mut().expect("still broken");
                b.backoff = (b.backoff * 2).min(REPAIR_BACKOFF_MAX);
                b.next_try = now + b.backoff;
                if b.since.elapsed() >= GIVE_UP_AFTER {
                    let why = format!(
                        "the buffer could not recover from a disk error for {} s: {e}",
                        GIVE_UP_AFTER.as_secs()
                    );
                    tracing::error!(error = %e, "buffer failed for good; the process must restart");
                    self.shared.set_fatal(why);
                }
            }
        }
    }

    /// Puts the log back to `mark`: removes the segments created after it, cuts the segment it
    /// is in back to its length (synced), and makes readers re-read.
    pub(super) fn undo(&mut self, mark: Mark) -> io::Result<()> {
        self.buf.clear();
        #[cfg(test)]
        self.shared.faults.take("undo")?;
        let dir = self.shared.dir.clone();
        // From the directory, not the segment list: a roll that failed after creating its file
        // (renaming the spare, then no descriptor to open it; or the directory sync failing) left
        // a file the list never got.
        let later: Vec<std::path::PathBuf> = segment::list(&dir)?
            .into_iter()
            .filter(|s| s.first_seq > mark.seg_first_seq)
            .map(|s| s.path)
            .collect();
        if self.file_first_seq != mark.seg_first_seq {
            // A roll happened: go back to the mark's segment first (this may need a descriptor
            // the shortage does not give yet: then nothing has changed and it is tried again).
            let path = dir.join(segment::file_name(mark.seg_first_seq));
            self.file = segment::open_at(&path, mark.seg_len)?;
            self.file_first_seq = mark.seg_first_seq;
        }
        for path in &later {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.file.set_len(mark.seg_len)?;
        self.file.sync_all()?;
        if !later.is_empty() {
            sync_dir(&dir)?;
        }
        {
            use std::io::{Seek, SeekFrom};
            self.file.seek(SeekFrom::Start(mark.seg_len))?;
        }
        {
            let mut segs = crate::locks::lock(&self.shared.segments);
            segs.retain(|s| s.first_seq <= mark.seg_first_seq);
            if let Some(last) = segs.last_mut() {
                last.len = mark.seg_len;
                last.sealed = false;
            }
        }
        self.seg_len = mark.seg_len;
        self.next_seq = mark.next_seq;
        self.shared.rewound.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

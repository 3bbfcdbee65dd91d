//! [`AcceptClock`]: when each stored sequence range was accepted, so that the dispatcher can
//! measure accept-to-confirm latency (`conduit_pipeline_accept_to_confirm_seconds`).
//!
//! In memory only, bounded: records accepted before a restart, or beyond the bound, are simply
//! not measured. Ranges below the buffer's cursor are pruned.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Instant;

/// Most ranges remembered.
pub const MAX_RANGES: usize = 1 << 20;

/// Accept instants by sequence range.
#[derive(Debug, Default)]
pub struct AcceptClock {
    ranges: Mutex<VecDeque<(Range<u64>, Instant)>>,
}

impl AcceptClock {
    /// An empty clock.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Range<u64>, Instant)>> {
        crate::locks::lock(&self.ranges)
    }

    /// Records that `seqs` were accepted at `at`.
    pub fn record(&self, seqs: Range<u64>, at: Instant) {
        if seqs.is_empty() {
            return;
        }
        let mut r = self.lock();
        // Appends finish almost in sequence order: search from the back.
        let pos = r.iter().rposition(|(x, _)| x.start < seqs.start).map_or(0, |p| p + 1);
        r.insert(pos, (seqs, at));
        if r.len() > MAX_RANGES {
            r.pop_front();
        }
    }

    /// When `seq` was accepted, if known.
    pub fn accepted_at(&self, seq: u64) -> Option<Instant> {
        let r = self.lock();
        let i = r.partition_point(|(x, _)| x.start <= seq);
        let (range, at) = r.get(i.checked_sub(1)?)?;
        range.contains(&seq).then_some(*at)
    }

    /// Forgets every range wholly below `cursor`.
    pub fn prune(&self, cursor: u64) {
        let mut r = self.lock();
        while r.front().is_some_and(|(x, _)| x.end <= cursor) {
            r.pop_front();
        }
    }

    /// Ranges held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn finds_ranges_recorded_out_of_order_and_prunes() {
        let c = AcceptClock::new();
        let t = Instant::now();
        let t2 = t + Duration::from_millis(5);
        c.record(10..20, t2);
        c.record(0..10, t);
        c.record(20..20, t);
        assert_eq!(c.accepted_at(0), Some(t));
        assert_eq!(c.accepted_at(9), Some(t));
        assert_eq!(c.accepted_at(10), Some(t2));
        assert_eq!(c.accepted_at(20), None);
        c.prune(10);
        assert_eq!(c.len(), 1);
        assert_eq!(c.accepted_at(5), None);
        assert_eq!(c.accepted_at(15), Some(t2));
    }
}

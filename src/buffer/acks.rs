//! Out-of-order acknowledgements folded into an in-order cursor, one per partition.

use std::collections::BTreeMap;
use std::ops::Range;

use super::Position;

/// `positions` as runs of consecutive offsets, per partition, in order: what each partition's
/// [`AckTracker`] takes.
pub fn runs(positions: &[Position]) -> Vec<(u32, Range<u64>)> {
    let mut sorted: Vec<(u32, u64)> = positions.iter().map(|p| (p.partition(), p.offset())).collect();
    sorted.sort_unstable();
    let mut out: Vec<(u32, Range<u64>)> = Vec::new();
    for (partition, offset) in sorted {
        match out.last_mut() {
            Some((p, r)) if *p == partition && r.end >= offset => r.end = r.end.max(offset + 1),
            _ => out.push((partition, offset..offset + 1)),
        }
    }
    out
}

/// The lowest unacknowledged sequence number, and the acknowledged ranges above it.
#[derive(Debug, Clone, Default)]
pub struct AckTracker {
    cursor: u64,
    /// start → end (exclusive) of acknowledged ranges beyond the cursor, not overlapping.
    ahead: BTreeMap<u64, u64>,
}

impl AckTracker {
    /// Starts at `cursor`.
    pub fn new(cursor: u64) -> Self {
        AckTracker {
            cursor,
            ahead: BTreeMap::new(),
        }
    }

    /// The lowest unacknowledged sequence number.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Ranges held beyond the cursor (bounded by the number of batches in flight).
    pub fn pending_ranges(&self) -> usize {
        self.ahead.len()
    }

    /// Acknowledges `range`; returns how many sequence numbers the cursor advanced.
    pub fn ack(&mut self, range: Range<u64>) -> u64 {
        let start = range.start.max(self.cursor);
        let mut end = range.end;
        if start >= end {
            return 0;
        }
        let mut start = start;
        // Merge with any overlapping or touching neighbours.
        if let Some((&s, &e)) = self.ahead.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.ahead.remove(&s);
        }
        while let Some((&s, &e)) = self.ahead.range(start..=end).next() {
            end = end.max(e);
            self.ahead.remove(&s);
        }
        self.ahead.insert(start, end);
        let before = self.cursor;
        if let Some((&s, &e)) = self.ahead.first_key_value()
            && s <= self.cursor
        {
            self.cursor = e;
            self.ahead.remove(&s);
        }
        self.cursor - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_fold_into_runs_per_partition() {
        let p = Position::new;
        let got = runs(&[p(1, 7), p(0, 3), p(0, 4), p(1, 5), p(0, 4), p(0, 9), p(1, 6)]);
        assert_eq!(got, vec![(0, 3..5), (0, 9..10), (1, 5..8)]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn out_of_order() {
        let mut t = AckTracker::new(10);
        assert_eq!(t.ack(12..15), 0);
        assert_eq!(t.ack(15..20), 0);
        assert_eq!(t.cursor(), 10);
        assert_eq!(t.ack(10..12), 10);
        assert_eq!(t.cursor(), 20);
        assert_eq!(t.ack(0..5), 0, "already behind the cursor");
        assert_eq!(t.pending_ranges(), 0);
    }

    proptest! {
        #[test]
        fn matches_a_set_model(ranges in prop::collection::vec((0u64..200, 1u64..20), 0..60)) {
            let mut t = AckTracker::new(0);
            let mut set = std::collections::BTreeSet::new();
            for (s, n) in ranges {
                t.ack(s..s + n);
                set.extend(s..s + n);
                let mut expect = 0;
                while set.contains(&expect) { expect += 1; }
                prop_assert_eq!(t.cursor(), expect);
            }
        }
    }
}

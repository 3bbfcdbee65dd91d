//! [`Batcher`]: groups a lane's items into requests by count, bytes and age.
//!
//! A batch is sent when it holds `max_events` items, when the next item would take the request
//! body past `max_bytes`, or `max_age` after its first item joined it. (Counting from the
//! batch's start, not from when an item was read, matters in a backlog drain: items that waited
//! in a lane's queue behind rate-limited requests must still fill whole batches.) Pure: the lane
//! supplies the clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// One buffered record on its way to a sink.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its sequence number in the buffer.
    pub seq: u64,
    /// The record as stored (for the dead-letter file).
    pub payload: Bytes,
    /// The entity, serialized.
    pub json: Bytes,
    /// Sends so far of this item that the cloud returned as retryable.
    pub attempts: u32,
}

/// Bytes of `{"entities":[` and `]}`.
pub const ENVELOPE: usize = 16;

/// A batch under construction.
#[derive(Debug)]
pub struct Batcher {
    max_events: usize,
    max_bytes: usize,
    max_age: Duration,
    items: Vec<Item>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batcher {
    /// Limits for each batch.
    pub fn new(max_events: usize, max_bytes: usize, max_age: Duration) -> Self {
        Batcher {
            max_events: max_events.max(1),
            max_bytes,
            max_age,
            items: Vec::with_capacity(max_events),
            bytes: ENVELOPE,
            started: None,
        }
    }

    /// Whether `item` fits in a request at all.
    pub fn fits_alone(&self, item: &Item) -> bool {
        ENVELOPE + item.json.len() <= self.max_bytes
    }

    /// Adds an item at `now`; returns a batch to send now when one is complete. An item that
    /// would take the batch past `max_bytes` completes the batch before it and starts the next.
    pub fn push(&mut self, item: Item, now: Instant) -> Option<Vec<Item>> {
        let size = item.json.len() + 1;
        let mut done = None;
        if !self.items.is_empty() && self.bytes + size > self.max_bytes {
            done = Some(self.take());
        }
        if self.items.is_empty() {
            self.started = Some(now);
        }
        self.bytes += size;
        self.items.push(item);
        if done.is_none() && self.items.len() >= self.max_events {
            done = Some(self.take());
        }
        done
    }

    /// When the batch is due by age, if it has items.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|t| t + self.max_age)
    }

    /// The batch as it is.
    pub fn take(&mut self) -> Vec<Item> {
        self.bytes = ENVELOPE;
        self.started = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.max_events))
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64, size: usize) -> Item {
        Item {
            seq,
            payload: Bytes::new(),
            json: Bytes::from(vec![b'x'; size]),
            attempts: 0,
        }
    }

    #[test]
    fn completes_by_count() {
        let t = Instant::now();
        let mut b = Batcher::new(3, 1 << 20, Duration::from_secs(1));
        assert!(b.push(item(1, 10), t).is_none());
        assert!(b.push(item(2, 10), t).is_none());
        let full = b.push(item(3, 10), t).unwrap();
        assert_eq!(full.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn completes_by_bytes_before_the_item_that_does_not_fit() {
        let t = Instant::now();
        let mut b = Batcher::new(100, ENVELOPE + 25, Duration::from_secs(1));
        assert!(b.push(item(1, 10), t).is_none());
        assert!(b.push(item(2, 10), t).is_none());
        let full = b.push(item(3, 10), t).unwrap();
        assert_eq!(full.len(), 2);
        assert_eq!(b.len(), 1, "the third starts the next batch");
        assert!(!b.fits_alone(&item(4, 30)));
        assert!(b.fits_alone(&item(4, 9)));
    }

    #[test]
    fn the_deadline_counts_from_the_batchs_first_item() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let mut b = Batcher::new(100, 1 << 20, Duration::from_millis(500));
        // Items that waited in a queue join the batch at `later`: its age counts from there.
        b.push(item(1, 1), later);
        b.push(item(2, 1), later + Duration::from_millis(300));
        assert_eq!(b.deadline(), Some(later + Duration::from_millis(500)));
        assert_eq!(b.take().len(), 2);
        assert_eq!(b.deadline(), None);
    }
}

//! [`Batcher`]: groups a lane's items into requests by count, bytes and age.
//!
//! A batch is sent when it holds `max_events` items, when the next item would take the request
//! body past `max_bytes`, or when its oldest item has waited `max_age`. Pure: the lane supplies
//! the clock.

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
    /// When the dispatcher read it.
    pub read_at: Instant,
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
        }
    }

    /// Whether `item` fits in a request at all.
    pub fn fits_alone(&self, item: &Item) -> bool {
        ENVELOPE + item.json.len() <= self.max_bytes
    }

    /// Adds an item; returns a batch to send now when one is complete. An item that would take
    /// the batch past `max_bytes` completes the batch before it and starts the next one.
    pub fn push(&mut self, item: Item) -> Option<Vec<Item>> {
        let size = item.json.len() + 1;
        let mut done = None;
        if !self.items.is_empty() && self.bytes + size > self.max_bytes {
            done = Some(self.take());
        }
        self.bytes += size;
        self.items.push(item);
        if done.is_none() && self.items.len() >= self.max_events {
            done = Some(self.take());
        }
        done
    }

    /// When the oldest item's wait ends, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.items.first().map(|i| i.read_at + self.max_age)
    }

    /// The batch as it is.
    pub fn take(&mut self) -> Vec<Item> {
        self.bytes = ENVELOPE;
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

    fn item(seq: u64, size: usize, at: Instant) -> Item {
        Item {
            seq,
            payload: Bytes::new(),
            json: Bytes::from(vec![b'x'; size]),
            read_at: at,
            attempts: 0,
        }
    }

    #[test]
    fn completes_by_count() {
        let t = Instant::now();
        let mut b = Batcher::new(3, 1 << 20, Duration::from_secs(1));
        assert!(b.push(item(1, 10, t)).is_none());
        assert!(b.push(item(2, 10, t)).is_none());
        let full = b.push(item(3, 10, t)).unwrap();
        assert_eq!(full.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn completes_by_bytes_before_the_item_that_does_not_fit() {
        let t = Instant::now();
        let mut b = Batcher::new(100, ENVELOPE + 25, Duration::from_secs(1));
        assert!(b.push(item(1, 10, t)).is_none());
        assert!(b.push(item(2, 10, t)).is_none());
        let full = b.push(item(3, 10, t)).unwrap();
        assert_eq!(full.len(), 2);
        assert_eq!(b.len(), 1, "the third starts the next batch");
        assert!(!b.fits_alone(&item(4, 30, t)));
        assert!(b.fits_alone(&item(4, 9, t)));
    }

    #[test]
    fn the_deadline_is_the_oldest_items() {
        let t = Instant::now();
        let mut b = Batcher::new(100, 1 << 20, Duration::from_millis(500));
        b.push(item(1, 1, t));
        b.push(item(2, 1, t + Duration::from_millis(300)));
        assert_eq!(b.deadline(), Some(t + Duration::from_millis(500)));
        assert_eq!(b.take().len(), 2);
    }
}

//! [`Batcher`]: groups a lane's items into requests by count, bytes and age.
//!
//! A batch is sent when it holds `max_events` items, when the next item would take the request
//! body past `max_bytes`, or `max_age` after its first item joined it. (Counting from the
//! batch's start, not from when an item was read, matters in a backlog drain: items that waited
//! in a lane's queue behind rate-limited requests must still fill whole batches.) Pure: the lane
//! supplies the clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::buffer::{Position, Record};

/// One buffered record on its way to a sink.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where it is in the buffer (to acknowledge it).
    pub position: Position,
    /// When the buffer accepted it, ms since the epoch, when known.
    pub accepted_ms: Option<i64>,
    /// The record's bytes as stored (for the dead-letter file).
    pub payload: Bytes,
    /// Its part of a request body, as its sink prepared it.
    pub part: Bytes,
    /// Sends so far of this item that the destination returned as retryable.
    pub attempts: u32,
}

impl Item {
    /// `record`, not prepared yet.
    pub fn of(record: &Record) -> Self {
        Item {
            position: record.position,
            accepted_ms: record.accepted_ms,
            payload: record.payload.clone(),
            part: Bytes::new(),
            attempts: 0,
        }
    }
}

/// Whether `item` fits in a request of at most `max_bytes` whose body adds `envelope` bytes
/// around its parts.
pub fn fits_alone(item: &Item, envelope: usize, max_bytes: usize) -> bool {
    envelope + item.part.len() <= max_bytes
}

/// A batch under construction.
#[derive(Debug)]
pub struct Batcher {
    max_events: usize,
    max_bytes: usize,
    max_age: Duration,
    envelope: usize,
    items: Vec<Item>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batcher {
    /// Limits for each batch, whose request body adds `envelope` bytes around its parts.
    pub fn new(max_events: usize, max_bytes: usize, max_age: Duration, envelope: usize) -> Self {
        Batcher {
            max_events: max_events.max(1),
            max_bytes,
            max_age,
            envelope,
            items: Vec::with_capacity(max_events),
            bytes: envelope,
            started: None,
        }
    }

    /// Adds an item at `now`; returns a batch to send now when one is complete. An item that
    /// would take the batch past `max_bytes` completes the batch before it and starts the next.
    pub fn push(&mut self, item: Item, now: Instant) -> Option<Vec<Item>> {
        let size = item.part.len() + 1;
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
        self.bytes = self.envelope;
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

    const ENVELOPE: usize = 16;

    fn item(seq: u64, size: usize) -> Item {
        Item {
            position: Position::seq(seq),
            accepted_ms: None,
            payload: Bytes::new(),
            part: Bytes::from(vec![b'x'; size]),
            attempts: 0,
        }
    }

    #[test]
    fn completes_by_count() {
        let t = Instant::now();
        let mut b = Batcher::new(3, 1 << 20, Duration::from_secs(1), ENVELOPE);
        assert!(b.push(item(1, 10), t).is_none());
        assert!(b.push(item(2, 10), t).is_none());
        let full = b.push(item(3, 10), t).unwrap();
        assert_eq!(full.iter().map(|i| i.position.offset()).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn completes_by_bytes_before_the_item_that_does_not_fit() {
        let t = Instant::now();
        let mut b = Batcher::new(100, ENVELOPE + 25, Duration::from_secs(1), ENVELOPE);
        assert!(b.push(item(1, 10), t).is_none());
        assert!(b.push(item(2, 10), t).is_none());
        let full = b.push(item(3, 10), t).unwrap();
        assert_eq!(full.len(), 2);
        assert_eq!(b.len(), 1, "the third starts the next batch");
        assert!(!fits_alone(&item(4, 30), ENVELOPE, ENVELOPE + 25));
        assert!(fits_alone(&item(4, 9), ENVELOPE, ENVELOPE + 25));
    }

    #[test]
    fn the_deadline_counts_from_the_batchs_first_item() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let mut b = Batcher::new(100, 1 << 20, Duration::from_millis(500), ENVELOPE);
        // Items that waited in a queue join the batch at `later`: its age counts from there.
        b.push(item(1, 1), later);
        b.push(item(2, 1), later + Duration::from_millis(300));
        assert_eq!(b.deadline(), Some(later + Duration::from_millis(500)));
        assert_eq!(b.take().len(), 2);
        assert_eq!(b.deadline(), None);
    }
}

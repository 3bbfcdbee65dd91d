//! I/O errors in the middle of appends: injected at the writer's file operations (the errors a
//! full disk, a descriptor shortage or a failing device give), then checked on disk after a
//! reopen. A failed group leaves nothing behind; the buffer recovers by itself; when it cannot,
//! it says so for the process to restart.

use std::time::Duration;

use super::tests::{cfg, rt};
use super::*;
use crate::config::BufferConfig;
use crate::metrics::Metrics;

const EMFILE: i32 = 24;
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn rec(tag: u8, i: usize) -> Vec<u8> {
    let mut r = vec![tag; 40];
    r[0] = i as u8 + 1;
    r
}

fn batch(tag: u8, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| rec(tag, i)).collect()
}

fn inject(b: &DiskBuffer, faults: &[(&'static str, i32)]) {
    b.shared.faults.0.lock().unwrap().extend_from_slice(faults);
}

fn open(c: &BufferConfig) -> DiskBuffer {
    DiskBuffer::open(c, Metrics::new().buffer.clone()).unwrap()
}

/// Every record in the directory after a reopen: (seq, payload).
fn reopened(c: &BufferConfig) -> Vec<(u64, Vec<u8>)> {
    let b = open(c);
    let mut out = Vec::new();
    b.disk_reader("test")
        .unwrap()
        .read_available(usize::MAX, &mut out)
        .unwrap();
    out.into_iter()
        .map(|r| (r.position.offset(), r.payload.to_vec()))
        .collect()
}

fn expect(batches: &[(u8, usize)]) -> Vec<(u64, Vec<u8>)> {
    let mut seq = 0;
    let mut out = Vec::new();
    for (tag, n) in batches {
        for r in batch(*tag, *n) {
            out.push((seq, r));
            seq += 1;
        }
    }
    out
}

#[test]
fn a_roll_without_a_file_descriptor_stores_nothing_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    {
        let b = open(&c);
        rt.block_on(b.append_bytes(batch(1, 5))).unwrap();
        // 20 records of 60 bytes framed do not fit the 512-byte segment: the roll fails.
        inject(&b, &[("roll", EMFILE)]);
        let err = rt.block_on(b.append_bytes(batch(2, 20))).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(b.stats().next_seq, 5);
        assert!(b.stats().write_error.unwrap().contains("os error 24"));
        // The next append goes in right after, and clears the error.
        rt.block_on(b.append_bytes(batch(3, 12))).unwrap();
        assert_eq!(b.stats().write_error, None);
        rt.block_on(b.close()).unwrap();
    }
    assert_eq!(reopened(&c), expect(&[(1, 5), (3, 12)]));
}

#[test]
fn a_roll_that_failed_after_creating_its_file_leaves_no_segment_behind() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    {
        let b = open(&c);
        rt.block_on(b.append_bytes(batch(1, 5))).unwrap();
        // The next segment's file is created, then syncing the directory fails.
        inject(&b, &[("roll_dir", EIO)]);
        rt.block_on(b.append_bytes(batch(2, 20))).unwrap_err();
        // Fewer records than the failed group: no roll where that one rolled.
        rt.block_on(b.append_bytes(batch(3, 2))).unwrap();
        rt.block_on(b.close()).unwrap();
    }
    let segs = segment::list(&dir.path().join("buffer")).unwrap();
    assert_eq!(segs.len(), 1, "{segs:?}");
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(b.stats().next_seq, 7, "numbering continues after the stored records");
    let mut out = Vec::new();
    b.disk_reader("test")
        .unwrap()
        .read_available(usize::MAX, &mut out)
        .unwrap();
    assert_eq!(out.len(), 7);
    assert_eq!(metrics.buffer.corrupt.get(), 0, "nothing looks lost");
}

#[test]
fn a_write_that_fails_after_a_roll_is_undone_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    {
        let b = open(&c);
        rt.block_on(b.append_bytes(batch(1, 5))).unwrap();
        let segments_before = b.stats().segments;
        let mut reader = b.disk_reader("test").unwrap();
        let mut seen = Vec::new();
        reader.read_available(100, &mut seen).unwrap();
        // The first write (before the roll) passes; the one after the roll finds the disk full.
        inject(&b, &[("flush", 0), ("flush", ENOSPC)]);
        rt.block_on(b.append_bytes(batch(2, 20))).unwrap_err();
        assert_eq!(
            b.stats().segments,
            segments_before,
            "the segment the group rolled into is gone"
        );
        rt.block_on(b.append_bytes(batch(3, 3))).unwrap();
        // A reader that was reading meanwhile sees only what was stored.
        reader.read_available(100, &mut seen).unwrap();
        let got: Vec<(u64, Vec<u8>)> = seen
            .into_iter()
            .map(|r| (r.position.offset(), r.payload.to_vec()))
            .collect();
        assert_eq!(got, expect(&[(1, 5), (3, 3)]));
        rt.block_on(b.close()).unwrap();
    }
    assert_eq!(reopened(&c), expect(&[(1, 5), (3, 3)]));
}

#[test]
fn a_buffer_that_cannot_undo_yet_refuses_then_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    {
        let b = open(&c);
        rt.block_on(b.append_bytes(batch(1, 2))).unwrap();
        inject(
            &b,
            &[("flush", EIO), ("undo", EMFILE), ("undo", EMFILE), ("undo", EMFILE)],
        );
        rt.block_on(b.append_bytes(batch(2, 2))).unwrap_err();
        assert!(b.stats().failed, "recovering");
        let refused = rt.block_on(b.append_bytes(batch(2, 2))).unwrap_err();
        assert!(refused.is_retryable());
        // The housekeeper nudges the writer, which backs off (100, 200, 400 ms) and succeeds.
        let t0 = std::time::Instant::now();
        while b.stats().failed {
            assert!(t0.elapsed() < Duration::from_secs(10), "never recovered");
            std::thread::park_timeout(Duration::from_millis(20));
        }
        rt.block_on(b.append_bytes(batch(4, 3))).unwrap();
        assert_eq!(b.stats().fatal, None);
        rt.block_on(b.close()).unwrap();
    }
    assert_eq!(reopened(&c), expect(&[(1, 2), (4, 3)]));
}

#[test]
fn a_buffer_that_never_recovers_says_so_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    let b = open(&c);
    rt.block_on(b.append_bytes(batch(1, 2))).unwrap();
    let mut faults = vec![("flush", EIO)];
    faults.extend(std::iter::repeat_n(("undo", EIO), 1000));
    inject(&b, &faults);
    rt.block_on(b.append_bytes(batch(2, 2))).unwrap_err();
    let why = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), b.fatal()).await })
        .expect("the buffer gives up");
    assert!(why.contains("could not recover"), "{why}");
    assert!(b.stats().fatal.is_some());
}

#[test]
fn a_buffer_thread_that_panics_fails_the_buffer_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    let b = open(&c);
    rt.block_on(b.append_bytes(batch(1, 2))).unwrap();
    inject(&b, &[("panic", EIO)]);
    rt.block_on(b.append_bytes(batch(2, 2))).unwrap_err();
    let why = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), b.fatal()).await })
        .expect("the buffer says it failed");
    assert!(why.contains("writer thread panicked"), "{why}");
}

#[test]
fn damage_found_at_start_up_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let rt = rt();
    {
        let b = open(&c);
        rt.block_on(b.append_bytes(batch(1, 4))).unwrap();
        rt.block_on(b.close()).unwrap();
    }
    // Flip a payload byte of the second record of the (only, so last) segment.
    let seg = segment::list(&dir.path().join("buffer")).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&seg.path).unwrap();
    bytes[super::tests::stored_len(40) as usize + frame::HEADER_LEN + 5] ^= 0x40;
    std::fs::write(&seg.path, &bytes).unwrap();

    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(
        metrics.buffer.corrupt.get(),
        1,
        "counted at start-up, before any reader"
    );
    assert_eq!(b.stats().damaged_records, 1);
    assert!(b.stats().damage_secs_ago.is_some());
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(100, &mut out).unwrap();
    assert_eq!(
        out.iter().map(|r| r.position.offset()).collect::<Vec<_>>(),
        vec![0, 2, 3]
    );
    assert_eq!(metrics.buffer.corrupt.get(), 1, "the reader does not count it again");
}

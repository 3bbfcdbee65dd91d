//! Buffer tests: a model-based property test with reopen, torn-write crashes and preallocated
//! segments, byte-flip corruption, the size cap, and segment deletion. Segments are tiny so that
//! every test rolls.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use proptest::prelude::*;

use super::*;
use crate::config::{BufferConfig, PersistPolicy, WhenFull};
use crate::metrics::Metrics;

/// Tiny segments: a few records each, so rollover happens constantly.
const TEST_SEGMENT_BYTES: u64 = 512;

pub(super) fn cfg(dir: &std::path::Path) -> BufferConfig {
    BufferConfig {
        segment_max_bytes: TEST_SEGMENT_BYTES,
        max_bytes: 1 << 30,
        max_record_bytes: 4096,
        block_timeout_ms: 200,
        ..BufferConfig::with_dir(dir)
    }
}

/// Bytes a record of `payload` bytes appended by [`DiskBuffer::append_bytes`] takes on disk.
pub(super) fn stored_len(payload: usize) -> u64 {
    frame::framed_len(Entry::new(Kind::Interaction, bytes::Bytes::new(), vec![0; payload]).stored_len())
}

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn payload(seq_hint: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq_hint as usize * 31 + i) as u8).collect()
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    segment::list(&dir.join("buffer")).unwrap().last().unwrap().path.clone()
}

/// Where a segment's records end (before a torn tail or preallocated zeros).
fn data_end(path: &std::path::Path) -> u64 {
    let len = std::fs::metadata(path).unwrap().len();
    let mut s = scan::Scanner::open(path, 1 << 20).unwrap();
    loop {
        match s.next(len).unwrap() {
            scan::Scan::Tail { offset } => return offset,
            scan::Scan::End => return s.offset(),
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Read(usize),
    Ack(usize),
    Reopen,
    CrashTorn(Vec<u8>),
    /// Preallocate the next segment now (the housekeeper does so on its own schedule).
    Spare,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..300, 1..6).prop_map(Op::Append),
        3 => (1usize..10).prop_map(Op::Read),
        3 => any::<prop::sample::Index>().prop_map(|i| Op::Ack(i.index(1 << 16))),
        1 => Just(Op::Reopen),
        1 => prop::collection::vec(any::<u8>(), 1..60).prop_map(Op::CrashTorn),
        2 => Just(Op::Spare),
    ]
}

struct Model {
    /// Every record ever stored, by sequence number.
    stored: Vec<(u64, Vec<u8>)>,
    first_seq: u64,
    acked: BTreeSet<u64>,
    /// Read by the current reader but not acknowledged.
    outstanding: Vec<u64>,
    read_pos: u64,
}

impl Model {
    fn cursor(&self) -> u64 {
        let mut c = self.first_seq;
        while self.acked.contains(&c) {
            c += 1;
        }
        c
    }
}

fn run_ops(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let metrics = Metrics::new();
    let mut buf = Some(DiskBuffer::open(&cfg(dir.path()), metrics.buffer.clone()).unwrap());
    let mut reader = buf.as_ref().unwrap().disk_reader("test").unwrap();
    let mut m = Model {
        stored: Vec::new(),
        first_seq: 0,
        acked: BTreeSet::new(),
        outstanding: Vec::new(),
        read_pos: 0,
    };
    for op in ops {
        let b = buf.as_ref().unwrap();
        match op {
            Op::Append(lens) => {
                let next = m.first_seq + m.stored.len() as u64;
                let records: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, l)| payload(next + i as u64, *l))
                    .collect();
                let first_seq = b.write_position().offset();
                match rt.block_on(b.append_bytes(records.clone())).unwrap() {
                    Appended::Stored { count } => {
                        assert_eq!(first_seq, next, "sequence numbers are contiguous");
                        assert_eq!(count, records.len());
                        for (i, r) in records.into_iter().enumerate() {
                            m.stored.push((first_seq + i as u64, r));
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            Op::Read(k) => {
                let available = m.first_seq + m.stored.len() as u64 - m.read_pos;
                let mut out = Vec::new();
                reader.read_available(k, &mut out).unwrap();
                assert_eq!(
                    out.len() as u64,
                    available.min(k as u64),
                    "reader returns what is available"
                );
                for r in out {
                    assert_eq!(r.position.offset(), m.read_pos, "records come in order without gaps");
                    let (seq, bytes) = &m.stored[(r.position.offset() - m.first_seq) as usize];
                    assert_eq!((*seq, &bytes[..]), (r.position.offset(), &r.payload[..]));
                    m.outstanding.push(r.position.offset());
                    m.read_pos += 1;
                }
            }
            Op::Ack(i) => {
                if !m.outstanding.is_empty() {
                    let seq = m.outstanding.remove(i % m.outstanding.len());
                    b.ack_seqs(seq..seq + 1);
                    m.acked.insert(seq);
                    assert_eq!(b.stats().cursor, m.cursor());
                }
            }
            Op::Spare => b.prepare_spare_now().unwrap(),
            Op::Reopen | Op::CrashTorn(_) => {
                let cursor_before = m.cursor();
                drop(reader);
                if matches!(op, Op::Reopen) {
                    rt.block_on(b.close()).unwrap();
                }
                drop(buf.take());
                if let Op::CrashTorn(garbage) = &op {
                    // A torn write lands where the next records would have gone: at the end of
                    // the data, in the preallocated space if there is any.
                    let seg = last_segment(dir.path());
                    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
                    f.seek(SeekFrom::Start(data_end(&seg))).unwrap();
                    f.write_all(garbage).unwrap();
                }
                let b = DiskBuffer::open(&cfg(dir.path()), metrics.buffer.clone()).unwrap();
                let c = b.stats().cursor;
                assert!(
                    c <= cursor_before,
                    "persisted cursor {c} is ahead of the acknowledged prefix {cursor_before}"
                );
                if matches!(op, Op::Reopen) {
                    assert_eq!(c, cursor_before, "a clean close persists the cursor");
                }
                assert_eq!(
                    b.stats().next_seq,
                    m.first_seq + m.stored.len() as u64,
                    "nothing stored is lost"
                );
                // Acknowledgements beyond the persisted cursor are forgotten: redelivery.
                m.acked.retain(|s| *s < c);
                m.outstanding.clear();
                m.read_pos = c;
                reader = b.disk_reader("test").unwrap();
                buf = Some(b);
            }
        }
    }
    // Finally everything unacknowledged is still readable, in order.
    let mut out = Vec::new();
    reader.read_available(usize::MAX, &mut out).unwrap();
    let expect: Vec<u64> = (m.read_pos..m.first_seq + m.stored.len() as u64).collect();
    assert_eq!(out.iter().map(|r| r.position.offset()).collect::<Vec<_>>(), expect);
    assert_eq!(metrics.buffer.corrupt.get(), 0, "no corruption was introduced");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn behaves_like_the_model(ops in prop::collection::vec(op(), 1..50)) {
        run_ops(ops);
    }
}

fn fill(n: u64, c: &BufferConfig) -> (DiskBuffer, Metrics) {
    let metrics = Metrics::new();
    let b = DiskBuffer::open(c, metrics.buffer.clone()).unwrap();
    let rt = rt();
    for i in 0..n {
        rt.block_on(b.append_bytes(vec![payload(i, 40)])).unwrap();
    }
    (b, metrics)
}

/// Writes `n` records and closes the buffer cleanly.
fn fill_and_close(n: u64, c: &BufferConfig) {
    let (b, _) = fill(n, c);
    rt().block_on(b.close()).unwrap();
}

#[test]
fn a_flipped_byte_loses_only_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    fill_and_close(30, &c);
    let segs = segment::list(&dir.path().join("buffer")).unwrap();
    assert!(segs.len() > 3, "test needs several segments");
    // Flip a payload byte of the second record of the second segment.
    let target = &segs[1];
    let mut bytes = std::fs::read(&target.path).unwrap();
    let rec_len = stored_len(40) as usize;
    bytes[rec_len + frame::HEADER_LEN + 7] ^= 0x01;
    std::fs::write(&target.path, &bytes).unwrap();

    let report = inspect::scan_dir(dir.path(), |_, _, _| {}).unwrap();
    assert!(report.damaged());
    assert_eq!(report.missing_records, 1);

    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    let mut reader = b.disk_reader("test").unwrap();
    let mut out = Vec::new();
    reader.read_available(usize::MAX, &mut out).unwrap();
    let lost = target.first_seq + 1;
    let expect: Vec<u64> = (0..30).filter(|s| *s != lost).collect();
    assert_eq!(out.iter().map(|r| r.position.offset()).collect::<Vec<_>>(), expect);
    assert_eq!(metrics.buffer.corrupt.get(), 1);
    // The lost record does not hold the cursor back.
    for r in &out {
        b.ack_seqs(r.position.offset()..r.position.offset() + 1);
    }
    assert_eq!(b.stats().cursor, 30);
}

#[test]
fn a_damaged_header_resyncs_on_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        segment_max_bytes: 64 * 1024,
        ..cfg(dir.path())
    };
    fill_and_close(10, &c);
    let seg = last_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec_len = stored_len(40) as usize;
    bytes[3 * rec_len + 5] = 0xff; // record 3's length field
    std::fs::write(&seg, &bytes).unwrap();
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(
        b.stats().next_seq,
        10,
        "damage in the last segment's middle is not a torn tail"
    );
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(100, &mut out).unwrap();
    assert_eq!(out.len(), 9);
    assert_eq!(metrics.buffer.corrupt.get(), 1);
}

#[test]
fn torn_tail_is_truncated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A segment that grows (not preallocated, as with `persist = fsync`), torn at its end; a
    // tear in preallocated space is in `preallocated_segments_roll_reopen_and_inspect_clean`.
    let c = BufferConfig {
        segment_max_bytes: 64 * 1024,
        persist: PersistPolicy::Flush,
        ..cfg(dir.path())
    };
    fill_and_close(5, &c);
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // Half of a sixth frame.
    let mut partial = Vec::new();
    frame::encode(5, &payload(5, 40), &mut partial);
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&partial[..30])
        .unwrap();
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(metrics.buffer.truncated_bytes.get(), 30);
    assert_eq!(b.stats().next_seq, 5);
    rt().block_on(b.append_bytes(vec![b"after".to_vec()])).unwrap();
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(100, &mut out).unwrap();
    assert_eq!(out.last().unwrap().position.offset(), 5);
    assert_eq!(&out.last().unwrap().payload[..], b"after");
}

#[test]
fn damaged_cursor_redelivers_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let (b, _) = fill(6, &c);
    b.ack_seqs(0..3);
    rt().block_on(b.close()).unwrap();
    drop(b);
    std::fs::write(dir.path().join("buffer").join(cursor::FILE), b"garbage").unwrap();
    let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(100, &mut out).unwrap();
    assert!(out.first().unwrap().position.offset() <= 3 && out.last().unwrap().position.offset() == 5);
}

#[test]
fn acknowledged_segments_are_deleted_and_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let (b, _) = fill(40, &c);
    let before = segment::list(b.dir()).unwrap().len();
    b.ack_seqs(0..35);
    rt().block_on(b.close()).unwrap();
    let after = segment::list(b.dir()).unwrap();
    assert!(
        after.len() < before,
        "{} segments before, {} after",
        before,
        after.len()
    );
    assert!(after[0].first_seq <= 35);
    drop(b);
    let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
    assert_eq!(b.stats().cursor, 35);
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(100, &mut out).unwrap();
    assert_eq!(
        out.iter().map(|r| r.position.offset()).collect::<Vec<_>>(),
        (35..40).collect::<Vec<_>>()
    );
}

#[test]
fn full_buffer_blocks_then_refuses_or_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        max_bytes: 2048,
        when_full: WhenFull::Block,
        block_timeout_ms: 50,
        ..cfg(dir.path())
    };
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    let rt = rt();
    let mut stored = 0;
    let err = loop {
        match rt.block_on(b.append_bytes(vec![payload(stored, 100)])) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "the cap was never reached");
    };
    assert!(matches!(err, BufferError::Full { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(b.stats().at_cap, "shown as full while appends are refused");
    drop(b);

    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        max_bytes: 2048,
        when_full: WhenFull::DropNewest,
        ..cfg(dir.path())
    };
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    let mut dropped = 0;
    for i in 0..40 {
        if let Appended::Dropped { count } = rt.block_on(b.append_bytes(vec![payload(i, 100)])).unwrap() {
            dropped += count;
        }
    }
    assert!(dropped > 0);
    assert_eq!(metrics.buffer.dropped.get(), dropped as u64);
}

#[test]
fn room_freed_by_acks_unblocks_a_waiting_append() {
    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        max_bytes: 2048,
        block_timeout_ms: 10_000,
        ..cfg(dir.path())
    };
    let b = std::sync::Arc::new(DiskBuffer::open(&c, Metrics::new().buffer).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut n = 0u64;
        while b.stats().bytes + stored_len(100) <= 2048 {
            b.append_bytes(vec![payload(n, 100)]).await.unwrap();
            n += 1;
        }
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.append_bytes(vec![payload(99, 100)]).await })
        };
        assert_eq!(b.write_position().offset(), n, "the last append waits for room");
        b.ack_seqs(0..n);
        let res = waiter.await.unwrap().unwrap();
        assert!(matches!(res, Appended::Stored { count: 1 }));
        assert_eq!(b.write_position().offset(), n + 1);
    });
}

#[test]
fn oversized_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).unwrap();
    let err = rt().block_on(b.append_bytes(vec![vec![0; 5000]])).unwrap_err();
    assert!(matches!(err, BufferError::TooLarge { .. }));
    assert!(!err.is_retryable());
}

#[test]
fn a_second_process_cannot_open_the_same_dir() {
    let dir = tempfile::tempdir().unwrap();
    let _a = DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).unwrap();
    let err = DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).err().unwrap();
    assert!(matches!(err, BufferError::Locked(_)));
}

#[test]
fn with_fsync_the_first_segment_starts_preallocated() {
    let rt = rt();
    for persist in [PersistPolicy::Fsync, PersistPolicy::Flush] {
        let dir = tempfile::tempdir().unwrap();
        let c = BufferConfig {
            segment_max_bytes: 64 * 1024,
            persist,
            ..cfg(dir.path())
        };
        let seg_dir = dir.path().join("buffer");
        let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
        let segs = segment::list(&seg_dir).unwrap();
        assert_eq!(segs.len(), 1, "{segs:?}");
        let expected = if persist == PersistPolicy::Fsync { 64 * 1024 } else { 0 };
        assert_eq!(segs[0].len, expected, "{persist:?}: {segs:?}");
        for i in 0..10 {
            rt.block_on(b.append_bytes(vec![payload(i, 100)])).unwrap();
        }
        // A crash and a reopen: the records are there, the zeros after them are not damage.
        drop(b);
        let metrics = Metrics::new();
        let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
        assert_eq!(b.stats().next_seq, 10, "{persist:?}");
        assert_eq!(metrics.buffer.truncated_bytes.get(), 0);
        assert_eq!(segment::list(&seg_dir).unwrap().len(), 1);
    }
}

#[test]
fn preallocated_segments_roll_reopen_and_inspect_clean() {
    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        segment_max_bytes: 64 * 1024,
        ..cfg(dir.path())
    };
    let seg_dir = dir.path().join("buffer");
    let rt = rt();
    let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
    b.prepare_spare_now().unwrap();
    assert_eq!(
        std::fs::metadata(seg_dir.join(segment::SPARE)).unwrap().len(),
        64 * 1024
    );
    // Records of 200 bytes framed, 327 to a segment: the first roll takes the spare.
    let append = |range: std::ops::Range<u64>| {
        for i in range {
            rt.block_on(b.append_bytes(vec![payload(i, 180)])).unwrap();
        }
    };
    append(0..400);
    let segs = segment::list(&seg_dir).unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(segs[1].len, 64 * 1024, "the spare became the active segment: {segs:?}");
    b.prepare_spare_now().unwrap();
    append(400..1000);
    let segs = segment::list(&seg_dir).unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    for s in &segs[..segs.len() - 1] {
        assert_eq!(
            s.len,
            data_end(&s.path),
            "a sealed segment keeps no unused space: {segs:?}"
        );
    }
    // Once more into a spare, so that the active segment is a preallocated one.
    b.prepare_spare_now().unwrap();
    let mut next = 1000;
    while segment::list(&seg_dir).unwrap().len() == segs.len() {
        append(next..next + 1);
        next += 1;
    }
    let segs = segment::list(&seg_dir).unwrap();
    let active = segs.last().unwrap();
    assert_eq!(active.len, 64 * 1024, "{segs:?}");
    let used = b.stats().bytes;
    // A crash (no close) and a reopen: every record is there, the zeros are not damage.
    drop(b);
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(b.stats().next_seq, next);
    assert_eq!(b.stats().bytes, used, "the size counts records, not preallocated space");
    assert_eq!(metrics.buffer.truncated_bytes.get(), 0);
    rt.block_on(b.append_bytes(vec![b"after".to_vec()])).unwrap();
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(2000, &mut out).unwrap();
    assert_eq!(
        out.iter().map(|r| r.position.offset()).collect::<Vec<_>>(),
        (0..=next).collect::<Vec<_>>()
    );
    assert_eq!(&out[next as usize].payload[..], b"after");
    rt.block_on(b.close()).unwrap();
    drop(b);
    let report = inspect::scan_dir(dir.path(), |_, _, _| {}).unwrap();
    assert!(!report.damaged(), "{}", inspect::render(&report));
    assert_eq!(report.records, next + 1);
    let last = report.segments.last().unwrap();
    assert_eq!(last.file, segment::file_name(active.first_seq));
    assert!(last.preallocated_bytes > 0, "{}", inspect::render(&report));

    // A torn write into the preallocated space: cut and counted as what it was, 30 bytes.
    let mut partial = Vec::new();
    frame::encode(next + 1, &payload(0, 40), &mut partial);
    let mut f = OpenOptions::new().write(true).open(&active.path).unwrap();
    f.seek(SeekFrom::Start(data_end(&active.path))).unwrap();
    f.write_all(&partial[..30]).unwrap();
    drop(f);
    let report = inspect::scan_dir(dir.path(), |_, _, _| {}).unwrap();
    assert_eq!(report.torn_tail_bytes, 30, "{}", inspect::render(&report));
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    assert_eq!(metrics.buffer.truncated_bytes.get(), 30);
    assert_eq!(b.stats().next_seq, next + 1);
}

#[test]
fn flush_policy_stores_without_sync() {
    let dir = tempfile::tempdir().unwrap();
    let c = BufferConfig {
        persist: PersistPolicy::Flush,
        ..cfg(dir.path())
    };
    let metrics = Metrics::new();
    let b = DiskBuffer::open(&c, metrics.buffer.clone()).unwrap();
    rt().block_on(b.append_bytes(vec![b"x".to_vec()])).unwrap();
    assert_eq!(metrics.buffer.fsync_seconds.get_sample_count(), 0);
    let dir = tempfile::tempdir().unwrap();
    let b = DiskBuffer::open(&cfg(dir.path()), metrics.buffer.clone()).unwrap();
    rt().block_on(b.append_bytes(vec![b"x".to_vec()])).unwrap();
    assert_eq!(metrics.buffer.fsync_seconds.get_sample_count(), 1, "fsync policy syncs");
}

#[test]
fn async_reader_wakes_on_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let b = std::sync::Arc::new(DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader = b.reader("test").unwrap();
        let pending = tokio::spawn(async move { reader.next_batch(10).await });
        b.append_bytes(vec![b"one".to_vec(), b"two".to_vec()]).await.unwrap();
        let got = pending.await.unwrap().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(&got[1].payload[..], b"two");
    });
}

#[test]
fn the_reader_has_one_owner_and_a_replaced_owner_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).unwrap();
    rt().block_on(b.append_bytes((0..4).map(|i| payload(i, 20)).collect()))
        .unwrap();
    let mut first = b.disk_reader("dispatch").unwrap();
    let mut read = Vec::new();
    first.read_available(10, &mut read).unwrap();
    assert_eq!(read.len(), 4);
    match b.reader("another") {
        Err(BufferError::ReaderTaken { owner, wanted }) => {
            assert_eq!((owner.as_str(), wanted.as_str()), ("dispatch", "another"))
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("a second reader shared the cursor"),
    }
    let stale = first.acker();
    stale.ack(&[read[0].position]);
    assert_eq!(b.stats().cursor, 1, "the owner's acknowledgements count");
    drop(first);
    let second = b.disk_reader("dispatch").expect("free again once the owner is gone");
    stale.ack(&read.iter().map(|r| r.position).collect::<Vec<_>>());
    assert_eq!(b.stats().cursor, 1, "the replaced owner's acknowledgements are ignored");
    second.acker().ack(&[read[2].position, read[1].position]);
    assert_eq!(b.stats().cursor, 3, "out of order, folded into the cursor");
}

#[test]
fn records_keep_their_kind_key_and_accept_time_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let before = crate::timefmt::now_ms();
    {
        let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
        let entries = vec![
            Entry::new(Kind::Interaction, "call-1", payload(0, 30)),
            Entry::new(Kind::Unknown(7), "user-9", payload(1, 30)),
        ];
        rt().block_on(b.append(entries)).unwrap();
        rt().block_on(b.close()).unwrap();
    }
    let after = crate::timefmt::now_ms();
    let b = DiskBuffer::open(&c, Metrics::new().buffer).unwrap();
    let mut out = Vec::new();
    b.disk_reader("test").unwrap().read_available(10, &mut out).unwrap();
    let got: Vec<_> = out.iter().map(|r| (r.kind, &r.key[..], &r.payload[..])).collect();
    assert_eq!(
        got,
        vec![
            (Kind::Interaction, &b"call-1"[..], &payload(0, 30)[..]),
            (Kind::Unknown(7), &b"user-9"[..], &payload(1, 30)[..]),
        ]
    );
    for r in &out {
        let at = r.accepted_ms.expect("the accept time is stored");
        assert!((before..=after).contains(&at), "{at} not within {before}..={after}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever bytes a segment holds, opening, reading and inspecting never panic, and whatever
    /// valid frames survive are read back in order.
    #[test]
    fn arbitrary_segment_bytes_never_crash(
        junk in prop::collection::vec(any::<u8>(), 0..4096),
        frames in prop::collection::vec(0usize..200, 0..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let seg_dir = dir.path().join("buffer");
        std::fs::create_dir_all(&seg_dir).unwrap();
        let mut bytes = Vec::new();
        for (i, len) in frames.iter().enumerate() {
            frame::encode(i as u64, &payload(i as u64, *len), &mut bytes);
        }
        let at = cut.index(bytes.len() + 1);
        bytes.splice(at..at, junk.iter().copied());
        std::fs::write(seg_dir.join(segment::file_name(0)), &bytes).unwrap();
        let report = inspect::scan_dir(dir.path(), |_, _, _| {}).unwrap();
        prop_assert!(report.records <= frames.len() as u64);
        let b = DiskBuffer::open(&cfg(dir.path()), Metrics::new().buffer).unwrap();
        let mut out = Vec::new();
        b.disk_reader("test").unwrap().read_available(usize::MAX, &mut out).unwrap();
        let seqs: Vec<u64> = out.iter().map(|r| r.position.offset()).collect();
        prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", seqs);
        // Every frame written before the junk is intact.
        let intact = frames.iter().scan(0usize, |pos, len| { *pos += frame::framed_len(*len) as usize; Some(*pos) })
            .take_while(|end| *end <= at).count() as u64;
        prop_assert!(seqs.iter().take(intact as usize).copied().eq(0..intact), "{:?} lost intact frames", seqs);
        // And the buffer still takes appends after whatever it found.
        let next = b.stats().next_seq;
        let first_seq = b.write_position().offset();
        match rt().block_on(b.append_bytes(vec![b"after".to_vec()])).unwrap() {
            Appended::Stored { .. } => prop_assert_eq!(first_seq, next),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

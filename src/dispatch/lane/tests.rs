//! The delivery state machine against a fake sink, under a paused tokio clock: splitting a
//! refused batch, settling a partial answer, pausing for `Retry-After` (for every sink of the
//! OAuth client) and for authentication failures. Each fake answers from what it is sent.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::buffer::{Acknowledge, BoxFuture, Kind, Position, Record};
use crate::deadletter::{self, DeadLetters, Interactions, Keep};
use crate::dispatch::gate::Gate;
use crate::dispatch::{Common, Delivery};
use crate::shutdown::Shutdown;
use crate::sink::{Prepared, Sink, Unsendable};

/// What a fake answers, given the parts of a request and how many requests came before.
type Script = Box<dyn Fn(&[String], usize) -> Answer + Send + Sync>;

/// A sink whose body is its parts, one per line, and whose answers come from a script.
struct FakeSink {
    name: &'static str,
    script: Script,
    /// Each request: when it was sent (since the test's start), its parts, the gate's state then.
    sent: Mutex<Vec<(Duration, Vec<String>, DestState)>>,
    gate: Arc<Gate>,
    start: Instant,
}

impl Sink for FakeSink {
    fn name(&self) -> &'static str {
        self.name
    }
    fn takes(&self, kind: Kind) -> bool {
        kind == Kind::Interaction
    }
    fn prepare(&self, record: &Record) -> Result<Prepared, Unsendable> {
        Ok(Prepared {
            lane_key: Bytes::new(),
            part: record.payload.clone(),
        })
    }
    fn envelope_bytes(&self) -> usize {
        0
    }
    fn body(&self, parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.join(&b'\n'))
    }
    fn send(&self, body: Bytes) -> BoxFuture<'_, Result<Answer, SendError>> {
        let parts: Vec<String> = String::from_utf8(body.to_vec())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut sent = self.sent.lock().unwrap();
        let answer = (self.script)(&parts, sent.len());
        sent.push((self.start.elapsed(), parts, self.gate.state()));
        Box::pin(async move { Ok(answer) })
    }
}

#[derive(Default)]
struct Acks(Mutex<Vec<u64>>);

impl Acknowledge for Acks {
    fn ack(&self, positions: &[Position]) {
        self.0.lock().unwrap().extend(positions.iter().map(|p| p.offset()));
    }
}

impl Acks {
    fn sorted(&self) -> Vec<u64> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_unstable();
        v
    }
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        retry_after: None,
        correlation_id: "corr-1".into(),
        rate: None,
        confirmed: (200..300).contains(&status),
        unprocessed: Vec::new(),
        message: format!("answered {status}"),
        elapsed: Duration::ZERO,
        local: false,
    }
}

struct Rig {
    acks: Arc<Acks>,
    common: Arc<Common>,
    gate: Arc<Gate>,
    dir: tempfile::TempDir,
    start: Instant,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let acks = Arc::new(Acks::default());
        let dead: Arc<dyn Keep> = Arc::new(DeadLetters::<Interactions>::open(dir.path()).unwrap());
        let common = Arc::new(Common {
            acker: acks.clone(),
            unroutable: dead.clone(),
            metrics: crate::metrics::Metrics::new().sink,
            stop: Shutdown::new(),
        });
        Rig {
            acks,
            common,
            gate: Arc::new(Gate::new(1.0)),
            dir,
            start: Instant::now(),
        }
    }

    /// A sink named `name` answering from `script`, behind the rig's gate.
    fn sink(&self, name: &'static str, script: Script) -> (Context, Arc<FakeSink>) {
        let sink = Arc::new(FakeSink {
            name,
            script,
            sent: Mutex::new(Vec::new()),
            gate: self.gate.clone(),
            start: self.start,
        });
        let ctx = Context {
            sink: sink.clone(),
            delivery: Delivery {
                concurrency: 1,
                max_events: 100,
                max_bytes: 1 << 20,
                max_age: Duration::from_millis(100),
                retry_initial: Duration::from_millis(500),
                retry_max: Duration::from_secs(30),
                max_entity_attempts: 3,
            },
            gate: self.gate.clone(),
            dead: self.common.unroutable.clone(),
            common: self.common.clone(),
        };
        (ctx, sink)
    }

    /// Every dead letter written: (seq, reason, status).
    fn dead_letters(&self) -> Vec<(u64, String, Option<u16>)> {
        let mut out = Vec::new();
        for f in deadletter::list::<Interactions>(self.dir.path()).unwrap() {
            let (letters, damage) = deadletter::read_file::<Interactions>(&f.path).unwrap();
            assert!(damage.is_none());
            out.extend(letters.into_iter().map(|l| (l.seq, l.reason, l.status)));
        }
        out.sort();
        out
    }
}

/// Items whose parts are `parts`, at positions 0, 1, ...
fn items(parts: &[&str]) -> Vec<Item> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| Item {
            position: Position::seq(i as u64),
            accepted_ms: None,
            payload: Bytes::copy_from_slice(p.as_bytes()),
            part: Bytes::copy_from_slice(p.as_bytes()),
            attempts: 0,
        })
        .collect()
}

fn sizes(sink: &FakeSink) -> Vec<usize> {
    sink.sent.lock().unwrap().iter().map(|(_, p, _)| p.len()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_split_until_the_bad_record_stands_alone() {
    let rig = Rig::new();
    let (ctx, sink) = rig.sink(
        "fake",
        Box::new(|parts, _| answer(if parts.iter().any(|p| p == "bad") { 400 } else { 200 })),
    );
    let batch = items(&["e0", "e1", "e2", "e3", "e4", "bad", "e6", "e7"]);
    assert!(deliver(&ctx, batch).await);
    // 8 refused → 4 + 4; the second 4 refused → 2 + 2; the first 2 refused → 1 + 1.
    assert_eq!(sizes(&sink), [8, 4, 4, 2, 1, 1, 2]);
    assert_eq!(
        rig.acks.sorted(),
        [0, 1, 2, 3, 4, 5, 6, 7],
        "the dead letter is acknowledged too"
    );
    assert_eq!(rig.dead_letters(), [(5, "client_error".to_string(), Some(400))]);
}

#[tokio::test(start_paused = true)]
async fn a_partial_answer_confirms_the_processed_retries_the_retryable_and_dead_letters_the_rest() {
    let rig = Rig::new();
    let (ctx, sink) = rig.sink(
        "fake",
        Box::new(|_, n| {
            let mut a = answer(200);
            if n == 0 {
                a.unprocessed = vec![
                    Unprocessed {
                        index: 1,
                        retryable: true,
                        status: Some(503),
                        message: "later".into(),
                        reason: None,
                    },
                    Unprocessed {
                        index: 2,
                        retryable: false,
                        status: Some(400),
                        message: "never".into(),
                        reason: None,
                    },
                ];
            }
            a
        }),
    );
    assert!(deliver(&ctx, items(&["e0", "e1", "e2", "e3"])).await);
    let sent: Vec<Vec<String>> = sink.sent.lock().unwrap().iter().map(|(_, p, _)| p.clone()).collect();
    assert_eq!(
        sent,
        [vec!["e0", "e1", "e2", "e3"], vec!["e1"]],
        "only the retryable one again"
    );
    assert_eq!(rig.acks.sorted(), [0, 1, 2, 3]);
    assert_eq!(rig.dead_letters(), [(2, "rejected".to_string(), Some(400))]);
}

#[tokio::test(start_paused = true)]
async fn a_record_retryable_forever_is_dead_lettered_after_its_attempts() {
    let rig = Rig::new();
    let (ctx, sink) = rig.sink(
        "fake",
        Box::new(|parts, _| {
            let mut a = answer(200);
            a.unprocessed = (0..parts.len())
                .map(|index| Unprocessed {
                    index,
                    retryable: true,
                    status: Some(503),
                    message: "later".into(),
                    reason: None,
                })
                .collect();
            a
        }),
    );
    assert!(deliver(&ctx, items(&["e0"])).await);
    assert_eq!(sizes(&sink), [1, 1, 1], "max_entity_attempts = 3");
    assert_eq!(rig.dead_letters(), [(0, "retries_exhausted".to_string(), Some(503))]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_every_sink_of_the_oauth_client() {
    let rig = Rig::new();
    let (a, sink_a) = rig.sink(
        "a",
        Box::new(|_, n| {
            let mut a = answer(if n == 0 { 429 } else { 200 });
            if n == 0 {
                a.retry_after = Some("7".into());
            }
            a
        }),
    );
    let (b, sink_b) = rig.sink("b", Box::new(|_, _| answer(200)));
    let first = tokio::spawn(async move { deliver(&a, items(&["a0"])).await });
    // Sink b's record comes a second after a's request was refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = tokio::spawn(async move { deliver(&b, items(&["b0"])).await });
    assert!(first.await.unwrap() && second.await.unwrap());
    let times = |s: &FakeSink| s.sent.lock().unwrap().iter().map(|(t, ..)| *t).collect::<Vec<_>>();
    let (ta, tb) = (times(&sink_a), times(&sink_b));
    assert_eq!(ta.len(), 2);
    assert!(
        ta[1] >= Duration::from_secs(7),
        "a's retry waited for Retry-After: {ta:?}"
    );
    assert!(ta[1] < Duration::from_millis(7500), "and no backoff on top: {ta:?}");
    assert!(
        tb[0] >= Duration::from_secs(7),
        "b waited for the client's pause too: {tb:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unauthorized_answer_pauses_delivery_and_says_auth_failing() {
    let rig = Rig::new();
    let (ctx, sink) = rig.sink("fake", Box::new(|_, n| answer(if n < 2 { 401 } else { 200 })));
    assert!(deliver(&ctx, items(&["e0", "e1"])).await);
    let sent = sink.sent.lock().unwrap().clone();
    let states: Vec<DestState> = sent.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(states, [DestState::Ok, DestState::AuthFailing, DestState::AuthFailing]);
    assert_eq!(rig.acks.sorted(), [0, 1]);
    assert_eq!(rig.gate.state(), DestState::Ok, "a success clears it");
    assert!(rig.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_waiting_lane_and_acknowledges_nothing_unconfirmed() {
    let rig = Rig::new();
    let (ctx, sink) = rig.sink("fake", Box::new(|_, _| answer(503)));
    let shutdown = rig.common.stop.clone();
    let task = tokio::spawn(async move { deliver(&ctx, items(&["e0"])).await });
    tokio::time::sleep(Duration::from_secs(60)).await;
    shutdown.trigger();
    assert!(!task.await.unwrap(), "stopped, not done");
    assert!(sizes(&sink).len() > 3, "it kept retrying until then");
    assert!(rig.acks.sorted().is_empty());
    assert!(rig.dead_letters().is_empty());
}

/// The reader routes by kind: a record no sink takes is dead-lettered (`no_sink`) and
/// acknowledged, and never reaches a sink; the others are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_sink_takes_is_dead_lettered_not_sent() {
    use crate::buffer::{Buffer, DiskBuffer, Entry};
    let rig = Rig::new();
    let data = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(
        &crate::config::BufferConfig::with_dir(data.path()),
        crate::metrics::Metrics::new().buffer,
    )
    .unwrap();
    buffer
        .append(vec![
            Entry::new(Kind::Interaction, "k", b"e0".to_vec()),
            Entry::new(Kind::Unknown(9), "u", b"from a newer version".to_vec()),
            Entry::new(Kind::Interaction, "k", b"e2".to_vec()),
        ])
        .await
        .unwrap();
    let (ctx, sink) = rig.sink("fake", Box::new(|_, _| answer(200)));
    let route = crate::dispatch::Route {
        sink: ctx.sink.clone(),
        delivery: ctx.delivery.clone(),
        gate: ctx.gate.clone(),
        dead: ctx.dead.clone(),
    };
    let shutdown = Shutdown::new();
    let supervisor = crate::supervisor::Supervisor::new(shutdown.clone(), crate::metrics::Metrics::new().task_failures);
    let dispatcher = crate::dispatch::Dispatcher::spawn(
        buffer.reader("dispatch").unwrap(),
        vec![route],
        rig.common.unroutable.clone(),
        crate::metrics::Metrics::new().sink,
        &shutdown,
        &supervisor,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while buffer.stats().cursor < 3 {
        assert!(std::time::Instant::now() < deadline, "not everything was settled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.trigger();
    dispatcher.drain(Duration::from_secs(5)).await;
    let sent: Vec<String> = sink
        .sent
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, p, _)| p.clone())
        .collect();
    assert_eq!(sent, ["e0", "e2"]);
    let letters =
        deadletter::read_file::<Interactions>(&deadletter::list::<Interactions>(rig.dir.path()).unwrap()[0].path)
            .unwrap()
            .0;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].seq, letters[0].sink.as_str(), letters[0].reason.as_str()),
        (1, "none", "no_sink")
    );
    assert_eq!(&letters[0].payload[..], b"from a newer version", "kept byte for byte");
}

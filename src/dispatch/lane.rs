//! A lane: one request in flight at a time, for the lane keys (interactions) hashed to it. The
//! same for every sink: the sink makes the body and reads the answer, the lane decides.
//!
//! The lane batches its items ([`Batcher`]) and delivers each batch to completion before the
//! next — so an interaction's events reach the cloud in order. A batch that is due by age but
//! cannot go yet (the destination is paused or paced, or full batches of other lanes are waiting
//! for the turn) keeps filling until it can: a rate-limited drain sends whole batches.
//! Delivering a batch means: wait for a turn at the [`super::gate::Gate`], send, then act on the
//! classified answer:
//!
//! - delivered: acknowledge everything the destination processed; records it returned as not
//!   processed but retryable are sent again (up to `max_entity_attempts`), the others
//!   dead-lettered;
//! - retry (429, 408, 5xx, 401/403 after a token refresh, no answer): wait `Retry-After` when
//!   given, else a capped exponential backoff with full jitter; a 429 or an authentication failure
//!   pauses the whole destination for that time;
//! - refused for good (other 4xx): a batch of more than one record answered 400, 413 or 422 is
//!   split in halves and each half sent on its own, so one bad event cannot take good ones down
//!   with it; a single refused record is dead-lettered with the status, message and correlation
//!   id.
//!
//! On shutdown the reader stops; the lane delivers what it holds (the request in flight, the batch
//! begun) and ends — unless the drain deadline comes first and stops it: whatever it had not
//! confirmed then stays unacknowledged in the buffer and is sent again after the restart
//! (at-least-once, same event ids).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::batch::{Batcher, Item};
use super::gate::DestState;
use super::{Context, Letter};
use crate::retry::Backoff;
use crate::sink::classify::{Outcome, RefusalReason, RetryReason, Verdict, classify};
use crate::sink::{Answer, SendError, Unprocessed};

/// In test builds only: a record whose part carries this text makes the lane that takes it
/// panic, so that a test can show what a failing lane does to the process.
#[cfg(test)]
pub(crate) const TEST_PANIC_MARK: &str = "test-lane-panic";

/// Now, on tokio's clock (which tests can pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Adds an item; delivers the batch it completes. False when stopped by shutdown.
async fn add(ctx: &Context, batcher: &mut Batcher, item: Item) -> bool {
    #[cfg(test)]
    if item
        .part
        .windows(TEST_PANIC_MARK.len())
        .any(|w| w == TEST_PANIC_MARK.as_bytes())
    {
        panic!("a lane fault injected by a test");
    }
    match batcher.push(item, now()) {
        Some(full) => deliver(ctx, full).await,
        None => true,
    }
}

/// Runs a lane until its channel closes (it then delivers what it holds) or the hard stop.
pub async fn run(ctx: std::sync::Arc<Context>, mut rx: mpsc::Receiver<Item>) {
    let d = &ctx.delivery;
    let mut batcher = Batcher::new(d.max_events, d.max_bytes, d.max_age, ctx.sink.envelope_bytes());
    let stop = &ctx.common.stop;
    // When a batch due by age deferred to others, the next look at the gate.
    let mut recheck: Option<Instant> = None;
    loop {
        // Take everything already queued first: items that waited behind a slow request must
        // fill the next batch, not each leave alone because their age ran out meanwhile.
        loop {
            match rx.try_recv() {
                Ok(item) => {
                    if !add(&ctx, &mut batcher, item).await {
                        return;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    finish(&ctx, &mut batcher).await;
                    return;
                }
            }
        }
        // A batch due by age waits for the gate too, filling meanwhile.
        let deadline = batcher
            .deadline()
            .map(|d| d.max(ctx.gate.ready_at()).max(recheck.unwrap_or(d)));
        tokio::select! {
            item = rx.recv() => {
                let Some(item) = item else {
                    finish(&ctx, &mut batcher).await;
                    return;
                };
                if !add(&ctx, &mut batcher, item).await {
                    return;
                }
            }
            _ = sleep_until_opt(deadline) => {
                if !ctx.gate.idle_turn_free() {
                    // Full batches are waiting for the turn, or another lane took it.
                    recheck = Some(now() + RECHECK);
                    continue;
                }
                recheck = None;
                if !deliver(&ctx, batcher.take()).await {
                    return;
                }
            }
            _ = stop.wait() => return,
        }
    }
}

/// The reader has stopped (shutdown): delivers what the lane holds now, without waiting for the
/// batch's age, until done or stopped at the drain deadline.
async fn finish(ctx: &Context, batcher: &mut Batcher) {
    if !batcher.is_empty() {
        deliver(ctx, batcher.take()).await;
    }
}

/// How often a batch due by age looks at the gate again while it defers to full batches.
const RECHECK: Duration = Duration::from_millis(10);

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

enum Part {
    Done,
    Split(Vec<Item>, Vec<Item>),
    Stopped,
}

/// Delivers a batch to completion; false when stopped by shutdown first.
pub async fn deliver(ctx: &Context, mut batch: Vec<Item>) -> bool {
    // Records whose partition was taken from this reader are the new owner's to send.
    let positions: Vec<_> = batch.iter().map(|i| i.position).collect();
    let mut owned = ctx.common.acker.claim(&positions).into_iter();
    batch.retain(|_| owned.next().unwrap_or(false));
    let mut parts = VecDeque::from([batch]);
    while let Some(part) = parts.pop_front() {
        if part.is_empty() {
            continue;
        }
        match send_part(ctx, part).await {
            Part::Done => {}
            Part::Split(a, b) => {
                parts.push_front(b);
                parts.push_front(a);
            }
            Part::Stopped => return false,
        }
    }
    true
}

/// Sleeps `d`; false when shutdown came first.
async fn pause(ctx: &Context, d: Duration) -> bool {
    ctx.common.stop.sleep(d).await
}

/// Sends `part` until it is settled: confirmed, dead-lettered, or split for the halves to be
/// sent on their own.
async fn send_part(ctx: &Context, mut part: Vec<Item>) -> Part {
    let d = &ctx.delivery;
    let mut backoff = Backoff::new(d.retry_initial, d.retry_max);
    loop {
        let answer = match request(ctx, &part).await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => {
                if !no_answer(ctx, e, backoff.next_delay(), part.len()).await {
                    return Part::Stopped;
                }
                continue;
            }
            None => return Part::Stopped,
        };
        observe(ctx, &answer);
        let verdict = classify(
            Outcome::Response {
                status: answer.status,
                retry_after: answer.retry_after.as_deref(),
                confirmed: answer.confirmed,
            },
            SystemTime::now(),
        );
        let corr = Some(answer.correlation_id.clone()).filter(|c| !c.is_empty());
        match verdict {
            Verdict::Delivered => {
                ctx.gate.succeeded();
                part = settle(ctx, part, answer.unprocessed, corr).await;
                if part.is_empty() {
                    return Part::Done;
                }
                if !pause(ctx, backoff.next_delay()).await {
                    return Part::Stopped;
                }
            }
            Verdict::Retry {
                after,
                pause_destination,
                reason,
            } => {
                let delay = after.unwrap_or_else(|| backoff.next_delay());
                if !retry_later(ctx, &answer, reason, delay, pause_destination, part.len(), corr).await {
                    return Part::Stopped;
                }
            }
            Verdict::DeadLetter { reason } => return refused(ctx, part, &answer, reason, corr).await,
        }
    }
}

/// Waits for a turn at the gate and sends the part; `None` when shutdown came first.
async fn request(ctx: &Context, part: &[Item]) -> Option<Result<Answer, SendError>> {
    let turn = ctx.gate.turn(&ctx.common.stop).await?;
    let parts: Vec<&[u8]> = part.iter().map(|i| &i.part[..]).collect();
    let body = ctx.sink.body(&parts);
    ctx.common
        .metrics
        .batch_events
        .with_label_values(&[ctx.sink.name()])
        .observe(part.len() as f64);
    let sent = tokio::select! {
        r = ctx.sink.send(body) => r,
        _ = ctx.common.stop.wait() => return None,
    };
    drop(turn);
    Some(sent)
}

/// No answer (no token, no connection, no answer in time): counts it, says so at the gate, and
/// waits `delay`; false when shutdown came first.
async fn no_answer(ctx: &Context, e: SendError, delay: Duration, records: usize) -> bool {
    let (sink, m) = (ctx.sink.name(), &ctx.common.metrics);
    if let SendError::Auth(e) = &e {
        // Refused (the client, its secret or its grants) apart from unavailable (an outage of
        // the login host): alerts tell the two apart.
        m.requests.with_label_values(&[sink, e.label()]).inc();
        m.retries.with_label_values(&[sink, "oauth"]).inc();
        let state = if e.is_retryable() {
            DestState::Retrying
        } else {
            DestState::AuthFailing
        };
        tracing::warn!(sink, error = %e, "no OAuth token; delivery waits");
        ctx.gate.failed(state, None, e.to_string(), None);
        return pause(ctx, delay).await;
    }
    let (outcome, label) = match e {
        SendError::Timeout => (Outcome::Timeout, "timeout"),
        _ => (Outcome::Connect, "connect"),
    };
    m.requests.with_label_values(&[sink, label]).inc();
    let Verdict::Retry { reason, .. } = classify(outcome, SystemTime::now()) else {
        unreachable!("no answer is always retried")
    };
    m.retries.with_label_values(&[sink, reason.label()]).inc();
    tracing::warn!(sink, error = %e, retry_in_ms = delay.as_millis() as u64, events = records, "request failed; retrying");
    ctx.gate.failed(DestState::Retrying, None, e.to_string(), None);
    pause(ctx, delay).await
}

/// Counts an answer and feeds its rate-limit headers to the gate.
fn observe(ctx: &Context, answer: &Answer) {
    if answer.local {
        return;
    }
    let (sink, m) = (ctx.sink.name(), &ctx.common.metrics);
    if let Some(rl) = answer.rate {
        ctx.gate.observe(rl);
        m.ratelimit_remaining
            .with_label_values(&[sink])
            .set(rl.remaining() as i64);
    }
    m.requests.with_label_values(&[sink, &answer.status.to_string()]).inc();
    m.request_seconds
        .with_label_values(&[sink])
        .observe(answer.elapsed.as_secs_f64());
}

/// An answer to try again after `delay` (pausing the whole gate for a 429 or an authentication
/// failure); false when shutdown came first.
#[allow(clippy::too_many_arguments)]
async fn retry_later(
    ctx: &Context,
    answer: &Answer,
    reason: RetryReason,
    delay: Duration,
    pause_destination: bool,
    records: usize,
    corr: Option<String>,
) -> bool {
    let sink = ctx.sink.name();
    ctx.common
        .metrics
        .retries
        .with_label_values(&[sink, reason.label()])
        .inc();
    if pause_destination {
        ctx.gate.pause(delay);
    }
    let state = if reason == RetryReason::Unauthorized {
        DestState::AuthFailing
    } else {
        DestState::Retrying
    };
    tracing::warn!(
        sink,
        status = answer.status,
        correlation_id = %answer.correlation_id,
        reason = reason.label(),
        retry_in_ms = delay.as_millis() as u64,
        events = records,
        message = %answer.message,
        "request not accepted; retrying"
    );
    ctx.gate
        .failed(state, Some(answer.status), answer.message.clone(), corr);
    pause(ctx, delay).await
}

/// A refusal for good: a part of several records answered 400, 413 or 422 is split in halves
/// (one bad record must not take good ones down with it); otherwise the part is dead-lettered.
async fn refused(
    ctx: &Context,
    mut part: Vec<Item>,
    answer: &Answer,
    reason: RefusalReason,
    corr: Option<String>,
) -> Part {
    ctx.gate
        .rejected(Some(answer.status), answer.message.clone(), corr.clone());
    if part.len() > 1 && matches!(answer.status, 400 | 413 | 422) {
        ctx.common
            .metrics
            .retries
            .with_label_values(&[ctx.sink.name(), "isolate"])
            .inc();
        let second = part.split_off(part.len() / 2);
        return Part::Split(part, second);
    }
    tracing::error!(
        sink = ctx.sink.name(),
        status = answer.status,
        correlation_id = %answer.correlation_id,
        reason = reason.label(),
        events = part.len(),
        message = %answer.message,
        "the destination refused the events; dead-lettering them"
    );
    let letters = part
        .into_iter()
        .map(|i| Letter::new(i, reason.label(), Some(answer.status), answer.message.clone()))
        .collect();
    if !ctx.dead_letter(letters, corr).await {
        return Part::Stopped;
    }
    Part::Done
}

/// Settles a delivered part: acknowledges what the destination processed, dead-letters what it
/// refused for good, and returns the records to send again.
async fn settle(ctx: &Context, part: Vec<Item>, unprocessed: Vec<Unprocessed>, corr: Option<String>) -> Vec<Item> {
    if unprocessed.is_empty() {
        ctx.confirm(&part);
        return Vec::new();
    }
    let mut flags: Vec<Option<Unprocessed>> = vec![None; part.len()];
    for u in unprocessed {
        if let Some(slot) = flags.get_mut(u.index) {
            *slot = Some(u);
        }
    }
    let mut confirmed = Vec::new();
    let mut retry = Vec::new();
    let mut dead = Vec::new();
    for (mut item, flag) in part.into_iter().zip(flags) {
        match flag {
            None => confirmed.push(item),
            Some(u) if u.retryable && item.attempts + 1 < ctx.delivery.max_entity_attempts => {
                item.attempts += 1;
                retry.push(item);
            }
            Some(u) => {
                let reason = u
                    .reason
                    .unwrap_or(if u.retryable { "retries_exhausted" } else { "rejected" });
                dead.push(Letter::new(item, reason, u.status, u.message));
            }
        }
    }
    ctx.confirm(&confirmed);
    if !dead.is_empty() {
        tracing::error!(sink = ctx.sink.name(), events = dead.len(), correlation_id = ?corr, "the destination refused some events of a batch; dead-lettering them");
        ctx.dead_letter(dead, corr).await;
    }
    if !retry.is_empty() {
        ctx.common
            .metrics
            .retries
            .with_label_values(&[ctx.sink.name(), "unprocessed"])
            .inc_by(retry.len() as u64);
    }
    retry
}

#[cfg(test)]
mod tests;

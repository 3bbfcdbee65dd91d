//! A lane: one request in flight at a time, for the interactions hashed to it.
//!
//! The lane batches its items ([`Batcher`]) and delivers each batch to completion before the
//! next — so an interaction's events reach the cloud in order. A batch that is due by age but
//! cannot go yet (the destination is paused or paced, or full batches of other lanes are waiting
//! for the turn) keeps filling until it can: a rate-limited drain sends whole batches.
//! Delivering a batch means: wait for a turn at the [`super::gate::Gate`], send, then act on the
//! classified answer:
//!
//! - delivered: acknowledge everything the cloud processed; entities returned in
//!   `unprocessedEntities` as retryable are sent again (up to `max_entity_attempts`), the others
//!   dead-lettered;
//! - retry (429, 408, 5xx, 401/403 after a token refresh, no answer): wait `Retry-After` when
//!   given, else a capped exponential backoff with full jitter; a 429 or an authentication failure
//!   pauses the whole destination for that time;
//! - refused for good (other 4xx): a batch of more than one entity answered 400, 413 or 422 is
//!   split in halves and each half sent on its own, so one bad event cannot take good ones down
//!   with it; a single refused entity is dead-lettered with the status, message and correlation
//!   id.
//!
//! On shutdown the lane stops at once; whatever it had not confirmed stays unacknowledged in the
//! buffer and is sent again after the restart (at-least-once, same event ids).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::Context;
use super::batch::{Batcher, ENVELOPE, Item};
use super::gate::DestState;
use crate::retry::Backoff;
use crate::sink::classify::{Outcome, RetryReason, Verdict, classify};
use crate::sink::journey::{SendError, Unprocessed};

/// In test builds only: an entity carrying this text makes the lane that takes it panic, so that
/// a test can show what a failing lane does to the process.
#[cfg(test)]
pub(crate) const TEST_PANIC_MARK: &str = "test-lane-panic";

/// Adds an item; delivers the batch it completes. False when stopped by shutdown.
async fn add(ctx: &Context, batcher: &mut Batcher, item: Item) -> bool {
    #[cfg(test)]
    if item
        .json
        .windows(TEST_PANIC_MARK.len())
        .any(|w| w == TEST_PANIC_MARK.as_bytes())
    {
        panic!("a lane fault injected by a test");
    }
    match batcher.push(item, Instant::now()) {
        Some(full) => deliver(ctx, full).await,
        None => true,
    }
}

/// Runs a lane until its channel closes or shutdown.
pub async fn run(ctx: std::sync::Arc<Context>, mut rx: mpsc::Receiver<Item>) {
    let mut batcher = Batcher::new(ctx.cfg.max_events, ctx.cfg.max_bytes, ctx.cfg.max_age());
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
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        // A batch due by age waits for the gate too, filling meanwhile.
        let deadline = batcher
            .deadline()
            .map(|d| d.max(ctx.gate.ready_at()).max(recheck.unwrap_or(d)));
        tokio::select! {
            item = rx.recv() => {
                let Some(item) = item else { return };
                if !add(&ctx, &mut batcher, item).await {
                    return;
                }
            }
            _ = sleep_until_opt(deadline) => {
                if !ctx.gate.idle_turn_free() {
                    // Full batches are waiting for the turn, or another lane took it.
                    recheck = Some(Instant::now() + RECHECK);
                    continue;
                }
                recheck = None;
                if !deliver(&ctx, batcher.take()).await {
                    return;
                }
            }
            _ = ctx.shutdown.wait() => return,
        }
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
pub async fn deliver(ctx: &Context, batch: Vec<Item>) -> bool {
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

fn body_of(part: &[Item]) -> bytes::Bytes {
    let mut body = Vec::with_capacity(ENVELOPE + part.iter().map(|i| i.json.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"entities\":[");
    for (i, item) in part.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.json);
    }
    body.extend_from_slice(b"]}");
    bytes::Bytes::from(body)
}

/// Sleeps `d`; false when shutdown came first.
async fn pause(ctx: &Context, d: Duration) -> bool {
    ctx.shutdown.sleep(d).await
}

async fn send_part(ctx: &Context, mut part: Vec<Item>) -> Part {
    let sink = crate::sink::journey::NAME;
    let mut backoff = Backoff::new(
        Duration::from_millis(ctx.cfg.retry_initial_ms),
        Duration::from_millis(ctx.cfg.retry_max_ms),
    );
    loop {
        let Some(turn) = ctx.gate.turn(&ctx.shutdown).await else {
            return Part::Stopped;
        };
        let body = body_of(&part);
        ctx.metrics
            .batch_events
            .with_label_values(&[sink])
            .observe(part.len() as f64);
        let sent = tokio::select! {
            r = ctx.sink.send(body) => r,
            _ = ctx.shutdown.wait() => return Part::Stopped,
        };
        drop(turn);
        let answer = match sent {
            Ok(a) => a,
            Err(SendError::Auth(e)) => {
                ctx.metrics.requests.with_label_values(&[sink, "oauth"]).inc();
                ctx.metrics.retries.with_label_values(&[sink, "oauth"]).inc();
                let state = if e.is_retryable() {
                    DestState::Retrying
                } else {
                    DestState::AuthFailing
                };
                tracing::warn!(error = %e, "no OAuth token; delivery waits");
                ctx.gate.failed(state, None, e.to_string(), None);
                if !pause(ctx, backoff.next_delay()).await {
                    return Part::Stopped;
                }
                continue;
            }
            Err(e) => {
                let (outcome, label) = match e {
                    SendError::Timeout => (Outcome::Timeout, "timeout"),
                    _ => (Outcome::Connect, "connect"),
                };
                ctx.metrics.requests.with_label_values(&[sink, label]).inc();
                let Verdict::Retry { reason, .. } = classify(outcome, SystemTime::now()) else {
                    unreachable!("no answer is always retried")
                };
                ctx.metrics.retries.with_label_values(&[sink, reason.label()]).inc();
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, events = part.len(), "request failed; retrying");
                ctx.gate.failed(DestState::Retrying, None, e.to_string(), None);
                if !pause(ctx, delay).await {
                    return Part::Stopped;
                }
                continue;
            }
        };
        if let Some(rl) = answer.rate {
            ctx.gate.observe(rl);
            ctx.metrics
                .ratelimit_remaining
                .with_label_values(&[sink])
                .set(rl.remaining() as i64);
        }
        ctx.metrics
            .requests
            .with_label_values(&[sink, &answer.status.to_string()])
            .inc();
        ctx.metrics
            .request_seconds
            .with_label_values(&[sink])
            .observe(answer.elapsed.as_secs_f64());
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
                if answer.unprocessed.is_empty() {
                    ctx.confirm(&part);
                    return Part::Done;
                }
                let retry = settle_partial(ctx, part, answer.unprocessed, corr).await;
                if retry.is_empty() {
                    return Part::Done;
                }
                ctx.metrics
                    .retries
                    .with_label_values(&[sink, "unprocessed"])
                    .inc_by(retry.len() as u64);
                part = retry;
                if !pause(ctx, backoff.next_delay()).await {
                    return Part::Stopped;
                }
            }
            Verdict::Retry {
                after,
                pause_destination,
                reason,
            } => {
                ctx.metrics.retries.with_label_values(&[sink, reason.label()]).inc();
                let delay = after.unwrap_or_else(|| backoff.next_delay());
                if pause_destination {
                    ctx.gate.pause(delay);
                }
                let state = if reason == RetryReason::Unauthorized {
                    DestState::AuthFailing
                } else {
                    DestState::Retrying
                };
                tracing::warn!(
                    status = answer.status,
                    correlation_id = %answer.correlation_id,
                    reason = reason.label(),
                    retry_in_ms = delay.as_millis() as u64,
                    events = part.len(),
                    message = %answer.message,
                    "request not accepted; retrying"
                );
                ctx.gate
                    .failed(state, Some(answer.status), answer.message.clone(), corr);
                if !pause(ctx, delay).await {
                    return Part::Stopped;
                }
            }
            Verdict::DeadLetter { reason } => {
                ctx.gate
                    .rejected(Some(answer.status), answer.message.clone(), corr.clone());
                if part.len() > 1 && matches!(answer.status, 400 | 413 | 422) {
                    ctx.metrics.retries.with_label_values(&[sink, "isolate"]).inc();
                    let second = part.split_off(part.len() / 2);
                    return Part::Split(part, second);
                }
                tracing::error!(
                    status = answer.status,
                    correlation_id = %answer.correlation_id,
                    reason = reason.label(),
                    events = part.len(),
                    message = %answer.message,
                    "Genesys Cloud refused the events; dead-lettering them"
                );
                let letters = part
                    .into_iter()
                    .map(|i| (i, reason.label(), Some(answer.status), answer.message.clone()))
                    .collect();
                if !ctx.dead_letter(letters, corr).await {
                    return Part::Stopped;
                }
                return Part::Done;
            }
        }
    }
}

/// Acknowledges what a partly successful request processed and dead-letters what it refused for
/// good; returns the items to send again.
async fn settle_partial(
    ctx: &Context,
    part: Vec<Item>,
    unprocessed: Vec<Unprocessed>,
    corr: Option<String>,
) -> Vec<Item> {
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
            Some(u) if u.retryable && item.attempts + 1 < ctx.cfg.max_entity_attempts => {
                item.attempts += 1;
                retry.push(item);
            }
            Some(u) => {
                let reason = if u.retryable { "retries_exhausted" } else { "rejected" };
                dead.push((item, reason, u.status, u.message));
            }
        }
    }
    ctx.confirm(&confirmed);
    if !dead.is_empty() {
        tracing::error!(events = dead.len(), correlation_id = ?corr, "Genesys Cloud refused some events of a batch; dead-lettering them");
        ctx.dead_letter(dead, corr).await;
    }
    retry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_joins_entities() {
        let item = |j: &'static str| Item {
            seq: 0,
            payload: bytes::Bytes::new(),
            json: bytes::Bytes::from_static(j.as_bytes()),
            attempts: 0,
        };
        let body = body_of(&[item("{\"id\":\"a\"}"), item("{\"id\":\"b\"}")]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["entities"][1]["id"], "b");
    }
}

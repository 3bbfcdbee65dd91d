//! [`Gate`]: one OAuth client's door to Genesys Cloud, shared by the lanes of every sink that
//! uses the client (the cloud limits requests per client, not per destination).
//!
//! Every request waits at the gate for two things: the end of a client-wide pause (set by a
//! 429's `Retry-After`, or by an authentication failure) and its turn under the pacing that
//! spreads the rate-limit window's remaining allowance evenly ([`Pacer`]). The gate also keeps
//! what `/health` shows about the destinations behind it: their state, when a pause ends, the
//! last error and its correlation id.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::sink::ratelimit::{Pacer, RateLimit};
use crate::timefmt;

/// What a destination is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DestState {
    /// The last request succeeded (or none was needed yet).
    Ok,
    /// The last request failed and is being retried.
    Retrying,
    /// Rate limited: nothing is sent until the pause ends.
    Paused,
    /// Genesys Cloud refused the credentials or the token.
    AuthFailing,
}

/// The last failure, for `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    /// When, ISO-8601.
    pub at: String,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// What went wrong (never a secret).
    pub message: String,
    /// `ININ-Correlation-Id`, when there was an answer.
    pub correlation_id: Option<String>,
}

/// The destination's part of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationHealth {
    /// The sink's name.
    pub name: &'static str,
    /// State now.
    pub state: DestState,
    /// While paused: when the pause ends, ISO-8601.
    pub paused_until: Option<String>,
    /// Requests in flight.
    pub in_flight: u64,
    /// Requests left in the rate-limit window, as last reported.
    pub ratelimit_remaining: Option<u64>,
    /// The last success, ISO-8601.
    pub last_success: Option<String>,
    /// The last failure.
    pub last_error: Option<LastError>,
}

struct Inner {
    pacer: Pacer,
    next_send: Instant,
    paused_until: Option<Instant>,
    in_flight: u64,
    /// Requests waiting for their turn.
    waiting: u64,
    state: DestState,
    last_success: Option<SystemTime>,
    last_error: Option<LastError>,
}

/// One destination's gate.
pub struct Gate {
    inner: Mutex<Inner>,
}

/// A request's place at the gate; dropping it marks the request answered.
pub struct Turn<'a> {
    gate: &'a Gate,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut g = self.gate.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
    }
}

/// How far behind its schedule a paced stream of requests may fall and still keep it: a turn
/// granted late — the timer wakes up to a millisecond after its deadline, an answer took longer
/// — counts from when it was due, so that lateness does not add up over thousands of requests
/// (at 100 requests a second, a millisecond late each time is a tenth of the rate limit unused).
/// At most one interval, and after an idle time the schedule starts afresh.
pub const PACING_SLACK: Duration = Duration::from_millis(5);

/// When the request after one granted at `now` may go: `interval` after the turn was due
/// (`due`, the previous schedule), or after `now` when that was longer ago than the slack.
fn next_send(due: Instant, now: Instant, interval: Duration) -> Instant {
    let earliest = now.checked_sub(interval.min(PACING_SLACK)).unwrap_or(now);
    due.max(earliest) + interval
}

/// Now, on tokio's clock (which tests may pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn iso(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    timefmt::format_timestamp_ms(ms)
}

impl Gate {
    /// A gate using `share` of the rate limit.
    pub fn new(share: f64) -> Self {
        Gate {
            inner: Mutex::new(Inner {
                pacer: Pacer::new(share),
                next_send: now(),
                paused_until: None,
                in_flight: 0,
                waiting: 0,
                state: DestState::Ok,
                last_success: None,
                last_error: None,
            }),
        }
    }

    /// Paces to `share` of the rate limit from now on (a reload).
    pub fn set_share(&self, share: f64) {
        self.lock().pacer.set_share(share);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    /// Waits for a pause to end and for this request's turn; `None` when shutting down first.
    pub async fn turn(&self, shutdown: &Shutdown) -> Option<Turn<'_>> {
        struct Waiting<'a>(&'a Gate);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let mut g = self.0.lock();
                g.waiting = g.waiting.saturating_sub(1);
            }
        }
        self.lock().waiting += 1;
        let _waiting = Waiting(self);
        loop {
            let wait_until = {
                let mut g = self.lock();
                let now = now();
                let until = g.paused_until.filter(|t| *t > now).unwrap_or(now).max(g.next_send);
                if until <= now {
                    let interval = g.pacer.interval(now, g.in_flight);
                    g.next_send = next_send(g.next_send, now, interval);
                    g.in_flight += 1;
                    if g.state == DestState::Paused {
                        g.state = DestState::Retrying;
                    }
                    return Some(Turn { gate: self });
                }
                until
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wait_until.into()) => {}
                _ = shutdown.wait() => return None,
            }
        }
    }

    /// The earliest moment the next request may go (the end of a pause, or the next paced turn).
    pub fn ready_at(&self) -> Instant {
        let g = self.lock();
        g.paused_until.unwrap_or(g.next_send).max(g.next_send)
    }

    /// Whether a request may go now with nobody else waiting for the turn: a batch that is only
    /// due by age goes then, and otherwise leaves the turn to full batches and keeps filling.
    pub fn idle_turn_free(&self) -> bool {
        let g = self.lock();
        let ready = g.paused_until.unwrap_or(g.next_send).max(g.next_send);
        g.waiting == 0 && ready <= now()
    }

    /// Records the rate-limit headers of an answer received now.
    pub fn observe(&self, rl: RateLimit) {
        self.lock().pacer.observe(rl, now());
    }

    /// Stops every request of the destination for `d`.
    pub fn pause(&self, d: Duration) {
        let mut g = self.lock();
        let until = now() + d;
        if g.paused_until.is_none_or(|t| t < until) {
            g.paused_until = Some(until);
        }
        if g.state != DestState::AuthFailing {
            g.state = DestState::Paused;
        }
    }

    /// A request succeeded (a pause another request caused still stands).
    pub fn succeeded(&self) {
        let mut g = self.lock();
        let paused = g.paused_until.is_some_and(|t| t > now());
        if !paused {
            g.state = DestState::Ok;
        }
        g.last_success = Some(SystemTime::now());
    }

    /// A request failed; `state` is what the destination now is.
    pub fn failed(&self, state: DestState, status: Option<u16>, message: String, correlation_id: Option<String>) {
        let mut g = self.lock();
        if !(g.state == DestState::Paused && state == DestState::Retrying) {
            g.state = state;
        }
        g.last_error = Some(LastError {
            at: iso(SystemTime::now()),
            status,
            message,
            correlation_id: correlation_id.filter(|c| !c.is_empty()),
        });
    }

    /// The cloud refused events for good: recorded as the last error; the destination itself
    /// works, so its state stays.
    pub fn rejected(&self, status: Option<u16>, message: String, correlation_id: Option<String>) {
        let mut g = self.lock();
        g.last_error = Some(LastError {
            at: iso(SystemTime::now()),
            status,
            message,
            correlation_id: correlation_id.filter(|c| !c.is_empty()),
        });
    }

    /// The state now.
    pub fn state(&self) -> DestState {
        self.lock().state
    }

    /// The `/health` view.
    pub fn health(&self, name: &'static str) -> DestinationHealth {
        let g = self.lock();
        let now = now();
        let paused_until = g
            .paused_until
            .filter(|t| *t > now)
            .map(|t| iso(SystemTime::now() + (t - now)));
        DestinationHealth {
            name,
            state: if paused_until.is_none() && g.state == DestState::Paused {
                DestState::Retrying
            } else {
                g.state
            },
            paused_until,
            in_flight: g.in_flight,
            ratelimit_remaining: g.pacer.last().map(|rl| rl.remaining()),
            last_success: g.last_success.map(iso),
            last_error: g.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_turn_until_it_ends() {
        let gate = Gate::new(1.0);
        let sd = Shutdown::new();
        drop(gate.turn(&sd).await.unwrap());
        gate.pause(Duration::from_secs(7));
        assert_eq!(gate.health("t").state, DestState::Paused);
        assert!(gate.health("t").paused_until.is_some());
        let t0 = tokio::time::Instant::now();
        let turn = gate.turn(&sd).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_secs(7), "{:?}", t0.elapsed());
        assert_eq!(gate.health("t").in_flight, 1);
        drop(turn);
        assert_eq!(gate.health("t").in_flight, 0);
        gate.succeeded();
        assert_eq!(gate.health("t").state, DestState::Ok);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait() {
        let gate = Gate::new(1.0);
        let sd = Shutdown::new();
        gate.pause(Duration::from_secs(3600));
        sd.trigger();
        assert!(gate.turn(&sd).await.is_none());
    }

    #[test]
    fn a_late_turn_keeps_the_schedule_within_the_slack() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Granted 1 ms after it was due: the next is due one interval after the schedule.
        assert_eq!(next_send(t0, t0 + ms(1), ms(10)), t0 + ms(10));
        // Over a thousand turns each a millisecond late, the schedule holds.
        let mut due = t0;
        for _ in 0..1000 {
            due = next_send(due, due + ms(1), ms(10));
        }
        assert_eq!(due, t0 + ms(10_000));
        // After an idle time: one interval from now, less the slack at most.
        let idle = t0 + Duration::from_secs(60);
        assert_eq!(next_send(t0, idle, ms(10)), idle - PACING_SLACK + ms(10));
        // A short interval gives no more than itself.
        assert_eq!(next_send(t0, idle, ms(2)), idle);
    }

    #[test]
    fn failures_are_reported_without_empty_correlation_ids() {
        let gate = Gate::new(1.0);
        gate.failed(DestState::AuthFailing, Some(401), "refused".into(), Some(String::new()));
        let h = gate.health("t");
        assert_eq!(h.state, DestState::AuthFailing);
        let e = h.last_error.unwrap();
        assert_eq!((e.status, e.correlation_id), (Some(401), None));
    }
}

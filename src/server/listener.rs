//! The accept loop: HTTP/1 connections under a cap, with idle, header and shutdown handling.
//!
//! Promises:
//! - At most `max_connections` connections are open. At the cap, a new connection closes the
//!   oldest one with no request in flight (an idle keep-alive, or a client that connected and
//!   sent nothing or only part of its headers) and takes its place; only when every connection
//!   has a request in flight is the new one refused. So a flood of idle connections can never
//!   keep `/health`, `/metrics` or a real sender out.
//! - A connection with no request in flight for `idle_timeout` is closed; headers that start
//!   but do not finish within `header_timeout` close it too.
//! - Running out of file descriptors on `accept` (EMFILE, ENFILE) closes the oldest idle
//!   connection to free one, and the loop carries on: the listener never stops serving.
//! - On shutdown: no new connections, idle ones close, requests in flight finish and are
//!   answered, then [`serve`] returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::ServerMetrics;
use crate::shutdown::Shutdown;

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// Time allowed for a request's headers once they start.
    pub header_timeout: Duration,
}

/// What the accept loop knows of one connection.
struct Activity {
    /// Requests being handled now.
    in_flight: AtomicUsize,
    /// When the last request started or finished (ms since the listener started).
    last_ms: AtomicU64,
}

struct Conn {
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

/// Open connections by accept order (oldest first).
#[derive(Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, Conn>,
}

impl Table {
    /// Closes the oldest connection with no request in flight; false if there is none.
    fn evict_oldest_idle(&mut self) -> bool {
        let victim = self
            .open
            .iter()
            .find(|(_, c)| c.activity.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.open.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Whether an accept error means the process (or system) is out of file descriptors.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Serves `router` on `listener` until `shutdown` fires and every request in flight has been
/// answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    limits: Limits,
    metrics: ServerMetrics,
) -> std::io::Result<()> {
    let started = Instant::now();
    let table = Arc::new(Mutex::new(Table::default()));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                metrics.accept_errors.inc();
                let freed = out_of_descriptors(&e) && lock(&table).evict_oldest_idle();
                if freed {
                    metrics.closed.with_label_values(&["evicted"]).inc();
                }
                tracing::warn!(error = %e, freed_idle_connection = freed, "accept failed");
                // Give the closed connection's task a moment to let go of its descriptor (or the
                // system a moment to recover) instead of spinning on the same error.
                tokio::time::sleep(Duration::from_millis(if freed { 1 } else { 20 })).await;
                continue;
            }
        };
        let (id, activity, close) = {
            let mut t = lock(&table);
            if t.open.len() >= limits.max_connections {
                if t.evict_oldest_idle() {
                    metrics.closed.with_label_values(&["evicted"]).inc();
                } else {
                    metrics.closed.with_label_values(&["refused"]).inc();
                    drop(stream);
                    continue;
                }
            }
            let id = t.next_id;
            t.next_id += 1;
            let activity = Arc::new(Activity {
                in_flight: AtomicUsize::new(0),
                last_ms: AtomicU64::new(started.elapsed().as_millis() as u64),
            });
            let close = Arc::new(Notify::new());
            t.open.insert(
                id,
                Conn {
                    activity: activity.clone(),
                    close: close.clone(),
                },
            );
            (id, activity, close)
        };
        metrics.connections.inc();
        let conn = ConnTask {
            router: router.clone(),
            shutdown: shutdown.clone(),
            limits,
            started,
            activity,
            close,
            metrics: metrics.clone(),
        };
        let table = table.clone();
        tasks.spawn(async move {
            conn.run(stream).await;
            lock(&table).open.remove(&id);
        });
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    crate::locks::lock(t)
}

/// Marks a request in flight on its connection for as long as it lives.
struct InFlight {
    activity: Arc<Activity>,
    started: Instant,
}

impl InFlight {
    fn new(activity: Arc<Activity>, started: Instant) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity
            .last_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Release);
        InFlight { activity, started }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity
            .last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's task.
struct ConnTask {
    router: Router,
    shutdown: Shutdown,
    limits: Limits,
    started: Instant,
    activity: Arc<Activity>,
    close: Arc<Notify>,
    metrics: ServerMetrics,
}

impl ConnTask {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (router, activity, started) = (self.router.clone(), self.activity.clone(), self.started);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::new(activity.clone(), started);
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                drop(guard);
                resp
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut stopping = false;
        let idle_ms = self.limits.idle_timeout.as_millis() as u64;
        loop {
            // When the connection would be idle for too long if nothing happens meanwhile.
            let last = self.activity.last_ms.load(Ordering::Acquire);
            let due = self.started + Duration::from_millis(last + idle_ms);
            tokio::select! {
                _ = conn.as_mut() => break,
                _ = self.close.notified() => break,
                _ = self.shutdown.wait(), if !stopping => {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
                _ = tokio::time::sleep_until(due.into()) => {
                    let now = self.started.elapsed().as_millis() as u64;
                    let last = self.activity.last_ms.load(Ordering::Acquire);
                    if self.activity.in_flight.load(Ordering::Acquire) == 0 && now >= last + idle_ms {
                        self.metrics.closed.with_label_values(&["idle"]).inc();
                        break;
                    }
                }
            }
        }
        self.metrics.connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(in_flight: usize) -> (Conn, Arc<Notify>) {
        let close = Arc::new(Notify::new());
        (
            Conn {
                activity: Arc::new(Activity {
                    in_flight: AtomicUsize::new(in_flight),
                    last_ms: AtomicU64::new(0),
                }),
                close: close.clone(),
            },
            close,
        )
    }

    #[tokio::test]
    async fn eviction_takes_the_oldest_idle_connection_only() {
        let mut t = Table::default();
        let (busy, _) = conn(1);
        let (idle_old, old_close) = conn(0);
        let (idle_new, _) = conn(0);
        t.open.insert(0, busy);
        t.open.insert(1, idle_old);
        t.open.insert(2, idle_new);
        assert!(t.evict_oldest_idle());
        assert_eq!(t.open.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        // The evicted connection's task is told to close (the permit is stored).
        tokio::time::timeout(Duration::from_secs(1), old_close.notified())
            .await
            .expect("told to close");
        assert!(t.evict_oldest_idle());
        assert!(
            !t.evict_oldest_idle(),
            "a connection with a request in flight is never evicted"
        );
        assert_eq!(t.open.len(), 1);
    }
}

//! The hand-off from appenders to the writer thread.
//!
//! A mutex-protected vector that the writer swaps out whole: a group of requests costs the writer
//! one lock, not one channel operation each, and an appender's enqueue is a lock, a push and (only
//! when the writer sleeps) an unpark. Bounded: at `cap` queued requests appenders wait for room,
//! which is how backpressure reaches the sources.
//!
//! No lost wake-ups: the writer announces that it is about to park *before* its last look at the
//! queue, and an appender looks at that announcement *after* its push; whichever of the two
//! critical sections comes second sees the other's write. A bounded park is a second safety net.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use tokio::sync::Notify;

use super::writer::Cmd;

/// Longest the writer parks before looking at the queue again on its own.
const PARK_AT_MOST: Duration = Duration::from_millis(50);

/// Why a push did not happen.
pub enum Full {
    /// The queue is closed for good.
    Closed(Cmd),
    /// No room right now.
    Room(Cmd),
}

struct Inner {
    items: Vec<Cmd>,
    closed: bool,
}

/// The request queue.
pub struct Queue {
    inner: Mutex<Inner>,
    space: Notify,
    writer: OnceLock<Thread>,
    parked: AtomicBool,
    /// Requests queued, readable without the lock (so a spinning writer does not contend).
    queued: AtomicUsize,
    cap: usize,
}

impl Queue {
    /// A queue holding at most `cap` requests.
    pub fn new(cap: usize) -> Self {
        Queue {
            inner: Mutex::new(Inner {
                items: Vec::with_capacity(cap.min(1024)),
                closed: false,
            }),
            space: Notify::new(),
            writer: OnceLock::new(),
            parked: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }

    /// Called once by the writer thread, so appenders can wake it.
    pub fn register_writer(&self) {
        let _ = self.writer.set(std::thread::current());
    }

    fn wake_writer(&self) {
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.writer.get()
        {
            t.unpark();
        }
    }

    /// Enqueues a request, waiting while the queue is full. Gives it back if the queue is closed.
    pub async fn push(&self, cmd: Cmd) -> Result<(), Cmd> {
        let mut cmd = match self.try_push_inner(cmd, None) {
            Ok(()) => return Ok(()),
            Err(Full::Closed(c)) => return Err(c),
            Err(Full::Room(c)) => c,
        };
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Registered while holding the lock (inside try_push): the writer's next take
            // notifies us.
            cmd = match self.try_push_inner(cmd, Some(notified.as_mut())) {
                Ok(()) => return Ok(()),
                Err(Full::Closed(c)) => return Err(c),
                Err(Full::Room(c)) => c,
            };
            notified.await;
        }
    }

    /// Enqueues a request if there is room now.
    pub fn try_push(&self, cmd: Cmd) -> Result<(), Full> {
        self.try_push_inner(cmd, None)
    }

    fn try_push_inner(
        &self,
        cmd: Cmd,
        waiter: Option<std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>>,
    ) -> Result<(), Full> {
        let mut q = self.lock();
        if q.closed {
            return Err(Full::Closed(cmd));
        }
        if q.items.len() >= self.cap {
            if let Some(w) = waiter {
                w.enable();
            }
            return Err(Full::Room(cmd));
        }
        q.items.push(cmd);
        self.queued.store(q.items.len(), Ordering::Release);
        drop(q);
        self.wake_writer();
        Ok(())
    }

    /// Enqueues a final request regardless of room and closes the queue to further pushes.
    /// Gives it back if the queue was already closed.
    pub fn close_with(&self, cmd: Cmd) -> Result<(), Cmd> {
        let mut q = self.lock();
        if q.closed {
            return Err(cmd);
        }
        q.items.push(cmd);
        q.closed = true;
        self.queued.store(q.items.len(), Ordering::Release);
        drop(q);
        self.wake_writer();
        self.space.notify_waiters();
        Ok(())
    }

    /// Requests queued now (without taking the lock).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Moves everything queued into `out` without waiting; whether anything was taken.
    pub fn try_take(&self, out: &mut Vec<Cmd>) -> bool {
        if self.queued.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut q = self.lock();
        self.queued.store(0, Ordering::Release);
        if q.items.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(&mut q.items, out);
        } else {
            out.append(&mut q.items);
        }
        drop(q);
        self.space.notify_waiters();
        true
    }

    /// Moves everything queued into `out`, parking until there is at least one request.
    /// Returns false once the queue is closed and empty.
    pub fn take(&self, out: &mut Vec<Cmd>) -> bool {
        loop {
            if self.try_take(out) {
                return true;
            }
            self.parked.store(true, Ordering::SeqCst);
            let (empty, closed) = {
                let q = self.lock();
                (q.items.is_empty(), q.closed)
            };
            if empty && closed {
                self.parked.store(false, Ordering::SeqCst);
                return false;
            }
            if empty {
                std::thread::park_timeout(PARK_AT_MOST);
            }
            self.parked.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn close_cmd() -> Cmd {
        Cmd::Close {
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn a_parked_writer_is_woken_and_takes_in_order() {
        let q = Arc::new(Queue::new(8));
        let (tx, rx) = std::sync::mpsc::channel();
        let wq = q.clone();
        let writer = std::thread::spawn(move || {
            wq.register_writer();
            let mut seen = 0;
            let mut out = Vec::new();
            while wq.take(&mut out) {
                seen += out.len();
                out.clear();
                let _ = tx.send(seen);
            }
            seen
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for _ in 0..100 {
            let (reply, _) = tokio::sync::oneshot::channel();
            rt.block_on(q.push(Cmd::Append {
                records: vec![],
                bytes: 0,
                reply,
            }))
            .ok()
            .unwrap();
        }
        assert!(q.close_with(close_cmd()).is_ok());
        assert!(q.close_with(close_cmd()).is_err(), "closed once");
        assert_eq!(writer.join().unwrap(), 101);
        assert!(rx.iter().last().unwrap() == 101);
    }

    #[test]
    fn a_full_queue_makes_appenders_wait_for_room() {
        let q = Arc::new(Queue::new(2));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let pushes = {
            let q = q.clone();
            rt.spawn(async move {
                for _ in 0..5 {
                    let (reply, _) = tokio::sync::oneshot::channel();
                    q.push(Cmd::Append {
                        records: vec![],
                        bytes: 0,
                        reply,
                    })
                    .await
                    .ok()
                    .unwrap();
                }
            })
        };
        q.register_writer();
        let mut taken = 0;
        let mut out = Vec::new();
        while taken < 5 {
            assert!(q.take(&mut out));
            assert!(out.len() <= 2, "never more than the cap queued");
            taken += out.len();
            out.clear();
        }
        rt.block_on(pushes).unwrap();
    }
}

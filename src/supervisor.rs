//! The supervisor: every long-running task of the process runs under it, so that nothing fails
//! silently.
//!
//! A task that panics, or returns before shutdown was asked for, is a failure: it is logged with
//! the task's name and why, counted in `conduit_task_failures_total{task}`, turns `/health` to
//! `failing` (naming the task), and stops the process — shutdown is triggered and the process
//! exits non-zero — so that its service manager restarts it with everything in a known state. A
//! task that returns after shutdown was asked for has simply finished.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::shutdown::Shutdown;

/// Runs and watches the process's long-running tasks.
#[derive(Clone)]
pub struct Supervisor {
    shutdown: Shutdown,
    failure: Arc<Mutex<Option<String>>>,
    failures: prometheus::IntCounterVec,
}

impl Supervisor {
    /// A supervisor that stops the process through `shutdown` and counts in `failures`
    /// (labelled by task).
    pub fn new(shutdown: Shutdown, failures: prometheus::IntCounterVec) -> Self {
        Supervisor {
            shutdown,
            failure: Arc::default(),
            failures,
        }
    }

    /// Runs `task` as the long-running task `name`; the handle completes when it has.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = tokio::spawn(task);
        let me = self.clone();
        tokio::spawn(async move {
            match inner.await {
                Ok(()) if me.shutdown.is_triggered() => {}
                Ok(()) => me.fail(name, "it stopped on its own".to_string()),
                Err(e) if e.is_panic() => me.fail(name, format!("it panicked: {}", panic_text(e.into_panic()))),
                Err(e) => me.fail(name, format!("it was cancelled: {e}")),
            }
        })
    }

    /// Records that `task` failed and stops the process.
    pub fn fail(&self, task: &str, why: String) {
        tracing::error!(task, reason = %why, "a task of the conduit failed; stopping so that the service manager restarts it");
        self.failures.with_label_values(&[task]).inc();
        let mut f = crate::locks::lock(&self.failure);
        if f.is_none() {
            *f = Some(format!("task {task}: {why}"));
        }
        drop(f);
        self.shutdown.trigger();
    }

    /// The first failure, if any: the process is then stopping and will exit non-zero.
    pub fn failure(&self) -> Option<String> {
        crate::locks::lock(&self.failure).clone()
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> (Supervisor, Shutdown) {
        let shutdown = Shutdown::new();
        let failures = prometheus::IntCounterVec::new(prometheus::Opts::new("f", "f"), &["task"]).unwrap();
        (Supervisor::new(shutdown.clone(), failures), shutdown)
    }

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_stops_the_process() {
        let (s, shutdown) = supervisor();
        s.spawn("lane", async { panic!("boom") }).await.unwrap();
        assert!(shutdown.is_triggered());
        assert_eq!(s.failure().as_deref(), Some("task lane: it panicked: boom"));
        assert_eq!(s.failures.with_label_values(&["lane"]).get(), 1);

        let (s, shutdown) = supervisor();
        s.spawn("reader", async {}).await.unwrap();
        assert!(shutdown.is_triggered());
        assert_eq!(s.failure().as_deref(), Some("task reader: it stopped on its own"));
    }

    #[tokio::test]
    async fn a_task_that_ends_at_shutdown_has_finished() {
        let (s, shutdown) = supervisor();
        let sd = shutdown.clone();
        let h = s.spawn("server", async move { sd.wait().await });
        shutdown.trigger();
        h.await.unwrap();
        assert_eq!(s.failure(), None);
        assert_eq!(s.failures.with_label_values(&["server"]).get(), 0);
    }
}

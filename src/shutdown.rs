//! The shutdown signal every long-running task selects on.
//!
//! [`Shutdown::trigger`] is called once (on SIGTERM, SIGINT/Ctrl-C, or by a test); every clone's
//! [`Shutdown::wait`] then completes. The order of the stop — stop accepting, finish in-flight
//! appends, sync, exit — is [`crate::app`]'s.

use tokio::sync::watch;

/// A cloneable stop signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Shutdown { tx, rx }
    }

    /// Triggers it (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether it has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once triggered.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Sleeps `d` unless the signal comes first; false if it did.
    pub async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// The operating system's stop requests: SIGTERM and SIGINT on Unix; Ctrl-C and Ctrl-Break on
/// Windows (a service manager's stop arrives as Ctrl-Break for console programs).
///
/// The handlers are installed by [`OsSignals::install`], before anything is announced, so a stop
/// request can never arrive while the default action (immediate termination) is still in place.
pub struct OsSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(windows)]
    brk: tokio::signal::windows::CtrlBreak,
    #[cfg(windows)]
    c: tokio::signal::windows::CtrlC,
}

impl OsSignals {
    /// Installs the handlers (within a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(OsSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(OsSignals {
                brk: tokio::signal::windows::ctrl_break()?,
                c: tokio::signal::windows::ctrl_c()?,
            })
        }
    }

    /// Completes on the next stop request.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
        #[cfg(windows)]
        tokio::select! {
            _ = self.brk.recv() => tracing::info!("Ctrl-Break received"),
            _ = self.c.recv() => tracing::info!("Ctrl-C received"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let s = Shutdown::new();
        let c = s.clone();
        let waiter = tokio::spawn(async move { c.wait().await });
        assert!(!s.is_triggered());
        s.trigger();
        waiter.await.unwrap();
        assert!(s.is_triggered());
    }
}

//! The Interaction Administrator switch (`enabled`): on, the sources ingest; off, the push
//! endpoint answers that ingest is off and the ICWS source logs out and waits. Read by every
//! part that ingests, flipped at run time by a reload (`SIGHUP`), observed by `/health` and
//! `conduit_enabled`.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable on/off switch that can be waited on.
#[derive(Clone, Debug)]
pub struct Switch {
    tx: Arc<watch::Sender<bool>>,
}

impl Switch {
    /// A switch in position `on`.
    pub fn new(on: bool) -> Self {
        Switch {
            tx: Arc::new(watch::Sender::new(on)),
        }
    }

    /// Whether it is on.
    pub fn is_on(&self) -> bool {
        *self.tx.borrow()
    }

    /// Puts it in position `on`; true when that changed it.
    pub fn set(&self, on: bool) -> bool {
        self.tx.send_if_modified(|v| std::mem::replace(v, on) != on)
    }

    /// Completes once it is in position `on` (at once if it is).
    pub async fn until(&self, on: bool) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`: this cannot fail while we wait.
        let _ = rx.wait_for(|v| *v == on).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_see_the_switch_flipped() {
        let s = Switch::new(true);
        s.until(true).await;
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.until(false).await }
        });
        assert!(s.set(false));
        assert!(!s.set(false), "no change the second time");
        waiter.await.unwrap();
        assert!(!s.is_on());
    }
}

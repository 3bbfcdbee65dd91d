//! What the source does with a group of ICWS messages: parse them, follow the watched queues,
//! and store the observations — retrying while the buffer cannot take them, because ICWS has
//! already handed those messages over.

use std::time::Duration;

use super::client::Session;
use super::{Handled, IcwsSource, messages};
use crate::normalize::Observation;

impl IcwsSource {
    /// Stores what a group of messages says.
    pub(super) async fn handle(&self, s: &Session, msgs: &[serde_json::Value]) -> Handled {
        if msgs.is_empty() {
            return Handled::Continue;
        }
        self.status
            .update(|st| st.last_message = Some(std::time::Instant::now()));
        let now = crate::timefmt::now_ms();
        let mut batch: Vec<Observation> = Vec::new();
        let mut batch_left: Vec<Observation> = Vec::new();
        let mut statuses = Vec::new();
        for m in msgs {
            let p = messages::parse(m, now);
            self.metrics.messages.with_label_values(&[p.kind]).inc();
            for why in &p.malformed {
                self.metrics.malformed.inc();
                tracing::warn!(session = %s.id, why = %why, "malformed ICWS message entry skipped");
            }
            if p.connection_down {
                if !self.store(batch).await || !self.store_statuses(&statuses).await {
                    return Handled::Stop(None);
                }
                return Handled::Stop(Some("connection_down"));
            }
            self.members.apply(&p, now, &mut batch_left);
            batch.extend(p.observations);
            batch.append(&mut batch_left);
            statuses.extend(p.statuses);
            if let Some(change) = p.users
                && let Err(e) = self.people_changed(s, change).await
            {
                tracing::warn!(error = %e, "cannot follow CIC's users' statuses");
                if !self.store(batch).await || !self.store_statuses(&statuses).await {
                    return Handled::Stop(None);
                }
                return Handled::Stop(Some(e.reason()));
            }
        }
        if !self.store(batch).await || !self.store_statuses(&statuses).await {
            return Handled::Stop(None);
        }
        self.metrics.tracked.set(self.ingest.tracked() as i64);
        Handled::Continue
    }

    /// Stores observations, retrying while the buffer cannot take them; false on shutdown.
    async fn store(&self, batch: Vec<Observation<'_>>) -> bool {
        if batch.is_empty() {
            return true;
        }
        loop {
            match self.ingest.ingest_each(&batch).await {
                Ok(done) => {
                    for r in &done.refused {
                        let id = batch.get(r.index).map_or("", |o| &*o.interaction_id);
                        tracing::warn!(
                            interaction = %crate::outbound::bounded(id, 64),
                            reason = %r.reason,
                            "an ICWS change cannot be stored; refused alone"
                        );
                    }
                    self.source_metrics
                        .received
                        .with_label_values(&["icws"])
                        .inc_by((batch.len() - done.refused.len()) as u64);
                    if !done.refused.is_empty() {
                        self.source_metrics
                            .rejected
                            .with_label_values(&["icws", "too_large"])
                            .inc_by(done.refused.len() as u64);
                    }
                    return true;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, observations = batch.len(), "buffer cannot take ICWS changes yet; retrying");
                    if !self.pause(Duration::from_millis(500)).await {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, observations = batch.len(), "ICWS changes could not be stored");
                    return true;
                }
            }
        }
    }
}

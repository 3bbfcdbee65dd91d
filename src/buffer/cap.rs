//! The size cap: bytes of records on disk plus bytes reserved by appends in flight never pass
//! `max_bytes`. An append reserves its framed size before it is queued (and gives it back if it
//! fails); at the cap it waits for room or is dropped, per `when_full`.

use std::sync::atomic::Ordering;

use super::BufferError;
use super::shared::Shared;
use crate::config::WhenFull;

/// Reserves room for `bytes` if there is room now, without registering for a wake-up.
pub(crate) fn try_reserve(s: &Shared, bytes: u64) -> bool {
    let used = s.used_bytes.load(Ordering::Acquire);
    let taken = used + bytes <= s.cfg.max_bytes
        && s.used_bytes
            .compare_exchange(used, used + bytes, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
    if taken {
        clear_at_cap(s);
    }
    taken
}

/// An append was taken: the buffer is no longer at its cap (read first: the hot path does not
/// write the shared flag every time).
fn clear_at_cap(s: &Shared) {
    if s.at_cap.load(Ordering::Relaxed) {
        s.at_cap.store(false, Ordering::Release);
    }
}

/// Reserves room for `bytes`, waiting or refusing per `when_full`.
/// Its slow path: the fast path is [`try_reserve`].
pub(crate) async fn reserve(s: &Shared, bytes: u64, count: usize) -> Result<bool, BufferError> {
    let cap = s.cfg.max_bytes;
    let deadline = tokio::time::Instant::now() + s.cfg.block_timeout();
    loop {
        let notified = s.space_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let used = s.used_bytes.load(Ordering::Acquire);
        if used + bytes <= cap {
            if s.used_bytes
                .compare_exchange(used, used + bytes, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                clear_at_cap(s);
                return Ok(true);
            }
            continue;
        }
        if s.closed.load(Ordering::Acquire) {
            return Err(BufferError::Closed);
        }
        match s.cfg.when_full {
            WhenFull::DropNewest => {
                s.at_cap.store(true, Ordering::Release);
                s.metrics.dropped.inc_by(count as u64);
                return Ok(false);
            }
            WhenFull::Block => {
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    s.at_cap.store(true, Ordering::Release);
                    return Err(BufferError::Full { used, cap });
                }
            }
        }
    }
}

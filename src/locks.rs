//! The one mutex-poison policy: a lock whose holder panicked is taken over, never propagated.
//!
//! A panic already stops the process — a task's through [`crate::supervisor`], a buffer thread's
//! through the buffer's fatal path ([`crate::buffer::Buffer::fatal`]) — so a second panic in
//! whoever takes the lock next would only hide the first and turn an orderly stop (answer what
//! is stored, sync, persist the cursor) into a cascade. Every lock in the crate goes through
//! [`lock`].

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking it over if a panic poisoned it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}

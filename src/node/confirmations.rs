//! Waiting for the other relay nodes to say they applied a revocation
//! decided here (a device or account deletion, a password change), so that
//! it is answered only once they refuse what it revoked.
//!
//! The deciding node opens a confirmation ([`Confirmations::open`]: an id
//! and a receiver), publishes the decision with that id, learns from Redis
//! how many nodes it reached and expects that many answers less itself
//! ([`Confirmations::expect`]); each node that applied it answers on the
//! decider's own channel, and each answer counts ([`Confirmations::answered`]).
//! Answers may come before the count does (both arrive on the side runtime,
//! in any order), so the two are kept apart and compared on each change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// One open confirmation.
struct Waiting {
    /// The answers to wait for, once known.
    expected: Option<usize>,
    answered: usize,
    done: Option<oneshot::Sender<()>>,
}

impl Waiting {
    /// Resolves the waiter once every expected answer came.
    fn settle(&mut self) {
        if self.expected.is_some_and(|n| self.answered >= n) {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

/// The confirmations this node waits for (see the module documentation).
#[derive(Default)]
pub struct Confirmations {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
}

impl Confirmations {
    /// A new confirmation: its id (never 0) and what resolves once it is
    /// complete. Call [`Confirmations::close`] when done waiting.
    pub fn open(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1).max(1);
        let (done, receiver) = oneshot::channel();
        let waiting = Waiting {
            expected: None,
            answered: 0,
            done: Some(done),
        };
        self.lock().insert(id, waiting);
        (id, receiver)
    }

    /// Confirmation `id` needs `answers` answers.
    pub fn expect(&self, id: u64, answers: usize) {
        if let Some(waiting) = self.lock().get_mut(&id) {
            waiting.expected = Some(answers);
            waiting.settle();
        }
    }

    /// A node answered confirmation `id` (an unknown or closed one is
    /// ignored).
    pub fn answered(&self, id: u64) {
        if let Some(waiting) = self.lock().get_mut(&id) {
            waiting.answered += 1;
            waiting.settle();
        }
    }

    /// Stops waiting for `id`.
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a confirmation resolves once as many answers as expected came,
    /// whether they come before or after the count, and not before; a
    /// closed one ignores late answers.
    #[test]
    fn resolves_on_the_last_expected_answer_in_any_order() {
        let confirmations = Confirmations::default();
        let (early, mut early_done) = confirmations.open();
        confirmations.answered(early);
        assert!(early_done.try_recv().is_err(), "the count is not known yet");
        confirmations.expect(early, 2);
        assert!(early_done.try_recv().is_err(), "one of two");
        confirmations.answered(early);
        assert!(early_done.try_recv().is_ok());
        confirmations.close(early);
        confirmations.answered(early);

        let (none, mut none_done) = confirmations.open();
        assert_ne!(none, early);
        confirmations.expect(none, 0);
        assert!(none_done.try_recv().is_ok(), "no other node: nothing to wait for");
        confirmations.close(none);
        assert!(confirmations.lock().is_empty());
    }
}

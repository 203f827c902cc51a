//! A single-value channel whose receiver is a future. The sender may live on
//! any thread; sending wakes the receiving task's runtime (monoio's `sync`
//! feature makes its wakers cross-thread). Dropping the sender unsent makes
//! the receiver resolve to [`Canceled`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the other side went away before answering")]
pub struct Canceled;

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// Creates a connected sender and receiver.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (
        Sender {
            slot: Some(slot.clone()),
        },
        Receiver { slot },
    )
}

/// The sending half; `Send` whenever `T` is.
pub struct Sender<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

/// The receiving half: a future of the sent value.
pub struct Receiver<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Sender<T> {
    /// Delivers the value and wakes the receiver.
    pub fn send(mut self, value: T) {
        if let Some(slot) = self.slot.take() {
            close(&slot, Some(value));
        }
    }
}

fn close<T>(slot: &Mutex<Slot<T>>, value: Option<T>) {
    let waker = {
        let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.value = value;
        guard.closed = true;
        guard.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            close(&slot, None);
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut guard = self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(value) = guard.value.take() {
            return Poll::Ready(Ok(value));
        }
        if guard.closed {
            return Poll::Ready(Err(Canceled));
        }
        match &guard.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => guard.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_crosses_threads() {
        let (tx, rx) = channel();
        std::thread::spawn(move || tx.send(7u32));
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        assert_eq!(rt.block_on(rx), Ok(7));
    }

    #[test]
    fn dropped_sender_cancels() {
        let (tx, rx) = channel::<u32>();
        drop(tx);
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        assert_eq!(rt.block_on(rx), Err(Canceled));
    }
}

//! The shutdown signal of one shard: a flag plus the tasks waiting on it.
//! Shard-local (`!Send`); the server sets it through a mesh job. A waiter
//! that is dropped unregisters itself, so idle connections that come and go
//! leave nothing behind.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Cloneable handle to one shard's shutdown state.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    started: Cell<bool>,
    next_waiter: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Shutdown {
    /// Starts the shutdown and wakes every waiter.
    pub fn trigger(&self) {
        self.inner.started.set(true);
        let waiters: Vec<Waker> = self.inner.waiters.borrow_mut().drain().map(|(_, w)| w).collect();
        for waker in waiters {
            waker.wake();
        }
    }

    /// Whether shutdown has started.
    pub fn is_started(&self) -> bool {
        self.inner.started.get()
    }

    /// Resolves once shutdown has started.
    pub fn wait(&self) -> Wait {
        let id = self.inner.next_waiter.get();
        self.inner.next_waiter.set(id.wrapping_add(1));
        Wait {
            inner: self.inner.clone(),
            id,
        }
    }
}

/// Future returned by [`Shutdown::wait`].
pub struct Wait {
    inner: Rc<Inner>,
    id: u64,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.started.get() {
            return Poll::Ready(());
        }
        self.inner.waiters.borrow_mut().insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.inner.waiters.borrow_mut().remove(&self.id);
    }
}

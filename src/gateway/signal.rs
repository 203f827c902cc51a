//! What a session is waiting for: its [`SessionSignal`], where events of its
//! device and news from its socket are set as bits and wake the session
//! task. Events of one kind that arrive while one is pending coalesce.
//! New messages travel with their event: the session holds a bounded number
//! of [`Arrival`]s; past that it drops them and reads the store instead.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::events::{Arrival, DeviceEvent};
use crate::limits;

/// The arrivals a session has not taken yet.
#[derive(Default)]
struct Arrivals {
    messages: Vec<Arrival>,
    bytes: usize,
    /// Some were dropped over the bound: the store has them.
    dropped: bool,
}

/// The pending events of one session and the task waiting for them.
#[derive(Default)]
pub struct SessionSignal {
    pending: Cell<u8>,
    waker: RefCell<Option<Waker>>,
    arrivals: RefCell<Arrivals>,
}

impl SessionSignal {
    /// Hands new messages to the session and raises
    /// [`DeviceEvent::MessagesArrived`]. Beyond
    /// [`limits::SESSION_ARRIVALS_MAX`] messages or
    /// [`limits::SESSION_ARRIVAL_BYTES_MAX`] bytes waiting, they are dropped:
    /// the session then reads the store, which has them.
    pub fn arrive(&self, messages: &[Arrival]) {
        let bytes: usize = messages.iter().map(|a| a.message.payload.len()).sum();
        let mut arrivals = self.arrivals.borrow_mut();
        let fits = !arrivals.dropped
            && arrivals.messages.len() + messages.len() <= limits::SESSION_ARRIVALS_MAX
            && arrivals.bytes + bytes <= limits::SESSION_ARRIVAL_BYTES_MAX;
        if !fits {
            drop(arrivals);
            return self.stale();
        }
        arrivals.messages.extend_from_slice(messages);
        arrivals.bytes += bytes;
        drop(arrivals);
        self.raise(DeviceEvent::MessagesArrived);
    }

    /// Messages were appended, or may have been, that the session was not
    /// handed: raises [`DeviceEvent::MessagesArrived`] with the arrivals
    /// marked incomplete, so the session reads the store after its cursor.
    pub fn stale(&self) {
        *self.arrivals.borrow_mut() = Arrivals {
            dropped: true,
            ..Arrivals::default()
        };
        self.raise(DeviceEvent::MessagesArrived);
    }

    /// How many arrivals wait.
    pub fn arrivals_waiting(&self) -> usize {
        self.arrivals.borrow().messages.len()
    }

    /// Takes the waiting arrivals, in the order they came; `false` when
    /// some were dropped since the last take.
    pub fn take_arrivals(&self) -> (Vec<Arrival>, bool) {
        let arrivals = std::mem::take(&mut *self.arrivals.borrow_mut());
        (arrivals.messages, !arrivals.dropped)
    }

    /// Raises `event` and wakes the session.
    pub fn raise(&self, event: DeviceEvent) {
        self.pending.set(self.pending.get() | event as u8);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Wakes the session without an event: its socket has news. Recorded
    /// like an event, so a wake while the session is busy is not lost.
    pub fn wake(&self) {
        self.pending.set(self.pending.get() | SOCKET_NEWS);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Takes the pending events.
    pub fn take(&self) -> Events {
        Events(self.pending.replace(0))
    }

    /// Resolves once an event or news is pending.
    pub fn wait(&self) -> Wait<'_> {
        Wait { signal: self }
    }
}

/// The pending bit of [`SessionSignal::wake`].
const SOCKET_NEWS: u8 = 0x80;

/// A set of pending events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Events(u8);

impl Events {
    /// Whether `event` is in the set.
    pub fn has(self, event: DeviceEvent) -> bool {
        self.0 & event as u8 != 0
    }
}

/// Future of [`SessionSignal::wait`].
pub struct Wait<'a> {
    signal: &'a SessionSignal,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.pending.get() != 0 {
            return Poll::Ready(());
        }
        *self.signal.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

//! Per-device events and where they go. The owner shard of a device keeps
//! its [`Presence`]: every open session of the device as (shard, session id).
//! The owner raises an event on each of them — directly on the own shard,
//! over the mesh otherwise. A session sees events as bits of its
//! [`SessionSignal`]; events of one kind that arrive while one is pending
//! coalesce.
//!
//! New messages travel with their event: the owner hands each session the
//! [`Arrival`]s of an append, and the session writes them without reading
//! the store when their `prev` shows it missed nothing before them. A
//! session holds a bounded number of arrivals; past that it drops them and
//! reads the store instead.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use uuid::Uuid;

use crate::limits;
use crate::shard::ShardId;
use crate::store::StoredMessage;

/// A message handed to a session right after its append.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The message as the store keeps it.
    pub message: StoredMessage,
    /// The newest message queued before it in the mailbox at its commit
    /// ([`crate::store::Queued::prev`]).
    pub prev: Option<u64>,
    /// Expiry, Unix seconds: an expired message is never delivered.
    pub expires_at_secs: i64,
}

/// The arrivals a session has not taken yet.
#[derive(Default)]
struct Arrivals {
    messages: Vec<Arrival>,
    bytes: usize,
    /// Some were dropped over the bound: the store has them.
    dropped: bool,
}

/// Something happened to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Messages were queued for it.
    MessagesArrived = 1,
    /// A bundle fetch left it below the prekey threshold.
    PreKeysLow = 2,
    /// Takeover or deletion: its sessions must close.
    Disconnect = 4,
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
        {
            let mut arrivals = self.arrivals.borrow_mut();
            let bytes: usize = messages.iter().map(|a| a.message.payload.len()).sum();
            let count = arrivals.messages.len() + messages.len();
            if arrivals.dropped
                || count > limits::SESSION_ARRIVALS_MAX
                || arrivals.bytes + bytes > limits::SESSION_ARRIVAL_BYTES_MAX
            {
                *arrivals = Arrivals {
                    dropped: true,
                    ..Arrivals::default()
                };
            } else {
                arrivals.messages.extend_from_slice(messages);
                arrivals.bytes += bytes;
            }
        }
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

/// One open session, as its device's owner knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// The shard holding the socket.
    pub shard: ShardId,
    /// The session's id on that shard.
    pub id: u64,
}

/// The open sessions of the devices one shard owns.
#[derive(Default)]
pub struct Presence {
    devices: HashMap<Uuid, Vec<SessionRef>>,
}

impl Presence {
    /// Records a session of `device`.
    pub fn join(&mut self, device: Uuid, session: SessionRef) {
        self.devices.entry(device).or_default().push(session);
    }

    /// Forgets a session of `device`.
    pub fn leave(&mut self, device: Uuid, session: SessionRef) {
        if let Some(sessions) = self.devices.get_mut(&device) {
            sessions.retain(|s| *s != session);
            if sessions.is_empty() {
                self.devices.remove(&device);
            }
        }
    }

    /// The sessions of `device`.
    pub fn sessions(&self, device: &Uuid) -> &[SessionRef] {
        self.devices.get(device).map_or(&[], Vec::as_slice)
    }
}

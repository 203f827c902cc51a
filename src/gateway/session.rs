//! One gateway connection of one device (BEHAVIOR.md §8.4–8.8), on the shard
//! that accepted the socket. Two tasks share it: the reader task parses
//! client frames (acks, pings, pongs, close) into [`Inbox`] and wakes the
//! session; the session task owns the write half and does everything else:
//!
//! 1. subscribes to the device's events ([`super::events::EventBus`]),
//! 2. sends the welcome `PreKeyStatus` when the device is low on prekeys,
//! 3. delivers the backlog, reading the mailbox after its cursor (a mailbox
//!    position in commit order, so late commits are never skipped), then
//!    every new message as it is handed over ([`super::events::Arrival`]): written
//!    straight away when its predecessor is at or before the cursor, else
//!    the mailbox is read after the cursor again; in `EnvelopeBatch` frames
//!    (one `envelope` frame per message on a legacy socket),
//! 4. answers pings, batches acks into store deletes, pings
//!    the client and closes it when silent or stuck, and closes on takeover,
//!    deletion (Disconnect) or shutdown (1001).
//!
//! With `--ws-delivery-interval-ms`, new messages that arrive sooner than
//! that after the last frame of new messages wait and go out together (a
//! full fetch's worth goes at once): fewer, fuller frames for devices that
//! receive many messages a second, at most that much later.
//!
//! Frames are written one at a time under a write timeout: the socket's
//! send buffer plus at most `--ws-outbound-buffer-size` encoded frames are
//! all a slow reader can make us hold, and a reader that takes nothing for
//! `--ws-write-timeout-secs` is disconnected.
//!
//! Acks are never dropped: once `--ws-ack-buffer-size` ids (plus the last
//! frame's) wait to be applied, the reader task stops reading the socket
//! until a batch is applied (BEHAVIOR.md §8.7 drops them instead, so a
//! client whose acks outran the session got its messages again).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use tungstenite::protocol::frame::coding::{Control, OpCode};
use uuid::Uuid;

use super::cursor::Cursor;
use super::delivery::{follow, frames, prekey_status, Framing};
use super::events::{DeviceEvent, EventBus};
use super::hub::Hub;
use super::presence::SessionRef;
use super::signal::{Events, SessionSignal};
use super::websocket::{self, FrameReader, Inbound};
use crate::config::Config;
use crate::limits::WS_PONGS_OWED_MAX;
use crate::metrics::Counter;
use crate::proto::wire;
use crate::store::{Store, StoredMessage};
use crate::util::time::now_secs;

/// What the reader task hands the session.
#[derive(Default)]
struct Inbox {
    pongs: VecDeque<Vec<u8>>,
    acks: Vec<Uuid>,
    /// Ack ids taken from the socket and not yet applied (here, with the
    /// session, or in flight).
    acks_unapplied: usize,
    /// The reader task, waiting for `acks_unapplied` to fall below the
    /// ack buffer.
    reader_waiting: Option<Waker>,
    /// The session ended: nobody applies acks any more.
    session_over: bool,
    last_seen: Option<Instant>,
    ended: bool,
    /// The client sent a Close frame (answered with one, RFC 6455 §5.5.1).
    closed_by_client: bool,
}

/// The session's bounds, from the configuration; counts end in their unit.
struct Limits {
    /// Below this many one-time prekeys the device is told (`PreKeyStatus`).
    prekeys_low_count: usize,
    /// Messages per store read.
    fetch_messages_max: usize,
    /// Soft cap of one `EnvelopeBatch` frame.
    frame_bytes_max: usize,
    /// Frames written between two looks at the socket's news.
    outbound_frames_max: usize,
    /// Ack ids per store delete.
    ack_batch_ids_max: usize,
    /// Ack ids waiting to be applied before the reader pauses.
    ack_buffer_ids_max: usize,
    /// Longest wait of an ack id before its batch is applied.
    ack_flush_after: Duration,
    ping_every: Duration,
    /// Silence after which the client is taken for gone.
    silence_max: Duration,
    /// Delay of a `PreKeyStatus` after a low-prekey event.
    prekey_debounce: Duration,
    /// A frame the client takes no part of within this long ends the session.
    write_timeout: Duration,
    /// Shortest time between two frames of new messages.
    delivery_interval: Duration,
}

impl Limits {
    fn from(c: &Config) -> Self {
        let ping_every = Duration::from_secs(c.ws_ping_interval_secs.max(1));
        Self {
            prekeys_low_count: c.pre_key_refill_threshold,
            fetch_messages_max: c.ws_message_fetch_batch_size,
            frame_bytes_max: c.ws_max_batch_bytes,
            outbound_frames_max: c.ws_outbound_buffer_size,
            ack_batch_ids_max: c.ws_ack_batch_size,
            ack_buffer_ids_max: c.ws_ack_buffer_size.max(1),
            ack_flush_after: Duration::from_millis(c.ws_ack_flush_interval_ms),
            ping_every,
            silence_max: ping_every + Duration::from_secs(c.ws_ping_timeout_secs),
            prekey_debounce: Duration::from_millis(c.ws_prekey_debounce_interval_ms),
            write_timeout: Duration::from_secs(c.ws_write_timeout_secs),
            delivery_interval: Duration::from_millis(c.ws_delivery_interval_ms),
        }
    }
}

/// How a session ends.
enum End {
    /// The client closed, or its socket failed.
    ClientGone,
    /// We close with this frame.
    Close(Vec<u8>),
}

/// One connection's session state (the session task's half).
struct Session {
    device: Uuid,
    framing: Framing,
    hub: Rc<Hub>,
    signal: Rc<SessionSignal>,
    inbox: Rc<RefCell<Inbox>>,
    writer: OwnedWriteHalf<TcpStream>,
    limits: Limits,
    cursor: Cursor,
    acks: Vec<Uuid>,
    ack_due: Option<Instant>,
    /// The ack batch being applied, and whether it is done.
    ack_flush: Option<(monoio::task::JoinHandle<()>, Rc<Cell<bool>>)>,
    /// New messages wait for the next frame time.
    arrivals_waiting: bool,
    /// When the next frame of new messages may go
    /// (`--ws-delivery-interval-ms` after the last one).
    next_frame_at: Option<Instant>,
    prekey_due: Option<Instant>,
    next_ping: Instant,
}

/// Runs the session of `device` on an upgraded socket until it ends: its
/// events come through `bus`, its socket is held by `hub`'s shard.
pub async fn run(
    stream: TcpStream,
    leftover: Vec<u8>,
    device: Uuid,
    framing: Framing,
    hub: Rc<Hub>,
    bus: Rc<dyn EventBus>,
) {
    let limits = Limits::from(&hub.config);
    let fd = stream.as_raw_fd();
    let (read_half, writer) = stream.into_split();
    let (id, signal) = hub.open_session(device);
    let inbox = Rc::new(RefCell::new(Inbox {
        last_seen: Some(Instant::now()),
        ..Inbox::default()
    }));
    let reader = FrameReader::new(read_half, leftover, hub.config.ws_message_bytes_max);
    let reading = monoio::spawn(read_loop(
        reader,
        inbox.clone(),
        signal.clone(),
        limits.ack_buffer_ids_max,
    ));
    let me = SessionRef { shard: hub.me(), id };
    let subscribed = bus.subscribe(device, me).await;
    let next_ping = Instant::now() + limits.ping_every;
    let mut session = Session {
        device,
        framing,
        hub: hub.clone(),
        signal,
        inbox,
        writer,
        limits,
        cursor: Cursor::new(hub.late_commit_window()),
        acks: Vec::new(),
        ack_due: None,
        ack_flush: None,
        arrivals_waiting: false,
        next_frame_at: None,
        prekey_due: None,
        next_ping,
    };
    if subscribed.is_ok() {
        cancel_pending_push(hub.store.clone(), device);
        session.serve().await;
    }
    session.finish_acks().await;
    bus.unsubscribe(device, me).await;
    hub.close_session(device, id);
    stop_waiting_for_acks(&session.inbox);
    // Ends the reader's pending read, whichever io driver is in use.
    // SAFETY: `fd` belongs to the socket whose halves are still alive here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    let _ = reading.await;
}

/// A session opening cancels the device's pending wake-up push (§11.2).
fn cancel_pending_push(store: Arc<dyn Store>, device: Uuid) {
    monoio::spawn(async move {
        if let Err(e) = store.cancel_push(device).await {
            tracing::warn!(error = %e, "cancelling a push job failed");
        }
    });
}

/// The reader task: turns client frames into [`Inbox`] entries.
async fn read_loop(mut reader: FrameReader, inbox: Rc<RefCell<Inbox>>, signal: Rc<SessionSignal>, ack_buffer: usize) {
    loop {
        room_for_acks(&inbox, ack_buffer).await;
        let message = reader.next().await;
        {
            let mut inbox = inbox.borrow_mut();
            inbox.last_seen = Some(Instant::now());
            match message {
                Ok(Inbound::Binary(bytes)) => take_acks(&mut inbox, &bytes),
                Ok(Inbound::Ping(payload)) => {
                    if inbox.pongs.len() >= WS_PONGS_OWED_MAX {
                        inbox.pongs.pop_front();
                    }
                    inbox.pongs.push_back(payload);
                }
                Ok(Inbound::Text | Inbound::Pong) => {}
                Ok(Inbound::Close) | Err(_) => {
                    inbox.closed_by_client = matches!(message, Ok(Inbound::Close));
                    inbox.ended = true;
                    drop(inbox);
                    signal.wake();
                    return;
                }
            }
        }
        signal.wake();
    }
}

/// Resolves once fewer than `ack_buffer` ack ids wait to be applied.
async fn room_for_acks(inbox: &RefCell<Inbox>, ack_buffer: usize) {
    std::future::poll_fn(|cx| {
        let mut inbox = inbox.borrow_mut();
        if inbox.acks_unapplied < ack_buffer || inbox.session_over {
            return Poll::Ready(());
        }
        inbox.reader_waiting = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// The session is over: the reader reads on (to its end) without waiting
/// for room for acks, which nobody applies any more.
fn stop_waiting_for_acks(inbox: &RefCell<Inbox>) {
    let mut inbox = inbox.borrow_mut();
    inbox.session_over = true;
    if let Some(reader) = inbox.reader_waiting.take() {
        reader.wake();
    }
}

/// Counts `n` ack ids as applied and lets a waiting reader go on.
fn acks_applied(inbox: &RefCell<Inbox>, n: usize) {
    let mut inbox = inbox.borrow_mut();
    inbox.acks_unapplied = inbox.acks_unapplied.saturating_sub(n);
    if let Some(reader) = inbox.reader_waiting.take() {
        reader.wake();
    }
}

/// Queues the well-formed ids of an `AckMessage` frame; anything else
/// (garbage, other payloads, ids not 16 bytes long) is ignored. Read
/// without prost, which would build every id of the frame first.
fn take_acks(inbox: &mut Inbox, bytes: &[u8]) {
    let Some(ids) = wire::ack_ids(bytes) else {
        return;
    };
    inbox.acks_unapplied += ids.len();
    inbox.acks.extend(ids.into_iter().map(Uuid::from_bytes));
}

impl Session {
    async fn serve(&mut self) {
        let end = match Box::pin(self.greet()).await {
            Ok(()) => self.event_loop().await,
            Err(end) => end,
        };
        if let End::Close(frame) = end {
            let _ = self.send(frame).await;
        }
    }

    /// The welcome status, then the backlog.
    async fn greet(&mut self) -> Result<(), End> {
        let count = self
            .hub
            .store
            .one_time_prekey_count(self.device)
            .await
            .map_err(|_| End::Close(websocket::close(None, "")))?;
        if count < self.limits.prekeys_low_count {
            self.send(websocket::binary(&prekey_status(count, self.limits.prekeys_low_count)))
                .await?;
        }
        self.deliver().await
    }

    async fn event_loop(&mut self) -> End {
        loop {
            // Boxed so that an idle session holds only the small wait below.
            let events = self.signal.take();
            if let Err(end) = Box::pin(self.step(events)).await {
                return end;
            }
            if self.hub.shutdown.is_started() {
                return End::Close(websocket::close(Some(1001), "Server shutting down"));
            }
            let deadline = self.next_deadline();
            let shutdown = self.hub.shutdown.clone();
            monoio::select! {
                _ = self.signal.wait() => {},
                _ = monoio::time::sleep_until(deadline.into()) => {},
                _ = shutdown.wait() => {},
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        // While a batch is in flight its end wakes the session.
        let ack_due = self.ack_due.filter(|_| self.ack_flush.is_none());
        let frame_due = self.next_frame_at.filter(|_| self.arrivals_waiting);
        [Some(self.next_ping), ack_due, self.prekey_due, frame_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_ping)
    }

    /// Handles pending events, socket news and due timers.
    async fn step(&mut self, events: Events) -> Result<(), End> {
        if events.has(DeviceEvent::Disconnect) {
            return Err(End::Close(websocket::close(None, "")));
        }
        self.answer_socket().await?;
        if events.has(DeviceEvent::PreKeysLow) && self.prekey_due.is_none() {
            self.prekey_due = Some(Instant::now() + self.limits.prekey_debounce);
        }
        let now = Instant::now();
        if events.has(DeviceEvent::MessagesArrived) {
            self.arrivals_waiting = true;
        }
        let frame_due = self.next_frame_at.is_none_or(|at| at <= now);
        if self.arrivals_waiting && (frame_due || self.signal.arrivals_waiting() >= self.limits.fetch_messages_max) {
            self.arrivals_waiting = false;
            self.deliver_arrivals().await?;
            if !self.limits.delivery_interval.is_zero() {
                self.next_frame_at = Some(Instant::now() + self.limits.delivery_interval);
            }
        }
        self.reap_ack_flush();
        let batch_full = self.acks.len() >= self.limits.ack_batch_ids_max.min(self.limits.ack_buffer_ids_max);
        if self.ack_due.is_some_and(|due| due <= now) || batch_full {
            self.start_ack_flush();
        }
        if self.prekey_due.is_some_and(|due| due <= now) {
            self.prekey_due = None;
            self.send_prekey_status_if_low().await?;
        }
        if self.next_ping <= now {
            self.ping(now).await?;
        }
        Ok(())
    }

    /// Pongs owed, acks received, or the client's end.
    async fn answer_socket(&mut self) -> Result<(), End> {
        let (pongs, acks, ended, closed_by_client) = {
            let mut inbox = self.inbox.borrow_mut();
            (
                std::mem::take(&mut inbox.pongs),
                std::mem::take(&mut inbox.acks),
                inbox.ended,
                inbox.closed_by_client,
            )
        };
        for payload in pongs {
            self.send(websocket::encode(OpCode::Control(Control::Pong), &payload))
                .await?;
        }
        if !acks.is_empty() {
            if self.ack_due.is_none() {
                self.ack_due = Some(Instant::now() + self.limits.ack_flush_after);
            }
            self.acks.extend(acks);
        }
        if closed_by_client {
            return Err(End::Close(websocket::close(None, "")));
        }
        if ended {
            return Err(End::ClientGone);
        }
        Ok(())
    }

    /// Delivers everything not yet delivered after the cursor (a window
    /// back, where late commits can land), a fetch at a time.
    async fn deliver(&mut self) -> Result<(), End> {
        let mut after = self.cursor.read_after();
        loop {
            let fetched = self
                .hub
                .store
                .fetch(self.device, after, self.limits.fetch_messages_max, now_secs())
                .await
                .map_err(|_| End::Close(websocket::close(None, "")))?;
            let Some(last) = fetched.last() else {
                return Ok(());
            };
            after = Some(last.seq);
            let full = fetched.len() >= self.limits.fetch_messages_max;
            let new = self.cursor.take_new(fetched);
            self.count(Counter::EnvelopesFromStore, new.len());
            self.send_messages(&new).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Delivers the messages handed to the session since the last step
    /// when they follow its cursor without a gap, without reading the
    /// store; from the first one that may not (its predecessor is past
    /// the cursor, or arrivals were dropped), reads the store instead.
    async fn deliver_arrivals(&mut self) -> Result<(), End> {
        let (arrivals, complete) = self.signal.take_arrivals();
        let followed = follow(&mut self.cursor, arrivals, complete, now_secs());
        if !followed.ready.is_empty() {
            self.count(Counter::EnvelopesFromArrivals, followed.ready.len());
            self.send_messages(&followed.ready).await?;
        }
        if followed.gap {
            self.deliver().await?;
        }
        Ok(())
    }

    fn count(&self, counter: Counter, n: usize) {
        self.hub.count(counter, n);
    }

    /// Writes `messages` in frames, at most `--ws-outbound-buffer-size`
    /// frames between two looks at the socket's news (acks, pings).
    async fn send_messages(&mut self, messages: &[StoredMessage]) -> Result<(), End> {
        let frames = frames(messages, self.framing, self.limits.frame_bytes_max);
        for chunk in frames.chunks(self.limits.outbound_frames_max.max(1)) {
            for frame in chunk {
                self.send(websocket::binary(frame)).await?;
            }
            self.answer_socket().await?;
        }
        Ok(())
    }

    async fn send_prekey_status_if_low(&mut self) -> Result<(), End> {
        let count = self
            .hub
            .store
            .one_time_prekey_count(self.device)
            .await
            .unwrap_or(usize::MAX);
        if count < self.limits.prekeys_low_count {
            self.send(websocket::binary(&prekey_status(count, self.limits.prekeys_low_count)))
                .await?;
        }
        Ok(())
    }

    async fn ping(&mut self, now: Instant) -> Result<(), End> {
        let last_seen = self.inbox.borrow().last_seen.unwrap_or(now);
        if now.duration_since(last_seen) > self.limits.silence_max {
            return Err(End::Close(websocket::close(None, "")));
        }
        self.next_ping = now + self.limits.ping_every;
        self.send(websocket::encode(OpCode::Control(Control::Ping), &[])).await
    }

    /// Starts deleting the acked messages from the mailbox, in
    /// a task of its own so that deliveries go on meanwhile; one batch is
    /// in flight at a time, and its end wakes the session.
    fn start_ack_flush(&mut self) {
        if self.ack_flush.is_some() {
            // Started again when that batch is done.
            return;
        }
        self.ack_due = None;
        if self.acks.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.acks);
        self.count(Counter::AcksReceived, ids.len());
        let done = Rc::new(Cell::new(false));
        let (store, device, signal) = (self.hub.store.clone(), self.device, self.signal.clone());
        let (flag, inbox) = (done.clone(), self.inbox.clone());
        let task = monoio::spawn(async move {
            apply_acks(store.as_ref(), device, ids, &inbox).await;
            flag.set(true);
            signal.wake();
        });
        self.ack_flush = Some((task, done));
    }

    /// Forgets the ack batch in flight once it is applied.
    fn reap_ack_flush(&mut self) {
        if self.ack_flush.as_ref().is_some_and(|(_, done)| done.get()) {
            self.ack_flush = None;
        }
    }

    /// At the end of the session: waits for the batch in flight, then
    /// applies what is left (with the session or still in the inbox), so
    /// acks sent before a disconnect are never lost (BEHAVIOR.md §8.7).
    async fn finish_acks(&mut self) {
        if let Some((task, _)) = self.ack_flush.take() {
            task.await;
        }
        let queued = std::mem::take(&mut self.inbox.borrow_mut().acks);
        self.acks.extend(queued);
        let ids = std::mem::take(&mut self.acks);
        if !ids.is_empty() {
            self.count(Counter::AcksReceived, ids.len());
            apply_acks(self.hub.store.as_ref(), self.device, ids, &self.inbox).await;
        }
    }

    /// Writes one frame within the write timeout.
    async fn send(&mut self, frame: Vec<u8>) -> Result<(), End> {
        match monoio::time::timeout(self.limits.write_timeout, self.writer.write_all(frame)).await {
            Ok((Ok(_), _)) => Ok(()),
            _ => Err(End::ClientGone),
        }
    }
}

/// Deletes acked messages of `device`, then frees their room in the ack
/// buffer (a failed batch too: its messages come again).
async fn apply_acks(store: &dyn Store, device: Uuid, ids: Vec<Uuid>, inbox: &RefCell<Inbox>) {
    let n = ids.len();
    if store.ack(device, ids).await.is_err() {
        tracing::warn!("ack batch could not be applied; the messages will be delivered again");
    }
    acks_applied(inbox, n);
}

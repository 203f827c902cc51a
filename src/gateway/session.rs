//! One gateway connection of one device (BEHAVIOR.md §8.4–8.8), on the shard
//! that accepted the socket. Two tasks share it: the reader task parses
//! client frames (acks, pings, pongs, close) into [`Inbox`] and wakes the
//! session; the session task owns the write half and does everything else:
//!
//! 1. joins the device's presence on its owner shard (so events reach it),
//! 2. sends the welcome `PreKeyStatus` when the device is low on prekeys,
//! 3. delivers the backlog, reading the mailbox after its cursor (a mailbox
//!    position in commit order, so late commits are never skipped), then
//!    every new message as its owner hands it over ([`super::events::Arrival`]): written
//!    straight away when its predecessor is at or before the cursor, else
//!    the mailbox is read after the cursor again; in `EnvelopeBatch` frames
//!    (one `envelope` frame per message on a legacy socket),
//! 4. answers pings, batches acks into deletes on the owner shard, pings
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
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use tungstenite::protocol::frame::coding::{Control, OpCode};
use uuid::Uuid;

use super::delivery::{follow, frames, prekey_status, Framing};
use super::events::{DeviceEvent, Events, SessionRef, SessionSignal};
use super::websocket::{self, FrameReader, Inbound};
use crate::admin::metrics::Counter;
use crate::api::ShardLocal;
use crate::config::Config;
use crate::proto::wire;
use crate::shard::mesh::MeshEndpoint;
use crate::shard::placement;
use crate::store::StoredMessage;
use crate::util::time::now_secs;

/// Pongs owed at once; a client that pings faster than we write gets the
/// latest ones.
const PONGS_OWED_MAX: usize = 16;

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

/// The session's bounds, from the configuration.
struct Limits {
    threshold: usize,
    fetch: usize,
    batch_bytes: usize,
    outbound_frames: usize,
    ack_batch: usize,
    ack_buffer: usize,
    ack_flush: Duration,
    ping_interval: Duration,
    silence_max: Duration,
    debounce: Duration,
    write_timeout: Duration,
    coalesce: Duration,
}

impl Limits {
    fn from(c: &Config) -> Self {
        let ping_interval = Duration::from_secs(c.ws_ping_interval_secs.max(1));
        Self {
            threshold: c.pre_key_refill_threshold,
            fetch: c.ws_message_fetch_batch_size,
            batch_bytes: c.ws_max_batch_bytes,
            outbound_frames: c.ws_outbound_buffer_size,
            ack_batch: c.ws_ack_batch_size,
            ack_buffer: c.ws_ack_buffer_size.max(1),
            ack_flush: Duration::from_millis(c.ws_ack_flush_interval_ms),
            ping_interval,
            silence_max: ping_interval + Duration::from_secs(c.ws_ping_timeout_secs),
            debounce: Duration::from_millis(c.ws_prekey_debounce_interval_ms),
            write_timeout: Duration::from_secs(c.ws_write_timeout_secs),
            coalesce: Duration::from_millis(c.ws_delivery_interval_ms),
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
    mesh: Rc<MeshEndpoint<ShardLocal>>,
    local: Rc<ShardLocal>,
    signal: Rc<SessionSignal>,
    inbox: Rc<RefCell<Inbox>>,
    writer: OwnedWriteHalf<TcpStream>,
    limits: Limits,
    cursor: Option<u64>,
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

/// Runs the session of `device` on an upgraded socket until it ends.
pub async fn run(
    stream: TcpStream,
    leftover: Vec<u8>,
    device: Uuid,
    framing: Framing,
    mesh: Rc<MeshEndpoint<ShardLocal>>,
) {
    let local = mesh.context().clone();
    let limits = Limits::from(&local.app.config);
    let fd = stream.as_raw_fd();
    let (read_half, writer) = stream.into_split();
    let (id, signal) = local.open_session();
    let inbox = Rc::new(RefCell::new(Inbox {
        last_seen: Some(Instant::now()),
        ..Inbox::default()
    }));
    let reader = FrameReader::new(read_half, leftover, local.app.config.ws_message_bytes_max);
    let reading = monoio::spawn(read_loop(reader, inbox.clone(), signal.clone(), limits.ack_buffer));
    let me = SessionRef { shard: mesh.me(), id };
    let owner = placement::device_owner(device, mesh.shards());
    let joined = mesh
        .call(owner, move |o| async move { o.presence.borrow_mut().join(device, me) })
        .await;
    let next_ping = Instant::now() + limits.ping_interval;
    let mut session = Session {
        device,
        framing,
        mesh: mesh.clone(),
        local: local.clone(),
        signal,
        inbox,
        writer,
        limits,
        cursor: None,
        acks: Vec::new(),
        ack_due: None,
        ack_flush: None,
        arrivals_waiting: false,
        next_frame_at: None,
        prekey_due: None,
        next_ping,
    };
    if joined.is_ok() {
        cancel_pending_push(&local, device);
        session.serve().await;
    }
    session.finish_acks().await;
    let _ = mesh
        .call(owner, move |o| async move { o.presence.borrow_mut().leave(device, me) })
        .await;
    local.close_session(id);
    stop_waiting_for_acks(&session.inbox);
    // Ends the reader's pending read, whichever io driver is in use.
    // SAFETY: `fd` belongs to the socket whose halves are still alive here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    let _ = reading.await;
}

/// A session opening cancels the device's pending wake-up push (§11.2).
fn cancel_pending_push(local: &Rc<ShardLocal>, device: Uuid) {
    let app = local.app.clone();
    monoio::spawn(async move {
        if let Err(e) = app.store.cancel_push(device).await {
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
                    if inbox.pongs.len() >= PONGS_OWED_MAX {
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
        let store = &self.local.app.store;
        let count = store
            .one_time_prekey_count(self.device)
            .await
            .map_err(|_| End::Close(websocket::close(None, "")))?;
        if count < self.limits.threshold {
            self.send(websocket::binary(&prekey_status(count, self.limits.threshold)))
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
            if self.local.shutdown.is_started() {
                return End::Close(websocket::close(Some(1001), "Server shutting down"));
            }
            let deadline = self.next_deadline();
            let shutdown = self.local.shutdown.clone();
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
            self.prekey_due = Some(Instant::now() + self.limits.debounce);
        }
        let now = Instant::now();
        if events.has(DeviceEvent::MessagesArrived) {
            self.arrivals_waiting = true;
        }
        let frame_due = self.next_frame_at.is_none_or(|at| at <= now);
        if self.arrivals_waiting && (frame_due || self.signal.arrivals_waiting() >= self.limits.fetch) {
            self.arrivals_waiting = false;
            self.deliver_arrivals().await?;
            if !self.limits.coalesce.is_zero() {
                self.next_frame_at = Some(Instant::now() + self.limits.coalesce);
            }
        }
        self.reap_ack_flush();
        let batch_full = self.acks.len() >= self.limits.ack_batch.min(self.limits.ack_buffer);
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
                self.ack_due = Some(Instant::now() + self.limits.ack_flush);
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

    /// Delivers everything after the cursor, a fetch at a time.
    async fn deliver(&mut self) -> Result<(), End> {
        loop {
            let store = &self.local.app.store;
            let fetched = store
                .fetch(self.device, self.cursor, self.limits.fetch, now_secs())
                .await
                .map_err(|_| End::Close(websocket::close(None, "")))?;
            let Some(last) = fetched.last() else {
                return Ok(());
            };
            self.cursor = Some(last.seq);
            self.count(Counter::EnvelopesFromStore, fetched.len());
            self.send_messages(&fetched).await?;
            if fetched.len() < self.limits.fetch {
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
        let followed = follow(self.cursor, arrivals, complete, now_secs());
        self.cursor = followed.cursor;
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
        self.local.count(counter, n);
    }

    /// Writes `messages` in frames, at most `--ws-outbound-buffer-size`
    /// frames between two looks at the socket's news (acks, pings).
    async fn send_messages(&mut self, messages: &[StoredMessage]) -> Result<(), End> {
        let frames = frames(messages, self.framing, self.limits.batch_bytes);
        for chunk in frames.chunks(self.limits.outbound_frames.max(1)) {
            for frame in chunk {
                self.send(websocket::binary(frame)).await?;
            }
            self.answer_socket().await?;
        }
        Ok(())
    }

    async fn send_prekey_status_if_low(&mut self) -> Result<(), End> {
        let count = self
            .local
            .app
            .store
            .one_time_prekey_count(self.device)
            .await
            .unwrap_or(usize::MAX);
        if count < self.limits.threshold {
            self.send(websocket::binary(&prekey_status(count, self.limits.threshold)))
                .await?;
        }
        Ok(())
    }

    async fn ping(&mut self, now: Instant) -> Result<(), End> {
        let last_seen = self.inbox.borrow().last_seen.unwrap_or(now);
        if now.duration_since(last_seen) > self.limits.silence_max {
            return Err(End::Close(websocket::close(None, "")));
        }
        self.next_ping = now + self.limits.ping_interval;
        self.send(websocket::encode(OpCode::Control(Control::Ping), &[])).await
    }

    /// Starts deleting the acked messages on the device's owner shard, in
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
        let (mesh, device, signal) = (self.mesh.clone(), self.device, self.signal.clone());
        let (flag, inbox) = (done.clone(), self.inbox.clone());
        let task = monoio::spawn(async move {
            apply_acks(&mesh, device, ids, &inbox).await;
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
            apply_acks(&self.mesh, self.device, ids, &self.inbox).await;
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

/// Deletes acked messages of `device` on its owner shard, then frees their
/// room in the ack buffer (a failed batch too: its messages come again).
async fn apply_acks(mesh: &MeshEndpoint<ShardLocal>, device: Uuid, ids: Vec<Uuid>, inbox: &RefCell<Inbox>) {
    let n = ids.len();
    let owner = placement::device_owner(device, mesh.shards());
    let deleted = mesh
        .call(owner, move |o| async move { o.app.store.ack(device, ids).await })
        .await;
    if !matches!(deleted, Ok(Ok(_))) {
        tracing::warn!("ack batch could not be applied; the messages will be delivered again");
    }
    acks_applied(inbox, n);
}

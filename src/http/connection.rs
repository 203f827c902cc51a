//! One connection's life: wait for a request head (keep-alive idle timeout,
//! then the head timeout: slow clients get 408), hand it to the [`Service`]
//! under the route's deadline, deal with any body the service left unread,
//! write the answer (a streamed body chunk by chunk, never for HEAD), repeat. Pipelined requests are read from the buffer in
//! order, so answers go out in order.
//!
//! A body left unread is dropped when it has already arrived in full.
//! Otherwise the answer goes out at once; a rest of at most
//! `HTTP_DISCARD_BYTES_MAX` is then read and dropped within
//! `HTTP_DISCARD_TIMEOUT_MS` so the connection stays usable, and anything
//! larger or slower ends the connection: it half-closes and lingers, reading
//! and dropping a bounded amount, so the client reads our answer instead of
//! a reset (RFC 9112 §9.6).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, StatusCode};
use monoio::buf::IoBuf;
use monoio::net::TcpStream;

use super::body::Body;
use super::request::{parse_head, Framing, RequestHead};
use super::response::{Response, Streamed, Upgrade};
use super::wire::Wire;
use super::{HttpLimits, Service};
use crate::limits;
use crate::shard::shutdown::Shutdown;

/// What waiting for the next request gave.
enum NextHead {
    Request(RequestHead),
    /// The client went away or stayed idle too long: close silently.
    Closed,
    /// A head we refuse: answer, then close.
    Refused(Response),
}

/// The request id of a request: its `x-request-id` when that is 1–128
/// visible ASCII bytes, else a fresh UUID v4.
pub fn request_id(head: &RequestHead) -> HeaderValue {
    head.headers
        .get("x-request-id")
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= limits::REQUEST_ID_BYTES_MAX && b.iter().all(|c| (0x21..=0x7e).contains(c))
        })
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

fn fresh_request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("-"))
}

/// Serves one accepted connection until it closes. Each request's work is
/// boxed (`answer`): its state is large (every route's future), and a
/// connection that becomes a long-lived WebSocket, or idles between
/// keep-alive requests, would otherwise hold that much memory all along.
pub async fn serve<S: Service>(
    stream: TcpStream,
    peer: SocketAddr,
    service: Rc<S>,
    limits: Rc<HttpLimits>,
    shutdown: Shutdown,
) -> Option<Upgraded> {
    let _ = stream.set_nodelay(true);
    let mut wire = Wire::new(stream);
    loop {
        let head = match next_head(&mut wire, &limits, &shutdown).await {
            NextHead::Request(head) => head,
            NextHead::Closed => return None,
            NextHead::Refused(response) => {
                let bytes = response.encode(&fresh_request_id(), false, false);
                if write(&mut wire, bytes, &limits).await {
                    linger(&mut wire).await;
                }
                return None;
            }
        };
        match Box::pin(answer(&mut wire, head, peer, &*service, &limits, &shutdown)).await {
            After::KeepAlive => {}
            After::Close => return None,
            After::Upgrade(upgrade) => {
                let (stream, rest) = wire.into_parts();
                return Some(upgrade(stream, rest));
            }
        }
    }
}

/// The protocol a connection switched to, to be run as a task of its own
/// (so the HTTP connection's state is freed while it runs).
pub type Upgraded = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// What the connection does after an answer.
enum After {
    KeepAlive,
    Close,
    Upgrade(Upgrade),
}

/// Handles one request; says what happens to the connection next.
async fn answer<S: Service>(
    wire: &mut Wire,
    head: RequestHead,
    peer: SocketAddr,
    service: &S,
    limits: &HttpLimits,
    shutdown: &Shutdown,
) -> After {
    let request_id = request_id(&head);
    let deadline = service.deadline(&head);
    let mut body = Body::new(wire, head.framing);
    let response = match monoio::time::timeout(deadline, service.call(&head, &mut body, peer)).await {
        Ok(response) => response,
        Err(_) => Response::error(StatusCode::REQUEST_TIMEOUT, "Request timeout").closing(),
    };
    // A body the service left unread is dropped if it has fully arrived.
    // Otherwise we answer at once (the client may be waiting for us before
    // sending it); then a small rest is read and dropped so the connection
    // stays usable, and anything else ends it with a lingering close.
    let unread = !body.discard_buffered();
    let rest = body
        .remaining()
        .filter(|n| unread && *n <= limits::HTTP_DISCARD_BYTES_MAX as u64);
    let small_rest = rest.is_some();
    let keep_alive = head.keep_alive && !response.close && !shutdown.is_started() && (!unread || small_rest);
    let mut response = response;
    let upgrade = response.upgrade.take().filter(|_| !unread);
    let head_only = head.method == Method::HEAD;
    let bytes = response.encode(&request_id, keep_alive, head_only);
    if !write(wire, bytes, limits).await {
        return After::Close;
    }
    let streamed = response
        .streamed
        .take()
        .filter(|_| !head_only && !response.is_bodyless());
    if let Some(streamed) = streamed {
        if !write_streamed(wire, streamed, limits).await {
            return After::Close;
        }
    }
    if let Some(upgrade) = upgrade {
        return After::Upgrade(upgrade);
    }
    if unread && !(keep_alive && drop_rest(wire, rest.unwrap_or_default()).await) {
        linger(wire).await;
        return After::Close;
    }
    if keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// Reads and drops the `rest` bytes of a body, within the discard time;
/// whether they all came.
async fn drop_rest(wire: &mut Wire, rest: u64) -> bool {
    let mut body = Body::new(wire, Framing::Length(rest));
    let time = Duration::from_millis(limits::HTTP_DISCARD_TIMEOUT_MS);
    matches!(
        monoio::time::timeout(time, body.discard(limits::HTTP_DISCARD_BYTES_MAX)).await,
        Ok(Ok(true))
    )
}

async fn next_head(wire: &mut Wire, limits: &HttpLimits, shutdown: &Shutdown) -> NextHead {
    if wire.buffered().is_empty() {
        let idle = monoio::select! {
            read = monoio::time::timeout(limits.keepalive_timeout, wire.fill()) => read,
            _ = shutdown.wait() => return NextHead::Closed,
        };
        if !matches!(idle, Ok(Ok(n)) if n > 0) {
            return NextHead::Closed;
        }
    }
    let deadline = Instant::now() + limits.head_timeout;
    loop {
        match parse_head(wire.buffered(), limits) {
            Ok(Some((head, consumed))) => {
                wire.consume(consumed);
                return NextHead::Request(head);
            }
            Ok(None) => {}
            Err(e) => return NextHead::Refused(Response::error(e.status(), &e.to_string()).closing()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(left, wire.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return NextHead::Closed,
            Err(_) => {
                let timeout = Response::error(StatusCode::REQUEST_TIMEOUT, "Request timeout").closing();
                return NextHead::Refused(timeout);
            }
        }
    }
}

/// Writes within the write timeout; `false` if the client is gone or stuck.
async fn write<B: IoBuf>(wire: &mut Wire, bytes: B, limits: &HttpLimits) -> bool {
    matches!(
        monoio::time::timeout(limits.write_timeout, wire.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Writes a streamed body, each chunk within the write timeout; `false` if
/// the client is gone or stuck, or the source failed or broke its length.
async fn write_streamed(wire: &mut Wire, mut body: Streamed, limits: &HttpLimits) -> bool {
    let mut written = 0u64;
    while let Some(chunk) = body.source.next_chunk().await {
        let Ok(chunk) = chunk else {
            return false;
        };
        written += chunk.len() as u64;
        if written > body.length || !write(wire, chunk, limits).await {
            return false;
        }
    }
    written == body.length
}

/// Half-closes, then reads and drops what the client still sends, bounded
/// in bytes and time, so that closing does not reset the connection before
/// the client has read our answer.
async fn linger(wire: &mut Wire) {
    let _ = wire.shutdown_write().await;
    let deadline = Instant::now() + Duration::from_millis(limits::HTTP_DISCARD_TIMEOUT_MS);
    let mut dropped = 0usize;
    while dropped < limits::HTTP_DISCARD_BYTES_MAX {
        let left = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(left, wire.fill()).await {
            Ok(Ok(n)) if n > 0 => {
                dropped += n;
                let buffered = wire.buffered().len();
                wire.consume(buffered);
            }
            _ => return,
        }
    }
}

//! HTTP/1.1 on a socket, and nothing about our API: accepting
//! ([`listener`]), one connection's request loop with keep-alive, in-order
//! pipelining and timeouts ([`connection`]), the request head parser with its
//! limits ([`request`]), request bodies with their framing and bound
//! ([`body`]) and responses ([`response`]).
//!
//! The layer above plugs in as a [`Service`]. Every bound comes from
//! [`HttpLimits`]; every error this layer produces is a JSON `{"error"}`
//! response, so a client never sees a reset instead of an answer.

pub mod body;
pub mod connection;
pub mod listener;
pub mod request;
pub mod response;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use body::Body;
pub use request::RequestHead;
pub use response::{ChunkSource, Response, Streamed};

/// The bounds the HTTP layer enforces (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Request line + headers, bytes (431 above).
    pub header_bytes_max: usize,
    /// Header lines (431 above).
    pub headers_count_max: usize,
    /// Time to receive a complete head once a request has begun.
    pub head_timeout: Duration,
    /// Idle time between keep-alive requests before closing.
    pub keepalive_timeout: Duration,
    /// Time to write a response.
    pub write_timeout: Duration,
}

/// What the layer above does with a request.
///
/// `call` runs under the deadline that `deadline` gives for the head; past
/// it the client gets a 408. A `call` that leaves body bytes unread is fine:
/// the connection discards them (bounded) or closes.
pub trait Service: 'static {
    /// The time `call` may take for this request, body reading included.
    fn deadline(&self, head: &RequestHead) -> Duration;

    /// Answers one request.
    fn call(&self, head: &RequestHead, body: &mut Body<'_>, peer: SocketAddr) -> impl Future<Output = Response>;
}

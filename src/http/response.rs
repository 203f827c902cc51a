//! Responses: status, headers, body, and their HTTP/1.1 encoding. Every
//! error answer of the server is [`Response::error`]: JSON `{"error": ...}`.
//! A body is bytes in memory, or [`Streamed`]: a known length whose chunks
//! the connection writes as a [`ChunkSource`] yields them.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, StatusCode};
use monoio::net::TcpStream;

/// What takes over the socket after a `101 Switching Protocols`: it gets
/// the stream and any bytes the client sent after the request head.
pub type Upgrade = Box<dyn FnOnce(TcpStream, Vec<u8>) -> Pin<Box<dyn Future<Output = ()>>>>;

/// Yields a streamed body's chunks; `None` at the end.
pub trait ChunkSource {
    /// The next chunk.
    fn next_chunk(&mut self) -> Pin<Box<dyn Future<Output = Option<io::Result<Bytes>>> + '_>>;
}

/// A body of known length, written chunk by chunk after the head. A source
/// that fails or yields a different length ends the connection (the framing
/// is lost).
pub struct Streamed {
    /// The Content-Length.
    pub length: u64,
    /// The chunks.
    pub source: Box<dyn ChunkSource>,
}

/// A complete response.
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers besides Content-Length and Connection, which the connection
    /// writes itself.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body bytes (omitted on the wire for HEAD and 1xx/204/304).
    pub body: Bytes,
    /// A streamed body instead of `body`.
    pub streamed: Option<Streamed>,
    /// Close the connection after this response.
    pub close: bool,
    /// For a 101: the protocol that takes the socket over.
    pub upgrade: Option<Upgrade>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body_length())
            .field("close", &self.close)
            .field("upgrade", &self.upgrade.is_some())
            .finish()
    }
}

/// `Content-Type: application/json`.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Response {
    /// A response without a body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            streamed: None,
            close: false,
            upgrade: None,
        }
    }

    /// A body of the given content type.
    pub fn bytes(status: StatusCode, content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, content_type)],
            body: body.into(),
            streamed: None,
            close: false,
            upgrade: None,
        }
    }

    /// A JSON body.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self::bytes(status, JSON, body)
    }

    /// The error answer: `{"error": message}`.
    pub fn error(status: StatusCode, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": message }))
    }

    /// A streamed body of the given content type.
    pub fn streamed(status: StatusCode, content_type: HeaderValue, body: Streamed) -> Self {
        Self {
            streamed: Some(body),
            ..Self::bytes(status, content_type, Bytes::new())
        }
    }

    /// The Content-Length of the body.
    pub fn body_length(&self) -> u64 {
        self.streamed.as_ref().map_or(self.body.len() as u64, |s| s.length)
    }

    /// Whether the status forbids a body (1xx, 204, 304).
    pub fn is_bodyless(&self) -> bool {
        self.status.is_informational()
            || self.status == StatusCode::NO_CONTENT
            || self.status == StatusCode::NOT_MODIFIED
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Marks the connection for closing after this response.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// A `101 Switching Protocols` with `headers`, handing the socket to
    /// `upgrade` once written.
    pub fn switching_protocols(headers: Vec<(HeaderName, HeaderValue)>, upgrade: Upgrade) -> Self {
        Self {
            upgrade: Some(upgrade),
            headers,
            ..Self::empty(StatusCode::SWITCHING_PROTOCOLS)
        }
    }

    /// Encodes status line, headers and (unless `head_only`) the body.
    pub fn encode(&self, request_id: &HeaderValue, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.canonical_reason().unwrap_or("Unknown").as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut header = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        for (name, value) in &self.headers {
            header(name.as_str().as_bytes(), value.as_bytes());
        }
        header(b"x-request-id", request_id.as_bytes());
        if self.status != StatusCode::SWITCHING_PROTOCOLS {
            header(
                CONNECTION.as_str().as_bytes(),
                if keep_alive { b"keep-alive" } else { b"close" },
            );
        }
        let bodyless = self.is_bodyless();
        if !bodyless {
            header(
                CONTENT_LENGTH.as_str().as_bytes(),
                self.body_length().to_string().as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !bodyless {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl ChunkSource for Nothing {
        fn next_chunk(&mut self) -> Pin<Box<dyn Future<Output = Option<io::Result<Bytes>>> + '_>> {
            Box::pin(async { None })
        }
    }

    /// Goal: a streamed body's head carries its declared length and no
    /// body bytes (the connection writes those), and a 304 carries none.
    #[test]
    fn streamed_heads_declare_their_length() {
        let id = HeaderValue::from_static("abc");
        let streamed = || Streamed {
            length: 5,
            source: Box::new(Nothing),
        };
        let octets = HeaderValue::from_static("application/octet-stream");
        let response = Response::streamed(StatusCode::OK, octets.clone(), streamed());
        let text = String::from_utf8(response.encode(&id, true, false)).unwrap();
        assert!(text.ends_with("content-length: 5\r\n\r\n"), "{text}");
        let not_modified = Response::streamed(StatusCode::NOT_MODIFIED, octets, streamed());
        let text = String::from_utf8(not_modified.encode(&id, true, false)).unwrap();
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn encodes_errors_as_json_with_length() {
        let id = HeaderValue::from_static("abc");
        let wire = Response::error(StatusCode::NOT_FOUND, "Not found").encode(&id, true, false);
        let text = String::from_utf8(wire).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(text.contains("x-request-id: abc\r\n"));
        assert!(text.contains("content-length: 21\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"Not found\"}"));
        let head = Response::error(StatusCode::NOT_FOUND, "Not found").encode(&id, false, true);
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("connection: close\r\ncontent-length: 21\r\n\r\n"));
    }
}

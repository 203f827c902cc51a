//! The WebSocket handshake (BEHAVIOR.md §8.2): the request must be a valid
//! upgrade (checked in the reference server's order); the answer is a 101
//! with the `Sec-WebSocket-Accept` of RFC 6455. Authentication (the ticket)
//! is the API layer's business.

use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::http::request::has_token;

/// Why a request is not a WebSocket upgrade (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// `Connection` lacks `upgrade`.
    #[error("Connection header did not include 'upgrade'")]
    Connection,
    /// `Upgrade` is not `websocket`.
    #[error("`Upgrade` header did not include 'websocket'")]
    Upgrade,
    /// No `Sec-WebSocket-Key`.
    #[error("`Sec-WebSocket-Key` header did not include a key")]
    Key,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("`Sec-WebSocket-Version` header did not include '13'")]
    Version,
}

/// Checks the upgrade headers and returns the `Sec-WebSocket-Accept` value.
pub fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, HandshakeError> {
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::Connection);
    }
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::Upgrade);
    }
    let key = headers.get(SEC_WEBSOCKET_KEY).ok_or(HandshakeError::Key)?;
    if headers.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| HandshakeError::Key)
}

/// The headers of the 101 answer.
pub fn switching_headers(accept: HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (UPGRADE, HeaderValue::from_static("websocket")),
        (CONNECTION, HeaderValue::from_static("Upgrade")),
        (SEC_WEBSOCKET_ACCEPT, accept),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_example_and_order_of_checks() {
        let mut h = HeaderMap::new();
        assert_eq!(accept_key(&h), Err(HandshakeError::Connection));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(accept_key(&h), Err(HandshakeError::Upgrade));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(accept_key(&h), Err(HandshakeError::Key));
        h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(accept_key(&h), Err(HandshakeError::Version));
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        assert_eq!(accept_key(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}

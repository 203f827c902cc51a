//! Request heads: httparse turns bytes into a [`RequestHead`] under the
//! header limits. A head that is not complete yet is `Ok(None)` (need more
//! bytes), never an error.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::HttpLimits;

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request line and headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Whether the client allows keep-alive (HTTP/1.1 default, or
    /// HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// Body framing.
    pub framing: Framing,
}

/// Why a head was refused; the status says whose fault and what to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Head larger than the byte limit.
    #[error("Request header fields too large")]
    HeadTooLarge,
    /// More header lines than allowed.
    #[error("Too many header fields")]
    TooManyHeaders,
    /// Not HTTP/1.x syntax.
    #[error("Malformed request: {0}")]
    Malformed(String),
    /// A Content-Length that is not one number, or both framings at once.
    #[error("Invalid request body framing")]
    BadFraming,
    /// A transfer coding other than chunked.
    #[error("Unsupported transfer encoding")]
    UnsupportedEncoding,
}

impl HeadError {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::HeadTooLarge | Self::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedEncoding => StatusCode::NOT_IMPLEMENTED,
            Self::Malformed(_) | Self::BadFraming => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses a head from the start of `buf`. `Ok(Some((head, n)))` consumed
/// `n` bytes; `Ok(None)` needs more bytes. Only the first
/// `header_bytes_max` bytes are looked at, so the verdict on given bytes is
/// the same however they arrived (a head is refused for what its first
/// bytes show, not for where a read happened to end).
pub fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.headers_count_max];
    let mut req = httparse::Request::new(&mut slots);
    let window = &buf[..buf.len().min(limits.header_bytes_max)];
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.header_bytes_max {
                Err(HeadError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("bad method".into()))?;
    let target = origin_form(req.path.unwrap_or_default());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| HeadError::Malformed("bad header name".into()))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Malformed("bad header value".into()))?;
        headers.append(name, value);
    }
    let keep_alive = keep_alive(req.version.unwrap_or(1), &headers);
    let framing = framing(&headers)?;
    Ok(Some((
        RequestHead {
            method,
            path,
            query,
            headers,
            keep_alive,
            framing,
        },
        consumed,
    )))
}

/// The path-and-query of a request target, also for the absolute form
/// (`http://host/path?q`, RFC 9112 §3.2.2).
fn origin_form(target: &str) -> &str {
    let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    else {
        return target;
    };
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Whether a comma-separated header (all its lines) holds `token`, in any case.
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn keep_alive(minor_version: u8, headers: &HeaderMap) -> bool {
    if has_token(headers, CONNECTION, "close") {
        return false;
    }
    minor_version >= 1 || has_token(headers, CONNECTION, "keep-alive")
}

fn framing(headers: &HeaderMap) -> Result<Framing, HeadError> {
    let encodings: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    let lengths: Vec<&HeaderValue> = headers.get_all(CONTENT_LENGTH).iter().collect();
    if !encodings.is_empty() {
        if !lengths.is_empty() {
            return Err(HeadError::BadFraming);
        }
        return if encodings.len() == 1 && encodings[0].as_bytes().eq_ignore_ascii_case(b"chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(HeadError::UnsupportedEncoding)
        };
    }
    match lengths.as_slice() {
        [] => Ok(Framing::Empty),
        [one] => content_length(one.as_bytes()).map(|n| if n == 0 { Framing::Empty } else { Framing::Length(n) }),
        _ => Err(HeadError::BadFraming),
    }
}

fn content_length(bytes: &[u8]) -> Result<u64, HeadError> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadFraming);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(HeadError::BadFraming)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_bytes_max: 256,
            headers_count_max: 4,
            head_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
        }
    }

    /// Goal: a head split at awkward points parses only once complete, the
    /// way pingora tests its parser on scripted chunks.
    #[test]
    fn partial_heads_need_more_bytes() {
        let full = b"POST /v1/users?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..full.len() - 5 {
            assert!(parse_head(&full[..cut], &limits()).unwrap().is_none(), "cut at {cut}");
        }
        let (head, n) = parse_head(full, &limits()).unwrap().unwrap();
        assert_eq!(n, full.len() - 5);
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.path, "/v1/users");
        assert_eq!(head.query.as_deref(), Some("x=1"));
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
    }

    #[test]
    fn limits_and_framing_errors() {
        let l = limits();
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(300));
        assert_eq!(parse_head(big.as_bytes(), &l).unwrap_err(), HeadError::HeadTooLarge);
        assert_eq!(
            parse_head(&big.as_bytes()[..280], &l).unwrap_err(),
            HeadError::HeadTooLarge
        );
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
        assert_eq!(parse_head(many.as_bytes(), &l).unwrap_err(), HeadError::TooManyHeaders);
        let both = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(both.as_bytes(), &l).unwrap_err(), HeadError::BadFraming);
        let neg = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse_head(neg.as_bytes(), &l).unwrap_err(), HeadError::BadFraming);
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(
            parse_head(gzip.as_bytes(), &l).unwrap_err(),
            HeadError::UnsupportedEncoding
        );
        assert!(matches!(
            parse_head(b"\x16\x03\x01garbage\r\n\r\n", &l),
            Err(HeadError::Malformed(_))
        ));
        let absolute = "GET http://relay.example/v1/users?x=1 HTTP/1.1\r\n\r\n";
        let head = parse_head(absolute.as_bytes(), &l).unwrap().unwrap().0;
        assert_eq!((head.path.as_str(), head.query.as_deref()), ("/v1/users", Some("x=1")));
        let close = "GET / HTTP/1.0\r\n\r\n";
        assert!(!parse_head(close.as_bytes(), &l).unwrap().unwrap().0.keep_alive);
    }
}

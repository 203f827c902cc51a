//! `RawConn`: HTTP/1.1 over a plain `TcpStream`, for tests where the exact bytes and their
//! timing matter (pipelining, partial heads, slow bodies, garbage, oversized input). It keeps
//! bytes read past one response for the next, so pipelined responses can be read in turn.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::client::Resp;

/// Default bound on how long any single read may block.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// What the peer did when we waited for the connection to end.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// Orderly end of stream.
    Eof,
    /// The connection was reset.
    Reset,
    /// Still open after the wait (bytes that arrived meanwhile are kept).
    StillOpen,
}

/// Builds request bytes: request line, `Host`, the given headers, `Content-Length` if a body is
/// given and the caller did not set a length or transfer encoding, then the body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if let Some(b) = body {
        if !framed {
            out.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    bytes
}

/// A JSON POST with `Content-Type: application/json`.
pub fn json_post(path: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    request_bytes("POST", path, &headers, Some(body.as_bytes()))
}

impl RawConn {
    pub fn connect(port: u16) -> Result<Self, Box<dyn std::error::Error>> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Half-closes our sending side.
    pub fn shutdown_write(&self) -> Result<(), Box<dyn std::error::Error>> {
        self.stream.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// Bytes received but not yet consumed by a parsed response.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> Result<usize, Box<dyn std::error::Error>> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "timed out waiting for bytes from the server (have {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                    .into())
                }
                Err(e) => {
                    return Err(format!("read failed: {e} (have {:?})", String::from_utf8_lossy(&self.buf)).into())
                }
            }
        }
    }

    /// Reads one response to a non-HEAD request.
    pub fn read_response(&mut self) -> Result<Resp, Box<dyn std::error::Error>> {
        self.read_response_inner(false)
    }

    /// Reads one response to a HEAD request (no body follows the head, whatever its headers).
    pub fn read_head_response(&mut self) -> Result<Resp, Box<dyn std::error::Error>> {
        self.read_response_inner(true)
    }

    fn read_response_inner(&mut self, head_only: bool) -> Result<Resp, Box<dyn std::error::Error>> {
        loop {
            let head_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                    break pos;
                }
                if self.fill()? == 0 {
                    return Err(format!(
                        "connection closed before a complete response head (have {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                    .into());
                }
            };
            let head = String::from_utf8(self.buf[..head_end].to_vec())?;
            self.buf.drain(..head_end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") {
                return Err(format!("bad status line {status_line:?}").into());
            }
            let status: u16 = parts
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|_| format!("bad status line {status_line:?}"))?;
            let mut headers = Vec::new();
            for line in lines {
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| format!("bad header line {line:?}"))?;
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let mut resp = Resp {
                status,
                headers,
                body: Vec::new(),
            };
            if (100..200).contains(&status) {
                continue; // interim response; the real one follows
            }
            if head_only || status == 204 || status == 304 {
                return Ok(resp);
            }
            let chunked = resp
                .header("transfer-encoding")
                .map(|te| te.to_ascii_lowercase().contains("chunked"))
                .unwrap_or(false);
            if chunked {
                resp.body = self.read_chunked()?;
            } else if let Some(len) = resp.header("content-length") {
                let len: usize = len.parse().map_err(|_| format!("bad content-length {len:?}"))?;
                while self.buf.len() < len {
                    if self.fill()? == 0 {
                        return Err(format!("connection closed after {} of {len} body bytes", self.buf.len()).into());
                    }
                }
                resp.body = self.buf.drain(..len).collect();
            } else {
                // No framing: the body runs to the end of the connection.
                while self.fill()? > 0 {}
                resp.body = std::mem::take(&mut self.buf);
            }
            return Ok(resp);
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(&self.buf, b"\r\n") {
                    break pos;
                }
                if self.fill()? == 0 {
                    return Err("connection closed inside a chunked body".into());
                }
            };
            let line = String::from_utf8(self.buf[..line_end].to_vec())?;
            self.buf.drain(..line_end + 2);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        let empty = pos == 0;
                        self.buf.drain(..pos + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if self.fill()? == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    return Err("connection closed inside a chunk".into());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Waits up to `within` for the server to end the connection. Bytes that arrive meanwhile
    /// are kept in the buffer (see `pending`).
    pub fn wait_closed(&mut self, within: Duration) -> Result<Closed, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.stream.set_read_timeout(Some(READ_TIMEOUT))?;
                return Ok(Closed::StillOpen);
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Closed::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
                    ) =>
                {
                    return Ok(Closed::Reset)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

//! Request bodies as the handler reads them: Content-Length or chunked
//! framing, decoded incrementally from the connection's [`Wire`], never
//! more than the caller's bound in memory. Handlers that buffer use
//! [`Body::read_to_vec`]; streaming handlers call [`Body::next_chunk`].

use std::io;

use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;

use super::request::Framing;
use super::wire::Wire;
use crate::limits;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// More bytes than the bound allows.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// Broken chunked framing.
    #[error("malformed chunked body")]
    Malformed,
    /// The client closed before sending the whole body.
    #[error("connection closed mid-body")]
    Incomplete,
    /// The socket failed.
    #[error("reading the body failed: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

/// The body of the request being handled.
pub struct Body<'a, S = TcpStream> {
    wire: &'a mut Wire<S>,
    state: State,
    declared: Option<u64>,
}

impl<'a, S: AsyncReadRent> Body<'a, S> {
    /// The body of a request with `framing` whose bytes follow in `wire`.
    pub fn new(wire: &'a mut Wire<S>, framing: Framing) -> Self {
        let (state, declared) = match framing {
            Framing::Empty => (State::Done, Some(0)),
            Framing::Length(n) => (State::Length(n), Some(n)),
            Framing::Chunked => (State::ChunkSize, None),
        };
        Self { wire, state, declared }
    }

    /// The Content-Length, if the body has one (0 for no body).
    pub fn declared_length(&self) -> Option<u64> {
        self.declared
    }

    /// Whether the whole body has been read.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still unread, when the framing says (Content-Length).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Done => Some(0),
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Reads the whole body, refusing more than `limit` bytes. A declared
    /// length above `limit` is refused before reading anything.
    pub async fn read_to_vec(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.declared.is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut out = Vec::with_capacity(self.declared.map_or(0, |n| n as usize));
        while let Some(chunk) = self.next_chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The next piece of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(rest) | State::ChunkData(rest) => return self.data(rest).await.map(Some),
                State::ChunkSize => self.chunk_size().await?,
                State::ChunkEnd => self.chunk_end().await?,
                State::Trailers => self.trailer().await?,
            }
        }
    }

    async fn fill(&mut self) -> Result<(), BodyError> {
        if self.wire.fill().await? == 0 {
            return Err(BodyError::Incomplete);
        }
        Ok(())
    }

    async fn data(&mut self, rest: u64) -> Result<Vec<u8>, BodyError> {
        if self.wire.buffered().is_empty() {
            self.fill().await?;
        }
        let n = (self.wire.buffered().len() as u64).min(rest);
        let bytes = self.wire.take(n as usize);
        let left = rest - n;
        self.state = match (self.state, left) {
            (State::Length(_), 0) => State::Done,
            (State::Length(_), l) => State::Length(l),
            (_, 0) => State::ChunkEnd,
            (_, l) => State::ChunkData(l),
        };
        Ok(bytes)
    }

    /// Reads one CRLF-terminated line (without the CRLF), bounded.
    async fn line(&mut self) -> Result<Vec<u8>, BodyError> {
        loop {
            if let Some(pos) = self.wire.buffered().windows(2).position(|w| w == b"\r\n") {
                let line = self.wire.take(pos);
                self.wire.consume(2);
                return Ok(line);
            }
            if self.wire.buffered().len() > limits::HTTP_CHUNK_LINE_BYTES_MAX {
                return Err(BodyError::Malformed);
            }
            self.fill().await?;
        }
    }

    async fn chunk_size(&mut self) -> Result<(), BodyError> {
        let line = self.line().await?;
        let digits = line.split(|b| *b == b';').next().unwrap_or_default();
        let text = std::str::from_utf8(digits).map_err(|_| BodyError::Malformed)?.trim();
        if text.is_empty() || text.len() > 15 {
            return Err(BodyError::Malformed);
        }
        let size = u64::from_str_radix(text, 16).map_err(|_| BodyError::Malformed)?;
        self.state = if size == 0 {
            State::Trailers
        } else {
            State::ChunkData(size)
        };
        Ok(())
    }

    async fn chunk_end(&mut self) -> Result<(), BodyError> {
        if !self.line().await?.is_empty() {
            return Err(BodyError::Malformed);
        }
        self.state = State::ChunkSize;
        Ok(())
    }

    async fn trailer(&mut self) -> Result<(), BodyError> {
        if self.line().await?.is_empty() {
            self.state = State::Done;
        }
        Ok(())
    }

    /// Reads and drops the rest of the body, at most `max` bytes; whether the
    /// body ended within that bound.
    pub async fn discard(&mut self, max: usize) -> Result<bool, BodyError> {
        let mut dropped = 0usize;
        while let Some(chunk) = self.next_chunk().await? {
            dropped += chunk.len();
            if dropped > max {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drops the rest of a Content-Length body if all of it has already
    /// arrived, without waiting for the socket. Returns whether the body is
    /// now finished.
    pub fn discard_buffered(&mut self) -> bool {
        if let State::Length(rest) = self.state {
            if self.wire.buffered().len() as u64 >= rest {
                self.wire.consume(rest as usize);
                self.state = State::Done;
            }
        }
        self.is_finished()
    }
}

#[cfg(test)]
mod fuzz;

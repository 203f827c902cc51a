//! One connection's socket and read buffer. Bytes read but not yet consumed
//! (the rest of a pipelined request, a body) stay in the buffer; monoio's
//! owned-buffer I/O reads straight into its spare capacity. The stream is a
//! type parameter (a [`TcpStream`] unless said otherwise) so that the body
//! decoder can be driven from memory in tests (`http::scripted`, test
//! builds only).

use std::io;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::limits;

/// A socket plus the bytes read from it that nobody consumed yet.
pub struct Wire<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl<S> Wire<S> {
    /// Wraps an accepted socket.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// The unconsumed bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` unconsumed bytes. An emptied buffer is freed:
    /// an idle keep-alive connection then holds no read buffer but the small
    /// one of its pending read.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Takes up to `n` unconsumed bytes.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len());
        if n == self.buf.len() {
            return std::mem::take(&mut self.buf);
        }
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// The socket, for upgrades that take it over.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.stream, self.buf)
    }
}

impl<S: AsyncReadRent> Wire<S> {
    /// Reads more bytes into the buffer; `Ok(0)` is end of stream. The
    /// first read of a request uses a small buffer (most requests fit, and
    /// an idle connection waits in this read), later reads a larger one.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        buf.reserve(if len == 0 {
            limits::HTTP_FIRST_READ_BYTES
        } else {
            limits::HTTP_READ_CHUNK_BYTES
        });
        let (result, slice) = self.stream.read(buf.slice_mut(len..)).await;
        self.buf = slice.into_inner();
        result
    }
}

impl<S: AsyncWriteRent> Wire<S> {
    /// Writes all of `bytes`.
    pub async fn write_all<B: IoBuf>(&mut self, bytes: B) -> io::Result<()> {
        let (result, _) = self.stream.write_all(bytes).await;
        result.map(|_| ())
    }

    /// Half-closes the write side (FIN), keeping the read side open.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

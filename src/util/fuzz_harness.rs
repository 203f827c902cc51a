//! What the parser fuzz tests share (test builds only): the proptest
//! configuration, a counting global allocator for the lib's test binary,
//! and an in-memory stream that hands out given bytes in given reads.
//!
//! The allocator counts, per thread and only inside [`measure`], the bytes
//! live at the peak and the largest single allocation, so a test can assert
//! that a parser never holds more than its configured bounds allow. Outside
//! `measure` it is the system allocator plus one thread-local read.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's own variable), else
//! [`CI_CASES`]; a longer run is `PROPTEST_CASES=100000 cargo nextest run -E
//! 'test(fuzz)'`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

use monoio::buf::{IoBufMut, IoVecBufMut};
use monoio::io::AsyncReadRent;
use monoio::BufResult;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property in CI: the whole fuzz set takes about fifteen seconds.
pub const CI_CASES: u32 = 2048;

/// The configuration of every fuzz property.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_CASES);
    Config {
        cases,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Adds `delta` live bytes and a block of `size` to the counts, if armed.
fn count(delta: isize, size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LIVE.set(LIVE.get() + delta);
            PEAK.set(PEAK.get().max(LIVE.get()));
            LARGEST.set(LARGEST.get().max(size));
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counting only
// touches const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, layout.size());
        // SAFETY: the caller's contract is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), 0);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A moving realloc holds both blocks for a moment.
        count(new_size as isize, new_size);
        count(-(layout.size() as isize), 0);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What a measured call allocated on this thread.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Most bytes allocated during the call and live at one time.
    pub peak_bytes: usize,
    /// The largest single block asked for.
    pub largest_bytes: usize,
}

/// Runs `f`, counting what it allocates on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    ARMED.set(true);
    let out = f();
    ARMED.set(false);
    let usage = Usage {
        peak_bytes: PEAK.get().max(0) as usize,
        largest_bytes: LARGEST.get(),
    };
    (out, usage)
}

/// Runs a future that never waits (every read of a [`Scripted`] stream is
/// ready) to its end.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a scripted read never waits"),
    }
}

/// A stream whose reads return the given pieces, each split further only by
/// the reader's buffer size; then end of stream.
pub struct Scripted {
    reads: VecDeque<Vec<u8>>,
}

impl Scripted {
    /// `bytes` cut at `cuts` (positions, taken modulo the length, any order).
    pub fn new(bytes: &[u8], cuts: &[usize]) -> Self {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.dedup();
        let reads = at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect();
        Self { reads }
    }

    /// Copies the next piece (or what of it fits) into `write`, a buffer
    /// of `room` bytes; how many bytes.
    fn next(&mut self, room: usize, write: impl FnOnce(&[u8])) -> usize {
        let Some(piece) = self.reads.front_mut() else {
            return 0;
        };
        let n = piece.len().min(room);
        write(&piece[..n]);
        piece.drain(..n);
        if piece.is_empty() {
            self.reads.pop_front();
        }
        n
    }
}

impl AsyncReadRent for Scripted {
    // As monoio's own readers do: write at `write_ptr`, at most
    // `bytes_total` bytes, then `set_init` to the count.
    fn read<T: IoBufMut>(&mut self, mut buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let room = buf.bytes_total();
        let n = self.next(room, |bytes| {
            // SAFETY: `bytes` is at most `bytes_total` long.
            unsafe { buf.write_ptr().copy_from_nonoverlapping(bytes.as_ptr(), bytes.len()) };
        });
        // SAFETY: the first `n` bytes were just written.
        unsafe { buf.set_init(n) };
        std::future::ready((Ok(n), buf))
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        // Nothing here reads vectored.
        std::future::ready((Err(io::Error::from(io::ErrorKind::Unsupported)), buf))
    }
}

/// Bytes for a parser: arbitrary noise, or fragments of the format
/// (`pieces`) put together, or such a message with one byte changed.
pub fn bytes_from(pieces: BoxedStrategy<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    let built = prop::collection::vec(pieces, 0..24).prop_map(|p| p.concat());
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..max),
        3 => built.clone(),
        2 => (built, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut bytes, at, byte)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        }),
    ]
}

//! Side runtimes: tokio runtimes on threads of their own, for the libraries
//! that need tokio (object_store, the ScyllaDB driver). Shards never poll
//! tokio futures: they hand one over with [`SideRuntime::run`] and await its
//! answer on a tokio oneshot, whose waker crosses threads. The threads live
//! until the process exits, like the store's threads.

use std::future::Future;
use std::io;

use tokio::runtime::{Builder, Handle};

use crate::limits;

/// The answer of a future run on the side runtime never came: the runtime
/// is gone, or the future panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the side runtime dropped the task")]
pub struct SideRuntimeGone;

/// A handle to the side runtime; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct SideRuntime {
    handle: Handle,
}

impl SideRuntime {
    /// Starts the runtime on a thread named `side-runtime`.
    pub fn start() -> io::Result<Self> {
        Self::start_named("side-runtime", 1)
    }

    /// Starts a runtime named `name`: one thread of that name with a
    /// current-thread runtime when `workers` is 1, else a multi-thread
    /// runtime with `workers` worker threads.
    pub fn start_named(name: &str, workers: usize) -> io::Result<Self> {
        if workers > 1 {
            let runtime = Builder::new_multi_thread()
                .enable_all()
                .worker_threads(workers)
                .max_blocking_threads(limits::SIDE_RUNTIME_BLOCKING_THREADS)
                .thread_name(name)
                .build()?;
            let handle = runtime.handle().clone();
            // The workers run on their own; this thread only keeps the
            // runtime alive.
            std::thread::Builder::new()
                .name(format!("{name}-owner"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            return Ok(Self { handle });
        }
        let runtime = Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(limits::SIDE_RUNTIME_BLOCKING_THREADS)
            .thread_name(format!("{name}-blocking"))
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        Ok(Self { handle })
    }

    /// Runs `future` on the runtime and blocks the calling thread (never a
    /// shard, nor a thread of this runtime) until it is done.
    pub fn block_on<T, F>(&self, future: F) -> Result<T, SideRuntimeGone>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| SideRuntimeGone)
    }

    /// Starts `future` on the side runtime without waiting for it.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    /// Runs `future` on the side runtime and awaits its output from any
    /// executor. Dropping the returned future does not cancel the task.
    pub async fn run<T, F>(&self, future: F) -> Result<T, SideRuntimeGone>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.await.map_err(|_| SideRuntimeGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a future handed over from a monoio runtime runs on the side
    /// runtime's thread and its answer wakes the monoio task.
    #[test]
    fn runs_futures_off_the_calling_thread() {
        let side = SideRuntime::start().unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        let name = rt
            .block_on(side.run(async { std::thread::current().name().map(str::to_string) }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("side-runtime"));
    }
}

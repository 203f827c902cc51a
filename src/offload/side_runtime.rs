//! The side runtime: one thread running a current-thread tokio runtime, for
//! the libraries that need tokio (object_store). Shards never poll tokio
//! futures: they hand one over with [`SideRuntime::run`] and await its
//! answer on a tokio oneshot, whose waker crosses threads. The thread lives
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
        let runtime = Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(limits::SIDE_RUNTIME_BLOCKING_THREADS)
            .thread_name("side-blocking")
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("side-runtime".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        Ok(Self { handle })
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

//! The CPU worker pool: a few plain threads that run CPU-heavy jobs (argon2id
//! password hashing) so no shard thread ever does. Jobs queue in a bounded
//! channel; the result comes back through a [`super::oneshot`].

use crossbeam_channel::{bounded, Sender};

use super::backpressure::offer_until_taken;
use super::oneshot::{self, Canceled};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads. Cloning shares the pool.
#[derive(Clone)]
pub struct WorkerPool {
    jobs: Sender<Job>,
}

impl WorkerPool {
    /// Starts `threads` workers named `name-N` with a queue of `depth` jobs.
    /// The workers exit once every clone of the pool is dropped.
    pub fn start(name: &str, threads: usize, depth: usize) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Job>(depth);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        }
        Ok(Self { jobs: tx })
    }

    /// Runs `job` on a worker and awaits its result. A full queue makes the
    /// caller wait for room without blocking its thread.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Canceled>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move || tx.send(job()));
        offer_until_taken(boxed, |job| self.jobs.try_send(job).into())
            .await
            .map_err(|_| Canceled)?;
        rx.await
    }
}

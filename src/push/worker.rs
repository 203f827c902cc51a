//! The push worker (BEHAVIOR.md §11.2), on shard 0: every
//! `--notifications-worker-interval-secs` it leases as many due jobs as
//! there is room for under `--notifications-worker-concurrency` (the lease
//! makes each job due again after `--notifications-visibility-timeout-secs`,
//! which is the retry of a failed push), sends each on the push pool, and
//! completes the job unless the push failed. Dead tokens are collected and
//! deleted together, every `--notifications-invalid-token-cleanup-interval-secs`
//! or as soon as `--notifications-invalid-token-cleanup-batch-size` wait.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Outcome, Provider};
use crate::metrics::Counter;
use crate::node::App;
use crate::offload::workers::WorkerPool;
use crate::shard::periodic::every;
use crate::shard::shutdown::Shutdown;
use crate::util::time::{millis_after, now_millis};

/// Provider calls run here: they block.
#[derive(Clone)]
pub struct Pusher {
    provider: Provider,
    pool: WorkerPool,
}

impl Pusher {
    /// A pool of `threads` sender threads for `provider`.
    pub fn start(provider: Provider, threads: usize) -> std::io::Result<Self> {
        let pool = WorkerPool::start("push", threads.max(1), threads.max(1))?;
        Ok(Self { provider, pool })
    }

    /// Sends one wake-up on the pool.
    async fn send(&self, device: Uuid, token: String) -> Outcome {
        let provider = self.provider.clone();
        self.pool
            .run(move || provider.send(device, &token))
            .await
            .unwrap_or(Outcome::Failed)
    }
}

/// The worker's state between polls.
struct Worker {
    app: Arc<App>,
    pusher: Pusher,
    in_flight: Cell<usize>,
    dead_tokens: RefCell<Vec<String>>,
    last_cleanup: Cell<Instant>,
}

/// Runs the worker with `pusher` until shutdown.
pub async fn run(app: Arc<App>, pusher: Pusher, shutdown: Shutdown) {
    let interval = Duration::from_secs(app.config.notifications_worker_interval_secs);
    let worker = Rc::new(Worker {
        pusher,
        app,
        in_flight: Cell::new(0),
        dead_tokens: RefCell::default(),
        last_cleanup: Cell::new(Instant::now()),
    });
    let polling = worker.clone();
    every(interval, shutdown, move || {
        let worker = polling.clone();
        async move {
            worker.clone().poll().await;
            worker.clean_up_if_due().await;
        }
    })
    .await;
    worker.clean_up().await;
}

impl Worker {
    /// Leases what there is room for and starts sending it.
    async fn poll(self: Rc<Self>) {
        let config = &self.app.config;
        let room = config
            .notifications_worker_concurrency
            .saturating_sub(self.in_flight.get());
        if room == 0 {
            return;
        }
        let now = now_millis();
        let lease_until = millis_after(now, config.notifications_visibility_timeout_secs);
        let jobs = match self.app.store.lease_pushes(now, room, lease_until).await {
            Ok(jobs) => jobs,
            Err(e) => return tracing::warn!(error = %e, "leasing push jobs failed"),
        };
        for (device, token) in jobs {
            self.in_flight.set(self.in_flight.get() + 1);
            monoio::spawn(self.clone().deliver(device, token));
        }
    }

    /// Sends one push and settles its job.
    async fn deliver(self: Rc<Self>, device: Uuid, token: String) {
        let outcome = self.pusher.send(device, token.clone()).await;
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        match outcome {
            Outcome::Delivered => self.count(Counter::PushesSent),
            Outcome::Unregistered => {
                self.count(Counter::PushInvalidTokens);
                self.dead_tokens.borrow_mut().push(token);
            }
            Outcome::Failed => {
                // The job stays leased; it is due again when the lease ends.
                return self.count(Counter::PushErrors);
            }
        }
        if let Err(e) = self.app.store.complete_push(device).await {
            tracing::warn!(error = %e, "completing a push job failed; it will be sent again");
        }
        let batch = self.app.config.notifications_invalid_token_cleanup_batch_size;
        if self.dead_tokens.borrow().len() >= batch {
            self.clean_up().await;
        }
    }

    async fn clean_up_if_due(&self) {
        let period = Duration::from_secs(self.app.config.notifications_invalid_token_cleanup_interval_secs);
        if self.last_cleanup.get().elapsed() >= period {
            self.clean_up().await;
        }
    }

    /// Deletes the collected dead tokens from every device carrying them.
    async fn clean_up(&self) {
        self.last_cleanup.set(Instant::now());
        let tokens = std::mem::take(&mut *self.dead_tokens.borrow_mut());
        if tokens.is_empty() {
            return;
        }
        match self.app.store.remove_push_tokens(tokens).await {
            Ok(n) => tracing::info!(devices = n, "dead push tokens deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting dead push tokens failed"),
        }
    }

    fn count(&self, counter: Counter) {
        if let Some(metrics) = self.app.shard_metrics(0) {
            metrics.count(counter);
        }
    }
}

//! The mesh: how one shard asks another to run something (Seastar's
//! `submit_to`). Each shard has one bounded lock-free inbox
//! ([`crossbeam_queue::ArrayQueue`]) that every other shard pushes jobs into;
//! a push wakes the target's runtime through the waker of its inbox task.
//! A full inbox makes the sender wait and retry: back-pressure, never a drop.
//!
//! The [`Mesh`] is `Send + Sync` and inert; a shard turns it into a
//! [`MeshEndpoint`] (`!Send`, bound to that shard and its local context `C`)
//! with [`Mesh::connect`], the way glommio's `SharedSender` becomes a
//! `ConnectedSender`. A job runs on the target shard with that shard's
//! context and its answer comes back through a [`oneshot`].

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::ArrayQueue;

use super::ShardId;
use crate::offload::backpressure::{offer_until_taken, offer_until_taken_blocking, Offer};
use crate::offload::oneshot::{self, Canceled};

/// A job for a shard: runs once on that shard's thread with its context.
pub type Job<C> = Box<dyn FnOnce(Rc<C>) + Send>;

struct Inbox<C> {
    queue: ArrayQueue<Job<C>>,
    waker: Mutex<Option<Waker>>,
}

/// All shards' inboxes. Share it with `Arc`; it does nothing until connected.
pub struct Mesh<C> {
    inboxes: Box<[Inbox<C>]>,
}

impl<C: 'static> Mesh<C> {
    /// A mesh for `shards` shards with inboxes of `depth` jobs.
    pub fn new(shards: usize, depth: usize) -> Arc<Self> {
        let inboxes = (0..shards)
            .map(|_| Inbox {
                queue: ArrayQueue::new(depth.max(1)),
                waker: Mutex::new(None),
            })
            .collect();
        Arc::new(Self { inboxes })
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Binds the mesh to shard `me` on the calling thread. The caller must
    /// also spawn [`MeshEndpoint::serve`] there.
    pub fn connect(self: &Arc<Self>, me: ShardId, context: Rc<C>) -> Rc<MeshEndpoint<C>> {
        debug_assert!(me < self.shards());
        Rc::new(MeshEndpoint {
            mesh: self.clone(),
            me,
            context,
        })
    }

    /// Pushes a job from any thread (also one that is not a shard, such as
    /// the thread that starts the shutdown). Returns the job back when the
    /// inbox is full.
    pub fn try_push(&self, to: ShardId, job: Job<C>) -> Result<(), Job<C>> {
        let Some(inbox) = self.inboxes.get(to) else {
            return Err(job);
        };
        inbox.queue.push(job)?;
        let waker = inbox.waker.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Pushes a job, waiting (asynchronously) while the target inbox is full.
    pub async fn push(&self, to: ShardId, job: Job<C>) {
        // An inbox is never closed: the offer is taken or waits.
        let _ = offer_until_taken(job, |job| self.offer(to, job)).await;
    }

    /// Pushes a job from a thread that is not a shard, sleeping while the
    /// target inbox is full.
    pub fn push_blocking(&self, to: ShardId, job: Job<C>) {
        let _ = offer_until_taken_blocking(job, |job| self.offer(to, job));
    }

    fn offer(&self, to: ShardId, job: Job<C>) -> Offer<Job<C>> {
        if to >= self.shards() {
            return Offer::Closed;
        }
        match self.try_push(to, job) {
            Ok(()) => Offer::Taken,
            Err(job) => Offer::Full(job),
        }
    }
}

/// One shard's view of the mesh: knows which shard it is and its context.
pub struct MeshEndpoint<C> {
    mesh: Arc<Mesh<C>>,
    me: ShardId,
    context: Rc<C>,
}

impl<C: 'static> MeshEndpoint<C> {
    /// This shard.
    pub fn me(&self) -> ShardId {
        self.me
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// This shard's context.
    pub fn context(&self) -> &Rc<C> {
        &self.context
    }

    /// Runs `f` on shard `to` with that shard's context and returns its
    /// answer. On the own shard it runs inline, without a queue hop.
    pub async fn call<T, F, Fut>(&self, to: ShardId, f: F) -> Result<T, Canceled>
    where
        T: Send + 'static,
        F: FnOnce(Rc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if to == self.me {
            return Ok(f(self.context.clone()).await);
        }
        let (tx, rx) = oneshot::channel();
        let job: Job<C> = Box::new(move |context| {
            monoio::spawn(async move { tx.send(f(context).await) });
        });
        self.mesh.push(to, job).await;
        rx.await
    }

    /// Drains this shard's inbox forever, running each job as it arrives.
    /// Sleeps (no polling) while the inbox is empty.
    pub async fn serve(self: Rc<Self>) {
        loop {
            let batch = Drain { endpoint: &self }.await;
            for job in batch {
                job(self.context.clone());
            }
        }
    }
}

/// Resolves with the jobs waiting in the inbox, registering the waker first
/// so that a push between the check and the sleep is never missed.
struct Drain<'a, C> {
    endpoint: &'a MeshEndpoint<C>,
}

impl<C> Future for Drain<'_, C> {
    type Output = Vec<Job<C>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inbox) = self.endpoint.mesh.inboxes.get(self.endpoint.me) else {
            return Poll::Pending;
        };
        {
            let mut slot = inbox.waker.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        let mut jobs = Vec::new();
        while let Some(job) = inbox.queue.pop() {
            jobs.push(job);
        }
        if jobs.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(jobs)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::shard::runtime::{block_on, ChosenDriver};

    struct Ctx {
        id: usize,
    }

    /// Goal: a call crosses from shard 0 to shard 1, runs there with shard
    /// 1's context, and the answer comes back; also with a full inbox.
    #[test]
    fn call_runs_on_the_target_shard() {
        let mesh = Mesh::<Ctx>::new(2, 1);
        let remote = mesh.clone();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            block_on(ChosenDriver::Epoll, async move {
                let endpoint = remote.connect(1, Rc::new(Ctx { id: 1 }));
                monoio::spawn(endpoint.clone().serve());
                while stop_rx.try_recv().is_err() {
                    monoio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .unwrap();
        });
        let answers = block_on(ChosenDriver::Epoll, async move {
            let endpoint = mesh.connect(0, Rc::new(Ctx { id: 0 }));
            let mut answers = Vec::new();
            for i in 0..50usize {
                answers.push(
                    endpoint
                        .call(1, move |ctx| async move { ctx.id * 100 + i })
                        .await
                        .unwrap(),
                );
            }
            answers.push(endpoint.call(0, |ctx| async move { ctx.id }).await.unwrap());
            answers
        })
        .unwrap();
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(answers.len(), 51);
        assert!(answers[..50].iter().enumerate().all(|(i, a)| *a == 100 + i));
        assert_eq!(answers[50], 0);
    }
}

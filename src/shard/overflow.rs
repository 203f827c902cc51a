//! Jobs for shards from a thread that must never block (the side runtime
//! that hears other nodes). [`Overflow::send`] tries the shard's inbox;
//! when it is full, the job waits in one bounded queue that a single thread
//! (`shard-overflow`) hands on as room frees; when that is full too, the
//! job is dropped and the shard is owed its make-up job (for events: every
//! session re-reads its mailbox), which the thread hands on once there is
//! room. So a flood costs one thread and a bounded queue, never a thread
//! per job, and nothing is silently lost.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use super::mesh::{Job, Mesh};
use super::ShardId;

/// The job a shard is owed when some of its jobs were dropped.
pub type MakeUp<C> = Box<dyn Fn() -> Job<C> + Send>;

/// See the module documentation.
pub struct Overflow<C> {
    mesh: Arc<Mesh<C>>,
    queue: Sender<(ShardId, Job<C>)>,
    owed: Arc<[AtomicBool]>,
}

impl<C: 'static> Overflow<C> {
    /// Starts the thread, with room for `depth` jobs, every `check` looking
    /// for a shard owed its `make_up`. The thread ends once this is dropped
    /// and its queue is handed on.
    pub fn start(mesh: Arc<Mesh<C>>, depth: usize, check: Duration, make_up: MakeUp<C>) -> io::Result<Self> {
        let (queue, waiting) = bounded::<(ShardId, Job<C>)>(depth.max(1));
        let owed: Arc<[AtomicBool]> = (0..mesh.shards()).map(|_| AtomicBool::new(false)).collect();
        let (target, debts) = (mesh.clone(), owed.clone());
        let depth = depth.max(1);
        std::thread::Builder::new()
            .name("shard-overflow".into())
            .spawn(move || {
                let mut handed = 0;
                loop {
                    match waiting.recv_timeout(check) {
                        Ok((shard, job)) => {
                            target.push_blocking(shard, job);
                            handed += 1;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    // A make-up job comes after what was queued when it was
                    // owed (at the latest one queue's length later).
                    if waiting.is_empty() || handed >= depth {
                        handed = 0;
                        pay(&target, &debts, &make_up);
                    }
                }
            })?;
        Ok(Self { mesh, queue, owed })
    }

    /// Hands `job` to `shard`: at once, or through the queue, or, when both
    /// are full, by owing the shard its make-up job.
    pub fn send(&self, shard: ShardId, job: Job<C>) {
        let Err(job) = self.mesh.try_push(shard, job) else {
            return;
        };
        if self.queue.try_send((shard, job)).is_err() {
            if let Some(debt) = self.owed.get(shard) {
                if !debt.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        shard,
                        "a shard's inbox and the overflow queue are full; its sessions re-read their mailboxes"
                    );
                }
            }
        }
    }
}

/// Hands every shard that is owed its make-up job one.
fn pay<C: 'static>(mesh: &Mesh<C>, debts: &[AtomicBool], make_up: &MakeUp<C>) {
    for (shard, debt) in debts.iter().enumerate() {
        if debt.swap(false, Ordering::AcqRel) {
            mesh.push_blocking(shard, make_up());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Instant;

    use super::*;
    use crate::shard::runtime::{block_on, ChosenDriver};

    #[derive(Default)]
    struct Ran(RefCell<Vec<usize>>);

    const MAKE_UP: usize = usize::MAX;

    /// Goal: a flood of jobs for a shard that is not draining its inbox
    /// holds at most the inbox and the queue (plus the one the thread is
    /// handing on), and the shard gets its make-up job once, after the
    /// rest, when it drains again. Method: one shard with an inbox of 2,
    /// a queue of 8, 1,000 jobs sent before the shard serves.
    #[test]
    fn a_flood_is_bounded_and_made_up_for() {
        let mesh = Mesh::<Ran>::new(1, 2);
        let make_up: MakeUp<Ran> = Box::new(|| Box::new(|ran: Rc<Ran>| ran.0.borrow_mut().push(MAKE_UP)));
        let overflow = Overflow::start(mesh.clone(), 8, Duration::from_millis(5), make_up).unwrap();
        for i in 0..1_000 {
            overflow.send(0, Box::new(move |ran: Rc<Ran>| ran.0.borrow_mut().push(i)));
        }
        let ran = block_on(ChosenDriver::Epoll, async move {
            let ran = Rc::new(Ran::default());
            let endpoint = mesh.connect(0, ran.clone());
            monoio::spawn(endpoint.serve());
            let deadline = Instant::now() + Duration::from_secs(10);
            while ran.0.borrow().last() != Some(&MAKE_UP) {
                assert!(Instant::now() < deadline, "no make-up job: {:?}", ran.0.borrow());
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            monoio::time::sleep(Duration::from_millis(50)).await;
            let ran = ran.0.borrow().clone();
            ran
        })
        .unwrap();
        let (jobs, made_up) = ran.split_at(ran.len() - 1);
        assert_eq!(made_up, [MAKE_UP]);
        assert!(jobs.len() <= 2 + 8 + 1, "{} jobs held for a stalled shard", jobs.len());
        assert!(jobs.windows(2).all(|w| w[0] < w[1]), "in order: {jobs:?}");
    }
}

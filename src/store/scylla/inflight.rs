//! What this process has in flight on the send path, so one node behaves
//! exactly like the embedded store without a single writer:
//!
//! - [`Appends`]: the positions handed out per mailbox and not yet
//!   acknowledged by the database. A fetch reads only below the smallest of
//!   them (the mailbox's *watermark*), so a reader never passes a message
//!   that commits late; an append's future resolves only once every
//!   earlier position of its mailboxes is settled, so the arrivals a
//!   session is handed never jump over a message it cannot read yet. Each
//!   position also names its predecessor (`prev`): the last position this
//!   process handed out in that mailbox, or one below itself when it does
//!   not know one (a reader then reads the store).
//! - [`Keys`]: Idempotency-Keys whose send is in flight; a repeat waits for
//!   the first to finish, then finds its stored answer.
//!
//! Across several relay nodes neither is enough on its own: node tags,
//! the late-commit window and Redis leases on Idempotency-Keys complete
//! them (docs/ARCHITECTURE.md, "Several relay nodes on one mailbox").

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

use super::positions::SeqGenerator;
use crate::limits;

#[derive(Default)]
struct Mailbox {
    /// Positions in flight: `true` once settled (written or failed).
    inflight: BTreeMap<u64, bool>,
    /// The last position handed out here.
    last: Option<u64>,
    /// Woken when the settled prefix is popped.
    popped: Arc<Notify>,
}

/// Positions in flight, per mailbox.
#[derive(Default)]
pub struct Appends {
    mailboxes: Mutex<HashMap<Uuid, Mailbox>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A position handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    /// The mailbox.
    pub device: Uuid,
    /// The position.
    pub seq: u64,
    /// Its predecessor, as far as this process knows.
    pub prev: u64,
}

impl Appends {
    /// Hands out one position per target, in order, and puts them in flight.
    pub fn assign(&self, generator: &SeqGenerator, targets: &[Uuid]) -> Vec<Assigned> {
        let mut mailboxes = lock(&self.mailboxes);
        if mailboxes.len() > limits::SCYLLA_MAILBOXES_TRACKED_MAX {
            mailboxes.retain(|_, m| !m.inflight.is_empty());
        }
        targets
            .iter()
            .map(|&device| {
                let seq = generator.next();
                let mailbox = mailboxes.entry(device).or_default();
                let prev = mailbox.last.replace(seq).unwrap_or(seq - 1);
                mailbox.inflight.insert(seq, false);
                Assigned { device, seq, prev }
            })
            .collect()
    }

    /// Marks positions settled and pops every mailbox's settled prefix.
    pub fn settle(&self, assigned: &[Assigned]) {
        let mut mailboxes = lock(&self.mailboxes);
        for a in assigned {
            if let Some(m) = mailboxes.get_mut(&a.device) {
                if let Some(done) = m.inflight.get_mut(&a.seq) {
                    *done = true;
                }
                let before = m.inflight.len();
                while m.inflight.first_key_value().is_some_and(|(_, done)| *done) {
                    m.inflight.pop_first();
                }
                if m.inflight.len() != before {
                    m.popped.notify_waiters();
                }
            }
        }
    }

    /// Waits until every position in `assigned` is popped: it and every
    /// earlier one of its mailbox are settled.
    pub async fn wait_in_order(&self, assigned: &[Assigned]) {
        for a in assigned {
            loop {
                let popped = {
                    let mailboxes = lock(&self.mailboxes);
                    match mailboxes.get(&a.device) {
                        Some(m) if m.inflight.contains_key(&a.seq) => m.popped.clone(),
                        _ => break,
                    }
                };
                let notified = popped.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let still = lock(&self.mailboxes)
                    .get(&a.device)
                    .is_some_and(|m| m.inflight.contains_key(&a.seq));
                if !still {
                    break;
                }
                notified.await;
            }
        }
    }

    /// The mailbox's watermark: reads stop below it. Every position handed
    /// out later is above it too.
    pub fn watermark(&self, device: Uuid, generator: &SeqGenerator) -> u64 {
        let mailboxes = lock(&self.mailboxes);
        let horizon = generator.horizon();
        mailboxes
            .get(&device)
            .and_then(|m| m.inflight.keys().next().copied())
            .map_or(horizon, |first| first.min(horizon))
    }

    /// Forgets what is known of a mailbox (its device was deleted or taken
    /// over): the next append knows no predecessor.
    pub fn forget(&self, device: Uuid) {
        let mut mailboxes = lock(&self.mailboxes);
        if mailboxes.get(&device).is_some_and(|m| m.inflight.is_empty()) {
            mailboxes.remove(&device);
        } else if let Some(m) = mailboxes.get_mut(&device) {
            m.last = None;
        }
    }
}

/// Idempotency-Keys whose send is in flight in this process.
#[derive(Default)]
pub struct Keys {
    keys: Mutex<HashMap<(Uuid, Uuid), Arc<Notify>>>,
}

/// Holds a key while its send runs; dropping it wakes the repeats.
pub struct KeyGuard<'a> {
    keys: &'a Keys,
    key: (Uuid, Uuid),
    done: Arc<Notify>,
}

impl Keys {
    /// Waits until no send with `key` is in flight here, then holds it.
    pub async fn hold(&self, key: (Uuid, Uuid)) -> KeyGuard<'_> {
        loop {
            let busy = {
                let mut keys = lock(&self.keys);
                match keys.get(&key) {
                    Some(done) => done.clone(),
                    None => {
                        let done = Arc::new(Notify::new());
                        keys.insert(key, done.clone());
                        return KeyGuard { keys: self, key, done };
                    }
                }
            };
            let notified = busy.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !lock(&self.keys).get(&key).is_some_and(|d| Arc::ptr_eq(d, &busy)) {
                continue;
            }
            notified.await;
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        lock(&self.keys.keys).remove(&self.key);
        self.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a later position that settles first waits for the earlier
    /// one, and the watermark stays below the unsettled one.
    #[test]
    fn positions_complete_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (appends, generator) = (Arc::new(Appends::default()), SeqGenerator::new(1));
            let device = Uuid::new_v4();
            let first = appends.assign(&generator, &[device]);
            let second = appends.assign(&generator, &[device]);
            assert_eq!(second[0].prev, first[0].seq);
            assert_eq!(first[0].prev, first[0].seq - 1, "unknown predecessor");
            appends.settle(&second);
            assert_eq!(appends.watermark(device, &generator), first[0].seq);
            let waiter = {
                let (appends, second) = (appends.clone(), second.clone());
                tokio::spawn(async move { appends.wait_in_order(&second).await })
            };
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished(), "waits for the earlier position");
            appends.settle(&first);
            waiter.await.unwrap();
            assert!(appends.watermark(device, &generator) > second[0].seq);
        });
    }

    /// Goal: a second holder of a key waits until the first lets go.
    #[test]
    fn a_repeated_key_waits_for_the_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let keys = Arc::new(Keys::default());
            let key = (Uuid::new_v4(), Uuid::new_v4());
            let first = keys.hold(key).await;
            let second = {
                let keys = keys.clone();
                tokio::spawn(async move {
                    let _held = keys.hold(key).await;
                })
            };
            tokio::task::yield_now().await;
            assert!(!second.is_finished());
            drop(first);
            second.await.unwrap();
        });
    }
}

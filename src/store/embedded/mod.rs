//! The embedded backend: fjall in `--data-dir`. fjall calls block, so they
//! run on the store's own threads, never on a shard: one writer thread that
//! group-commits ([`group_commit`]) and `--store-read-threads` readers.
//! A shard sends a closure over a bounded channel and awaits its answer on a
//! [`oneshot`]; a full channel makes the shard wait, not block.
//!
//! The operations themselves live beside this file, one per interface trait:
//! [`accounts`], [`devices`], [`prekeys`], [`mailboxes`], [`idempotency`],
//! [`refresh`], [`revocations`], [`attachments`], [`backups`], and
//! [`tickets`] (which live in memory); the writer's in-memory
//! [`mailbox_index`] serves [`mailboxes`].

mod accounts;
mod attachments;
mod backups;
mod devices;
pub mod export;
pub mod group_commit;
mod idempotency;
pub mod layout;
mod mailbox_index;
mod mailboxes;
mod prekeys;
mod push;
pub mod records;
mod refresh;
mod revocations;
pub mod tables;
mod tickets;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use self::group_commit::{Completion, WriteJob, Writer};
use self::mailbox_index::MailboxIndex;
use self::tables::{backend, Tables};
use super::{Health, StoreError, StoreFuture};
use crate::config::{Durability, StoreFaults};
use crate::limits;
use crate::offload::backpressure::offer_until_taken;
use crate::offload::oneshot;

type ReadJob = Box<dyn FnOnce(&Tables) + Send>;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    tables: Arc<Tables>,
    writes: Sender<WriteJob>,
    reads: Sender<ReadJob>,
    poisoned: Arc<AtomicBool>,
    faults: StoreFaults,
    tickets: tickets::TicketTable,
}

/// The store's threads; join them after dropping every store handle.
pub struct StoreThreads {
    handles: Vec<JoinHandle<()>>,
}

/// How to open the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// What an acknowledged write survives.
    pub durability: Durability,
    /// Reader threads.
    pub read_threads: usize,
    /// Injected faults (test builds).
    pub faults: StoreFaults,
    /// Devices plus queued messages the writer keeps indexed in memory
    /// (per generation; see [`mailbox_index`]).
    pub mailbox_index_max: usize,
}

impl EmbeddedStore {
    /// Opens the store in `dir` and starts its threads.
    pub fn open(dir: &Path, options: &EmbeddedOptions) -> Result<(Arc<Self>, StoreThreads), StoreError> {
        let tables = Arc::new(Tables::open(dir)?);
        tables.index_refresh_tokens_by_user()?;
        let poisoned = Arc::new(AtomicBool::new(false));
        let (writes, write_rx) = bounded::<WriteJob>(limits::STORE_QUEUE_DEPTH);
        let (reads, read_rx) = bounded::<ReadJob>(limits::STORE_QUEUE_DEPTH);
        let spawn_err = |e: std::io::Error| StoreError::Backend(Box::new(e));
        let mut handles = Vec::new();
        let writer = Writer {
            tables: tables.clone(),
            mailboxes: MailboxIndex::new(options.mailbox_index_max),
        };
        let (p, durability, faults) = (poisoned.clone(), options.durability, options.faults);
        handles.push(
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || group_commit::run_writer(writer, write_rx, durability, p, faults))
                .map_err(spawn_err)?,
        );
        for i in 0..options.read_threads.max(1) {
            let (t, rx) = (tables.clone(), read_rx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || rx.iter().for_each(|job| job(&t)))
                .map_err(spawn_err)?;
            handles.push(handle);
        }
        let store = Self {
            tables,
            writes,
            reads,
            poisoned,
            faults: options.faults,
            tickets: Default::default(),
        };
        Ok((Arc::new(store), StoreThreads { handles }))
    }

    /// Runs `op` on the writer thread as one serialized transaction and
    /// answers after its group's journal flush.
    fn write<T, F>(&self, op: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let poisoned = self.poisoned.clone();
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |writer| {
            let result = if poisoned.load(Ordering::Acquire) {
                Err(StoreError::Poisoned)
            } else {
                op(writer)
            };
            if result.is_err() {
                writer.drop_seq_reservation();
            }
            let complete: Completion = Box::new(move |flushed| {
                tx.send(flushed.and(result));
            });
            complete
        });
        Box::pin(async move {
            send_when_room(&self.writes, job).await?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs `op` on a reader thread.
    fn read<T, F>(&self, op: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Tables) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |tables| tx.send(op(tables)));
        Box::pin(async move {
            send_when_room(&self.reads, job).await?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }
}

/// Queues `job`, waiting asynchronously while the channel is full.
async fn send_when_room<J>(channel: &Sender<J>, job: J) -> Result<(), StoreError> {
    offer_until_taken(job, |job| channel.try_send(job).into())
        .await
        .map_err(|_| StoreError::Closed)
}

impl Health for EmbeddedStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        let delay = self.faults.ping_delay;
        self.read(move |_| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            Ok(())
        })
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        self.tables.db.persist(fjall::PersistMode::SyncAll).map_err(backend)
    }
}

impl StoreThreads {
    /// Waits for the store's threads; they exit once every
    /// [`EmbeddedStore`] handle is dropped.
    pub fn join(self) {
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::runtime::{block_on, ChosenDriver};
    use crate::store::{
        conformance, Accounts, Appended, Devices, Mailboxes, NewMessage, PasswordChange, RefreshRecord, RefreshTokens,
        Rotation, UserRecord,
    };

    fn options(durability: Durability) -> EmbeddedOptions {
        EmbeddedOptions {
            durability,
            read_threads: 2,
            faults: StoreFaults::default(),
            mailbox_index_max: 1 << 16,
        }
    }

    /// Goal: the embedded backend passes every conformance case, each on a
    /// fresh store in its own temp dir, with both durability modes.
    #[test]
    fn passes_the_conformance_suite() {
        for durability in [Durability::Fsync, Durability::Buffered] {
            for (name, case) in conformance::CASES {
                let dir = tempfile::tempdir().unwrap();
                let (store, threads) = EmbeddedStore::open(dir.path(), &options(durability)).unwrap();
                block_on(ChosenDriver::Epoll, case(&*store)).unwrap();
                drop(store);
                threads.join();
                eprintln!("conformance {name} ({durability:?}): ok");
            }
        }
    }

    /// Goal: what was acknowledged survives closing and reopening the store,
    /// several times over (fjall's recovery-test pattern).
    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut names: Vec<String> = Vec::new();
        for round in 0..3 {
            let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
            block_on(ChosenDriver::Epoll, async {
                for name in &names {
                    assert!(
                        store.user_by_name(name).await.unwrap().is_some(),
                        "{name} lost in round {round}"
                    );
                }
                let name = format!("user{round}");
                let user = UserRecord {
                    id: uuid::Uuid::now_v7(),
                    username: name.clone(),
                    password_hash: "h".into(),
                    created_at_micros: 0,
                    legacy: false,
                    token_generation: 0,
                    user_scope_generation: 0,
                };
                let refresh = RefreshRecord {
                    hash: crate::auth::refresh::hash_text(&name),
                    user_id: user.id,
                    device_id: None,
                    family: uuid::Uuid::new_v4(),
                    expires_at_secs: 1,
                    generation: 0,
                    user_scope_generation: 0,
                };
                store.create_user(user.clone(), refresh).await.unwrap();
                assert!(store.devices_of(user.id).await.unwrap().is_empty());
                names.push(name);
            })
            .unwrap();
            drop(store);
            threads.join();
        }
    }

    /// A message from `target` to itself.
    fn message_to(target: uuid::Uuid, submission: uuid::Uuid) -> NewMessage {
        NewMessage {
            target,
            sender_user: uuid::Uuid::now_v7(),
            sender_device: target,
            submission_id: submission,
            payload: bytes::Bytes::from_static(b"c"),
            created_at_ms: 1,
            expires_at_secs: i64::MAX / 4,
            wake_at_ms: None,
        }
    }

    /// The positions of the stored outcomes.
    fn stored_seqs(outcomes: &[Appended]) -> Vec<u64> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Appended::Stored(q) => Some(q.seq),
                _ => None,
            })
            .collect()
    }

    /// Goal: a write that fails after it took sequence numbers leaves no
    /// number in use without a durable reservation: after a restart, new
    /// messages still sort after every message stored before it. Method:
    /// right after a reopen (the next number needs a new reservation), an
    /// append to a good mailbox and to one holding an undecodable row
    /// fails as a whole; the next append succeeds; after another reopen an
    /// append must come after it.
    #[test]
    fn a_failed_write_leaves_no_number_unreserved() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (
            conformance::new_device(uuid::Uuid::now_v7(), 1, "good"),
            conformance::new_device(uuid::Uuid::now_v7(), 1, "bad"),
        );
        let (target, broken) = (good.device.id, bad.device.id);
        let mut before = Vec::new();
        for round in 0..3 {
            let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
            block_on(ChosenDriver::Epoll, async {
                match round {
                    0 => {
                        conformance::create_device(&*store, good.clone()).await;
                        conformance::create_device(&*store, bad.clone()).await;
                        let garbage = layout::mailbox_key(broken, u64::MAX - 1);
                        store.tables.mailboxes.insert(garbage, [0xff_u8; 3]).unwrap();
                    }
                    1 => {
                        let both = vec![
                            message_to(target, uuid::Uuid::new_v4()),
                            message_to(broken, uuid::Uuid::new_v4()),
                        ];
                        assert!(store.append(both).await.is_err(), "the broken mailbox fails the append");
                        let fine = store
                            .append(vec![message_to(target, uuid::Uuid::new_v4())])
                            .await
                            .unwrap();
                        before = stored_seqs(&fine);
                        assert_eq!(before.len(), 1);
                    }
                    _ => {
                        let after = stored_seqs(
                            &store
                                .append(vec![message_to(target, uuid::Uuid::new_v4())])
                                .await
                                .unwrap(),
                        );
                        assert!(after[0] > before[0], "{after:?} reuses a number up to {before:?}");
                        assert_eq!(store.fetch(target, None, 10, 0).await.unwrap().len(), 2);
                    }
                }
            })
            .unwrap();
            drop(store);
            threads.join();
        }
    }

    /// Goal: the embedded store names each message's predecessor exactly:
    /// the newest message queued before it, or none when everything before
    /// it was acked (stricter than the conformance suite asks).
    #[test]
    fn appends_name_the_newest_predecessor_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Buffered)).unwrap();
        let device = conformance::new_device(uuid::Uuid::now_v7(), 1, "exact");
        let target = device.device.id;
        block_on(ChosenDriver::Epoll, async {
            conformance::create_device(&*store, device).await;
            let send = || message_to(target, uuid::Uuid::new_v4());
            let first = store.append(vec![send(), send()]).await.unwrap();
            let queued = |o: &Appended| match o {
                Appended::Stored(q) => *q,
                other => panic!("{other:?}"),
            };
            let (a, b) = (queued(&first[0]), queued(&first[1]));
            assert_eq!((a.prev, b.prev), (None, Some(a.seq)));
            store.ack(target, vec![a.id, b.id]).await.unwrap();
            let c = queued(&store.append(vec![send()]).await.unwrap()[0]);
            assert_eq!(c.prev, None, "everything before it was acked");
        })
        .unwrap();
        drop(store);
        threads.join();
    }

    /// Goal: after a restart, a queued submission is still a duplicate (the
    /// writer's index is rebuilt from the rows), new messages sort after
    /// the old ones, and acks by the old ids still apply.
    #[test]
    fn mailboxes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let device = conformance::new_device(uuid::Uuid::now_v7(), 1, "reopen");
        let target = device.device.id;
        let message = |submission| message_to(target, submission);
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let mut seqs = Vec::new();
        for round in 0..3 {
            let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
            block_on(ChosenDriver::Epoll, async {
                if round == 0 {
                    conformance::create_device(&*store, device.clone()).await;
                }
                let outcomes = store.append(vec![message(first), message(second)]).await.unwrap();
                let stored = stored_seqs(&outcomes);
                // Round 1 finds both queued; round 2 only the one not acked.
                assert_eq!(stored.len(), [2, 0, 1][round], "duplicates after reopen {round}");
                let queued = store.fetch(target, None, 10, 0).await.unwrap();
                seqs.extend(queued.iter().map(|m| m.seq));
                if round == 1 {
                    assert_eq!(store.ack(target, vec![queued[0].id]).await.unwrap(), 1);
                }
            })
            .unwrap();
            drop(store);
            threads.join();
        }
        assert_eq!(seqs.len(), 6);
        let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
        block_on(ChosenDriver::Epoll, async {
            let fresh = store.append(vec![message(uuid::Uuid::new_v4())]).await.unwrap();
            let Appended::Stored(q) = fresh[0] else {
                panic!("{fresh:?}")
            };
            assert!(seqs.iter().all(|s| *s < q.seq), "seqs continue after a restart");
            assert_eq!(q.prev, seqs.last().copied());
        })
        .unwrap();
        drop(store);
        threads.join();
    }

    /// Goal: a store written before the `user_refresh` index existed gets
    /// it built at its next open, so a password change revokes refresh
    /// tokens issued before the upgrade too. Method: an account and a
    /// device, then their index rows and the marker removed (the old
    /// layout); reopen: both tokens are indexed again; change the
    /// password: both rows are gone (a rotation alone would be refused by
    /// the generation anyway, so the rows themselves are checked).
    #[test]
    fn an_older_store_gets_its_refresh_tokens_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let device = conformance::new_device(uuid::Uuid::now_v7(), 1, "before-upgrade");
        let owner = device.device.user_id;
        let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
        block_on(ChosenDriver::Epoll, conformance::create_device(&*store, device.clone())).unwrap();
        for key in Tables::keys_with_prefix(&store.tables.user_refresh, owner.as_bytes()).unwrap() {
            store.tables.user_refresh.remove(key).unwrap();
        }
        store.tables.meta.remove(layout::META_USER_REFRESH_INDEXED).unwrap();
        store.flush().unwrap();
        drop(store);
        threads.join();
        let (store, threads) = EmbeddedStore::open(dir.path(), &options(Durability::Fsync)).unwrap();
        let indexed = Tables::keys_with_prefix(&store.tables.user_refresh, owner.as_bytes()).unwrap();
        assert_eq!(indexed.len(), 2, "the account's and the device's token");
        block_on(ChosenDriver::Epoll, async {
            let change = PasswordChange {
                user_id: owner,
                expected_generation: 0,
                password_hash: "new".into(),
                refresh: RefreshRecord {
                    hash: crate::auth::refresh::hash_text("after-upgrade"),
                    device_id: None,
                    ..device.refresh.clone()
                },
            };
            assert!(store.change_password(change).await.unwrap().is_some());
            for old in [format!("owner-{owner}"), "before-upgrade".into()] {
                let presented = crate::auth::refresh::hash_text(&old);
                assert!(store.tables.refresh_tokens.get(presented.0).unwrap().is_none(), "{old}");
                let next = crate::auth::refresh::hash_text("next");
                assert_eq!(
                    store.rotate_refresh(presented, next, 0, 10).await.unwrap(),
                    Rotation::Unknown
                );
            }
        })
        .unwrap();
        drop(store);
        threads.join();
    }
}

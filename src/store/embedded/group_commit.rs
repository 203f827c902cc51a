//! Group commit: the single writer thread of the embedded store.
//!
//! Writers send closures; the thread takes the first waiting job and every
//! other job already queued (up to [`limits::STORE_GROUP_COMMIT_MAX`]), runs
//! them one after another (each commits its own atomic batch to the memtable
//! and journal buffer), then flushes the journal **once** for the whole group
//! — fsync with [`Durability::Fsync`], a write to the OS with
//! [`Durability::Buffered`] — and only then answers every job of the group.
//! One thread running every write also makes each job a serialized
//! transaction: check-then-act inside one job cannot race.
//!
//! A failed flush poisons the store (never retried: the data may be lost).
//! Jobs of that group and every later write are answered
//! [`StoreError::Poisoned`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use fjall::PersistMode;

use super::mailbox_index::MailboxIndex;
use super::tables::Tables;
use crate::config::{Durability, StoreFaults};
use crate::limits;
use crate::store::StoreError;

/// What a job's answer does once its group's flush has finished.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write job: runs on the writer thread, returns how to answer.
pub type WriteJob = Box<dyn FnOnce(&mut Writer) -> Completion + Send>;

/// What a write job works with: the tables, and the state only the writer
/// thread holds. It dereferences to the tables, so operations that need
/// nothing else take `&Tables`.
pub struct Writer {
    /// The database.
    pub tables: Arc<Tables>,
    /// The writer's index of mailboxes.
    pub mailboxes: MailboxIndex,
}

impl std::ops::Deref for Writer {
    type Target = Tables;

    fn deref(&self) -> &Tables {
        &self.tables
    }
}

/// Runs the writer loop until every sender is dropped.
pub fn run_writer(
    mut writer: Writer,
    jobs: Receiver<WriteJob>,
    durability: Durability,
    poisoned: Arc<AtomicBool>,
    faults: StoreFaults,
) {
    let mode = match durability {
        Durability::Fsync => PersistMode::SyncAll,
        Durability::Buffered => PersistMode::Buffer,
    };
    let mut completions: Vec<Completion> = Vec::with_capacity(limits::STORE_GROUP_COMMIT_MAX);
    while let Ok(first) = jobs.recv() {
        completions.push(first(&mut writer));
        while completions.len() < limits::STORE_GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => completions.push(job(&mut writer)),
                Err(_) => break,
            }
        }
        let flushed = flush(&writer, mode, &poisoned, faults);
        for complete in completions.drain(..) {
            complete(match &flushed {
                Ok(()) => Ok(()),
                Err(_) => Err(StoreError::Poisoned),
            });
        }
    }
}

fn flush(tables: &Tables, mode: PersistMode, poisoned: &AtomicBool, faults: StoreFaults) -> Result<(), StoreError> {
    if poisoned.load(Ordering::Acquire) {
        return Err(StoreError::Poisoned);
    }
    let persisted = if faults.fail_flushes {
        Err(fjall::Error::Io(std::io::Error::other(
            "injected flush failure (test build)",
        )))
    } else {
        tables.db.persist(mode)
    };
    persisted.map_err(|e| {
        tracing::error!(error = %e, "journal flush failed: the store refuses writes until restart");
        poisoned.store(true, Ordering::Release);
        StoreError::Poisoned
    })
}

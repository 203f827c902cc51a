//! Moving a deployment between stores (`obscura-relay store copy --from
//! <embedded data dir> --to scylla`): the embedded store exports every
//! record it holds as [`Item`]s ([`super::embedded::export`]) and the
//! ScyllaDB store writes them ([`super::scylla::import`]). Queued messages
//! keep their positions and ids, so acks that clients still owe apply
//! after the move; refresh tokens keep their families and spent flags;
//! submissions stay deduplicated; token generations, the revocation log and
//! deletions whose blob clean-up is pending come along, so tokens revoked
//! before the move stay refused. Idempotency answers are not copied (a
//! send repeated across the move is deduplicated by its submissions).
//! Blob bytes stay in the blob store the new deployment points at; only
//! their metadata moves. The server must be stopped while it runs.

use std::fmt;
use std::path::Path;

use super::portable::Item;
use super::scylla::session::ScyllaOptions;
use super::scylla::ScyllaStore;
use super::StoreError;
use crate::config::{Config, StoreKind};
use crate::offload::side_runtime::SideRuntime;

/// How many records of each kind were copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Users.
    pub users: usize,
    /// Devices.
    pub devices: usize,
    /// Signed and one-time prekeys.
    pub keys: usize,
    /// Refresh tokens.
    pub refresh_tokens: usize,
    /// Queued messages.
    pub messages: usize,
    /// Pending push jobs.
    pub push_jobs: usize,
    /// Attachments.
    pub attachments: usize,
    /// Backup rows.
    pub backups: usize,
    /// Deleted senders.
    pub deleted_senders: usize,
    /// Revocations.
    pub revocations: usize,
    /// Pending account deletions.
    pub account_deletions: usize,
}

impl Copied {
    /// Counts one item.
    pub fn count(&mut self, item: &Item) {
        let slot = match item {
            Item::User(_) => &mut self.users,
            Item::Device { .. } => &mut self.devices,
            Item::SignedPreKey { .. } | Item::OneTimePreKey { .. } => &mut self.keys,
            Item::Refresh { .. } => &mut self.refresh_tokens,
            Item::Message { .. } => &mut self.messages,
            Item::PushJob { .. } => &mut self.push_jobs,
            Item::Attachment { .. } => &mut self.attachments,
            Item::Backup { .. } => &mut self.backups,
            Item::DeletedSender { .. } => &mut self.deleted_senders,
            Item::Revocation(_) => &mut self.revocations,
            Item::AccountDeletion(_) => &mut self.account_deletions,
        };
        *slot += 1;
    }
}

impl fmt::Display for Copied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "copied {} users, {} devices, {} prekeys, {} refresh tokens, {} queued messages, {} push jobs, \
             {} attachments, {} backups, {} deleted senders, {} revocations, {} pending account deletions",
            self.users,
            self.devices,
            self.keys,
            self.refresh_tokens,
            self.messages,
            self.push_jobs,
            self.attachments,
            self.backups,
            self.deleted_senders,
            self.revocations,
            self.account_deletions
        )
    }
}

/// Records written to the target per round of concurrent writes.
const ITEMS_PER_ROUND: usize = 256;

/// The copy's target is not one it can write.
#[derive(Debug, thiserror::Error)]
#[error("store copy writes into --to scylla only (the source is an embedded data directory)")]
pub struct UnsupportedTarget;

/// Copies the embedded store in `from` into the ScyllaDB store that
/// `config`'s `--scylla-*` options name (its schema applied, see
/// `--scylla-create-schema`).
pub fn copy(from: &Path, to: StoreKind, config: &Config) -> Result<Copied, StoreError> {
    if to != StoreKind::Scylla {
        return Err(StoreError::Backend(Box::new(UnsupportedTarget)));
    }
    if !from.is_dir() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, from.display().to_string());
        return Err(StoreError::Backend(Box::new(missing)));
    }
    let options = ScyllaOptions::from_config(config)?;
    let runtime = SideRuntime::start_named("cql-runtime", 1).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let target = ScyllaStore::open(options, runtime)?;
    let mut copied = Copied::default();
    let mut round = Vec::with_capacity(ITEMS_PER_ROUND);
    let mut last_kind = None;
    super::embedded::export::export(from, &mut |item| {
        // Owners before what they own: a round holds one kind of record.
        let kind = std::mem::discriminant(&item);
        if round.len() >= ITEMS_PER_ROUND || last_kind.is_some_and(|k| k != kind) {
            target.import(std::mem::take(&mut round))?;
        }
        last_kind = Some(kind);
        copied.count(&item);
        round.push(item);
        Ok(())
    })?;
    target.import(round)?;
    Ok(copied)
}

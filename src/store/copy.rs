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

use uuid::Uuid;

use super::scylla::session::ScyllaOptions;
use super::scylla::ScyllaStore;
use super::{
    AccountDeletion, BackupRow, DeviceRecord, OneTimePreKey, RefreshRecord, Revocation, SignedPreKey, StoreError,
    StoredMessage, UserRecord,
};
use crate::config::{Config, StoreKind};
use crate::offload::side_runtime::SideRuntime;

/// One record of a store, as copied.
#[derive(Debug, Clone)]
pub enum Item {
    /// A user (its username with it).
    User(UserRecord),
    /// A device and its push token.
    Device {
        /// The device.
        device: DeviceRecord,
        /// Its push token.
        push_token: Option<String>,
    },
    /// A signed prekey of a device.
    SignedPreKey {
        /// The device.
        device: Uuid,
        /// The key.
        key: SignedPreKey,
    },
    /// A one-time prekey of a device, with its upload order.
    OneTimePreKey {
        /// The device.
        device: Uuid,
        /// The key.
        key: OneTimePreKey,
        /// Upload order (lower is older).
        order: u64,
    },
    /// A refresh token (its hash), spent or not.
    Refresh {
        /// The token.
        record: RefreshRecord,
        /// Spent by a rotation (presenting it again revokes its family).
        rotated: bool,
    },
    /// A queued message, with its position and id.
    Message {
        /// Its mailbox.
        target: Uuid,
        /// The message.
        message: StoredMessage,
        /// The client's submission id.
        submission_id: Uuid,
        /// Expiry, Unix seconds.
        expires_at_secs: i64,
    },
    /// A pending wake-up push.
    PushJob {
        /// The device.
        device: Uuid,
        /// Due time, ms.
        due_ms: u64,
    },
    /// An attachment's metadata.
    Attachment {
        /// Its id (names its blob).
        id: Uuid,
        /// Expiry, Unix seconds.
        expires_at_secs: i64,
    },
    /// A device's backup state.
    Backup {
        /// The device.
        device: Uuid,
        /// Its row.
        row: BackupRow,
    },
    /// A device deleted while messages it sent may still be queued.
    DeletedSender {
        /// The device.
        device: Uuid,
        /// When, Unix seconds.
        deleted_at_secs: i64,
    },
    /// A token revocation of the log.
    Revocation(Revocation),
    /// An account deletion whose blob clean-up is still due.
    AccountDeletion(AccountDeletion),
}

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

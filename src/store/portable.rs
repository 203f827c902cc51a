//! [`Item`]: one record of a store in a form every backend reads and
//! writes — what `store copy` carries from the embedded store
//! (`embedded::export` makes them) to the ScyllaDB store (`scylla::import`
//! writes them). Its own file, so that the copy and the two backends meet
//! here rather than in each other.

use uuid::Uuid;

use super::{
    AccountDeletion, BackupRow, DeviceRecord, OneTimePreKey, RefreshRecord, Revocation, SignedPreKey, StoredMessage,
    UserRecord,
};

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

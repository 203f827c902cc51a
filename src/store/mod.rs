//! The storage interface: what the relay keeps, as async traits that a
//! backend implements ([`embedded`] on fjall, [`scylla`] on ScyllaDB), and
//! the records that cross it. Callers never see a backend type, only
//! `Arc<dyn Store>` from [`open`].
//!
//! Every method returns a [`StoreFuture`] that is awaited on a shard; the
//! backend does its blocking work on its own threads. A write that answers
//! `Ok` is durable as [`crate::config::Durability`] says. Operations that
//! must check and act atomically (a unique username, the device limit,
//! rotating a refresh token) are single methods, so no caller can split them.
//!
//! [`conformance`] is the suite every backend must pass.

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use crate::auth::refresh::TokenHash;
use crate::crypto::public_key::{PublicKey, Signature};

#[cfg(test)]
pub mod conformance;
pub mod copy;
pub mod embedded;
pub mod message_ids;
pub mod plans;
pub mod portable;
pub mod scylla;

use std::sync::Arc;

pub use self::plans::{deliverable, reserved_upload, AccountGenerations, RotationStep};
use crate::config::{Command, Config, SchemaAction, StoreAction, StoreKind};

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'a>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The username is taken (case-insensitively).
    #[error("username already exists")]
    UsernameTaken,
    /// The user already has the maximum number of devices.
    #[error("device limit of {0} reached")]
    DeviceLimit(usize),
    /// A journal flush failed earlier; the store refuses writes until restart.
    #[error("store is poisoned after a failed journal flush; restart required")]
    Poisoned,
    /// The backend's threads are gone (shutdown).
    #[error("store is shut down")]
    Closed,
    /// A stored record does not decode.
    #[error("corrupt record in {table}: {reason}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The account does not exist (never did, or was deleted) or its token
    /// generation is not the one the caller was authorized by (the password
    /// changed): nothing was written.
    #[error("the account is gone or its password changed")]
    AccountChanged,
    /// The backend failed.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// UUID v7.
    pub id: Uuid,
    /// Lower-cased, unique.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time, µs since the epoch.
    pub created_at_micros: i64,
    /// Registered through the single-device legacy API (BEHAVIOR.md §17.2):
    /// a login without a device id is bound to the primary device.
    pub legacy: bool,
    /// The account's token generation: every password change raises it,
    /// and tokens issued at a lower one are refused (0 at registration).
    pub token_generation: u32,
    /// The account's user-scope generation: every device deletion raises
    /// it, and user-scoped tokens issued at a lower one are refused (0 at
    /// registration).
    pub user_scope_generation: u32,
}

/// A device and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// UUID v7.
    pub id: Uuid,
    /// The owning user.
    pub user_id: Uuid,
    /// Optional label, at most 100 characters.
    pub name: Option<String>,
    /// Creation time, µs since the epoch.
    pub created_at_micros: i64,
    /// The device's identity key.
    pub identity_key: PublicKey,
    /// Signal registration id.
    pub registration_id: i32,
}

/// A signed prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    /// Client-chosen id.
    pub key_id: i32,
    /// The public key.
    pub public_key: PublicKey,
    /// XEdDSA signature by the identity key.
    pub signature: Signature,
}

/// A one-time prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimePreKey {
    /// Client-chosen id, unique per device.
    pub key_id: i32,
    /// The public key.
    pub public_key: PublicKey,
}

/// A refresh token as stored (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token text.
    pub hash: TokenHash,
    /// The user it authenticates.
    pub user_id: Uuid,
    /// The device, for device-scoped sessions.
    pub device_id: Option<Uuid>,
    /// The session family: every rotation keeps it.
    pub family: Uuid,
    /// Expiry, Unix seconds.
    pub expires_at_secs: i64,
    /// The account's token generation it was issued at (see
    /// [`UserRecord::token_generation`]); it is refused below the current one.
    pub generation: u32,
    /// The account's user-scope generation it was issued at (see
    /// [`UserRecord::user_scope_generation`]); a user-scoped token is
    /// refused below the current one.
    pub user_scope_generation: u32,
}

/// From which token generation on an account's tokens are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFloor {
    /// Tokens of this generation or later (a password change).
    Generation(u32),
    /// None: the account was deleted.
    Deleted,
}

impl TokenFloor {
    /// Whether a token issued at `generation` is accepted.
    pub fn admits(self, generation: u32) -> bool {
        match self {
            Self::Generation(floor) => generation >= floor,
            Self::Deleted => false,
        }
    }

    /// The stricter of two floors.
    pub fn max(self, other: Self) -> Self {
        match (self, other) {
            (Self::Generation(a), Self::Generation(b)) => Self::Generation(a.max(b)),
            _ => Self::Deleted,
        }
    }
}

/// Whose tokens a [`Revocation`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// An account's tokens below a floor: its password changed, or it was
    /// deleted.
    Account(Uuid, TokenFloor),
    /// An account's user-scoped tokens (and refresh tokens) below a
    /// user-scope generation: one of its devices was deleted.
    UserScope(Uuid, u32),
    /// Every access token, refresh token and gateway ticket of a device:
    /// it was deleted.
    Device(Uuid),
}

impl Revoked {
    /// The account or device it names.
    pub fn subject(self) -> Uuid {
        match self {
            Self::Account(id, _) | Self::UserScope(id, _) | Self::Device(id) => id,
        }
    }
}

/// Tokens were revoked: an account's password changed or it was deleted,
/// or a device was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Whose tokens, and which of them.
    pub revoked: Revoked,
    /// When, ms since the epoch (the store's clock at the decision).
    pub at_ms: i64,
}

/// What a device deletion decided ([`Devices::delete_device`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDeletion {
    /// The account's user-scope generation from now on.
    pub user_scope_generation: u32,
    /// When it was decided, ms since the epoch.
    pub at_ms: i64,
}

impl DeviceDeletion {
    /// The revocations it logged: every token of the device, and the
    /// account's user-scoped tokens issued before it.
    pub fn revocations(&self, user_id: Uuid, device_id: Uuid) -> [Revocation; 2] {
        [
            Revocation {
                revoked: Revoked::Device(device_id),
                at_ms: self.at_ms,
            },
            Revocation {
                revoked: Revoked::UserScope(user_id, self.user_scope_generation),
                at_ms: self.at_ms,
            },
        ]
    }
}

/// A password change ([`Accounts::change_password`]).
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The account.
    pub user_id: Uuid,
    /// The token generation the caller was authorized at: the change is
    /// refused when the account's has moved since.
    pub expected_generation: u32,
    /// The new argon2id PHC string.
    pub password_hash: String,
    /// The caller's new refresh token; the store stores it at the new
    /// generation (its `generation` field is overwritten).
    pub refresh: RefreshRecord,
}

/// What a password change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChanged {
    /// The account's token generation now.
    pub generation: u32,
    /// The account's devices (whose sockets must close).
    pub devices: Vec<Uuid>,
    /// When it was decided, ms since the epoch (its [`Revocation`]'s time).
    pub at_ms: i64,
}

/// A deleted account whose clean-up outside the store (the backup blobs
/// of its devices) may still be due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDeletion {
    /// The account.
    pub user_id: Uuid,
    /// Its devices at the deletion.
    pub devices: Vec<Uuid>,
    /// When it was decided, ms since the epoch.
    pub at_ms: i64,
}

/// Everything a device creation writes, in one transaction.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The device.
    pub device: DeviceRecord,
    /// Its signed prekey.
    pub signed_prekey: SignedPreKey,
    /// Its one-time prekeys.
    pub one_time_prekeys: Vec<OneTimePreKey>,
    /// The device-scoped refresh token issued with it.
    pub refresh: RefreshRecord,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was valid: it is now spent and `next` replaces it. Carries the
    /// spent record (user and device binding).
    Rotated(RefreshRecord),
    /// No such token (never issued, logged out, or its device deleted).
    Unknown,
    /// It had expired; it is deleted now.
    Expired,
    /// It was already spent: the whole family is revoked now.
    Reused,
}

/// Accounts: users, their unique usernames, password changes and
/// deletion.
///
/// **Deletion is one decision** ([`Accounts::delete_account`]). The
/// contract, for every backend:
/// 1. *The decision.* The call answers `Some` only once the deletion is
///    durable; from that moment no method of this interface returns
///    anything of the account: [`Accounts::user`] and
///    [`Accounts::user_by_name`] answer `None` (the name is free to
///    register again), [`Devices::devices_of`] is empty and
///    [`Devices::device`], [`Keys::take_bundle`] and [`Mailboxes::fetch`]
///    of each of its devices find nothing, messages its devices sent that
///    are still queued elsewhere are never fetched again (as after
///    [`Devices::delete_device`]), [`RefreshTokens::rotate_refresh`] of any
///    of its refresh tokens answers [`Rotation::Unknown`], and
///    [`Devices::create_device`] and [`RefreshTokens::insert_refresh`] for
///    it fail with [`StoreError::AccountChanged`]. A crash before the
///    decision is durable leaves the account whole.
/// 2. *The rows.* A backend with multi-row transactions (the embedded
///    store) removes every row of the account in the decision's own
///    transaction. A backend without them (ScyllaDB) writes a durable
///    "account deleted" marker first — that write is the decision, and every
///    read above checks it, so the account is unreachable from then on —
///    then removes the rows as an idempotent cascade that
///    [`Accounts::finish_account_deletion`] runs again until it completes.
/// 3. *What follows outside the store.* The deletion stays listed by
///    [`Accounts::pending_account_deletions`] (recorded durably with the
///    decision) until [`Accounts::finish_account_deletion`] is called, so the
///    caller's clean-up of blob storage (the backup folders of its devices)
///    survives a crash: a clean-up after a restart finds and finishes it.
/// 4. *Tokens.* The decision appears in [`RevocationLog::revocations_since`]
///    as [`Revoked::Account`] with [`TokenFloor::Deleted`].
///
/// A password change ([`Accounts::change_password`]) is one conditional
/// update in the same sense: new hash, a higher token generation, every
/// refresh token of the account revoked, the caller's new one stored, and
/// a [`Revocation`] logged.
pub trait Accounts {
    /// Creates a user; [`StoreError::UsernameTaken`] if the name exists.
    fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> StoreFuture<'_, ()>;
    /// Creates a user together with its first device, keys and
    /// device-scoped refresh token, in one transaction (a legacy
    /// registration); [`StoreError::UsernameTaken`] if the name exists.
    fn create_user_with_device(&self, user: UserRecord, device: NewDevice) -> StoreFuture<'_, ()>;
    /// Looks a user up by (lower-cased) username.
    fn user_by_name(&self, username: &str) -> StoreFuture<'_, Option<UserRecord>>;
    /// Looks a user up by id.
    fn user(&self, id: Uuid) -> StoreFuture<'_, Option<UserRecord>>;
    /// Changes the password of `change.user_id` if its token generation is
    /// still `change.expected_generation`, atomically: the new hash, the
    /// generation raised by one, every refresh token of the account
    /// revoked, `change.refresh` stored at the new generation, and a
    /// [`Revocation`] logged. `None` when the account is gone or its
    /// generation moved (nothing changed).
    fn change_password(&self, change: PasswordChange) -> StoreFuture<'_, Option<PasswordChanged>>;
    /// Deletes the account `user_id` if its token generation is still
    /// `expected_generation`, as one decision (see the trait
    /// documentation); `None` when the account is gone or its generation
    /// moved (nothing changed).
    fn delete_account(&self, user_id: Uuid, expected_generation: u32) -> StoreFuture<'_, Option<AccountDeletion>>;
    /// Up to `limit` deletions decided before `decided_before_ms` that are
    /// not finished yet (see [`Accounts::finish_account_deletion`]).
    fn pending_account_deletions(&self, decided_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<AccountDeletion>>;
    /// Completes the store's side of a deletion (where the decision left
    /// rows behind) and forgets it as pending; call once the account's
    /// blobs are deleted. Idempotent.
    fn finish_account_deletion(&self, user_id: Uuid) -> StoreFuture<'_, ()>;
}

/// The log of token revocations (password changes, account and device
/// deletions), which
/// every relay node reads to refuse old access tokens without a store
/// read per request. An entry matters only for the access-token lifetime
/// after it, so old entries may be purged.
pub trait RevocationLog {
    /// The revocations decided at or after `since_ms`, oldest first. Of
    /// one account's revocations of one kind within one millisecond, a
    /// backend may keep only the last (the strictest).
    fn revocations_since(&self, since_ms: i64) -> StoreFuture<'_, Vec<Revocation>>;
    /// Deletes up to `limit` revocations decided before `before_ms`;
    /// returns how many.
    fn purge_revocations(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize>;
}

/// Devices and the keys they are created with.
pub trait Devices {
    /// Creates a device with its keys and refresh token, unless the user
    /// already has `max_devices` ([`StoreError::DeviceLimit`]), or the user
    /// does not exist or its token generation is no longer the refresh
    /// token's ([`StoreError::AccountChanged`]).
    fn create_device(&self, new: NewDevice, max_devices: usize) -> StoreFuture<'_, ()>;
    /// One device, whoever owns it.
    fn device(&self, id: Uuid) -> StoreFuture<'_, Option<DeviceRecord>>;
    /// A user's devices, oldest first.
    fn devices_of(&self, user_id: Uuid) -> StoreFuture<'_, Vec<DeviceRecord>>;
    /// Message targets as devices: each id itself if it names a device,
    /// else the primary (oldest) device of the user it names (legacy
    /// addressing, BEHAVIOR.md §17.2), else `None`.
    fn resolve_targets(&self, ids: Vec<Uuid>) -> StoreFuture<'_, Vec<Option<Uuid>>>;
    /// Renames a device of `user_id`; `None` if it is not theirs or absent.
    fn rename_device(&self, user_id: Uuid, id: Uuid, name: Option<String>) -> StoreFuture<'_, Option<DeviceRecord>>;
    /// Deletes a device of `user_id` and everything it owns (keys, refresh
    /// tokens, its mailbox, its push token and pending push, its backup
    /// row; its backup blobs are the caller's to delete). The messages it
    /// sent that are still queued are never delivered from then on and go
    /// with the next [`Mailboxes::sweep_mailbox`] of their mailbox.
    /// With it, the account's user-scope generation is raised and two
    /// revocations are logged ([`DeviceDeletion::revocations`]): every
    /// token of the device, and the account's user-scoped tokens issued
    /// before. `None` if it is not theirs or absent.
    fn delete_device(&self, user_id: Uuid, id: Uuid) -> StoreFuture<'_, Option<DeviceDeletion>>;
    /// A device deleted through another relay node (its event arrived):
    /// from now on a message to it is refused by this process at once, as
    /// if the deletion had been made here, whatever this process cached of
    /// it. A store whose every process sees every write at once (the
    /// embedded store) has nothing to do.
    fn forget_device(&self, id: Uuid);
    /// A device changed through another relay node in a way this process
    /// may have cached (its mailbox emptied by a takeover, its push token
    /// set): what this process cached of it is dropped, and the next use
    /// reads the store. Nothing to do for the embedded store.
    fn forget_cached_device(&self, id: Uuid);
    /// Whether this process may answer "the device exists" (and what it
    /// cached of a device's mailbox and wake-ups) from its caches: `false`
    /// while the events of other nodes' changes may be missed (the pub/sub
    /// subscription is down or resyncing), then every such question reads
    /// the store; `true` again once they arrive, and the caches start
    /// empty. Nothing to do for the embedded store.
    fn trust_device_cache(&self, trusted: bool);
}

/// Prekeys of devices.
pub trait Keys {
    /// The signed prekeys of a device, by ascending key id.
    fn signed_prekeys(&self, device_id: Uuid) -> StoreFuture<'_, Vec<SignedPreKey>>;
    /// The number of one-time prekeys a device has.
    fn one_time_prekey_count(&self, device_id: Uuid) -> StoreFuture<'_, usize>;
    /// Refill or takeover (BEHAVIOR.md §6.3), atomically: the mode decision,
    /// the signature check (`verify` against the identity key that will be
    /// in force), the monotonic signed-prekey id, pruning, and on takeover
    /// the wipe of keys and pending messages.
    fn upload_keys(
        &self,
        device_id: Uuid,
        upload: KeyUpload,
        verify: SignatureCheck,
    ) -> StoreFuture<'_, Result<UploadOutcome, UploadRejection>>;
    /// A bundle of the device, consuming one one-time prekey; `None` when the
    /// device is gone or has no signed prekey.
    fn take_bundle(&self, device_id: Uuid) -> StoreFuture<'_, Option<Bundle>>;
}

/// Checks a signed prekey's signature against an identity key.
pub type SignatureCheck = Box<dyn FnOnce(&PublicKey) -> bool + Send>;

/// A key upload (`POST /v1/devices/keys`), decoded and validated.
#[derive(Debug, Clone)]
pub struct KeyUpload {
    /// A new (or the same) identity key with its registration id.
    pub identity: Option<(PublicKey, i32)>,
    /// The signed prekey.
    pub signed_prekey: SignedPreKey,
    /// One-time prekeys to add.
    pub one_time_prekeys: Vec<OneTimePreKey>,
    /// The per-device pool cap.
    pub pre_keys_max: usize,
}

/// What an accepted upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Keys were added.
    Refilled,
    /// The identity changed: old keys and pending messages are gone.
    TookOver,
}

/// Why an upload was refused (a client error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRejection {
    /// No identity key given and none stored.
    IdentityKeyMissing,
    /// The signature does not verify.
    InvalidSignature,
    /// A refill must raise the signed-prekey id.
    SignedPreKeyIdNotIncreasing {
        /// The id sent.
        new: i32,
        /// The largest stored id.
        current: i32,
    },
    /// The device does not exist.
    DeviceNotFound,
}

/// One device's prekey bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The device (identity key, registration id).
    pub device: DeviceRecord,
    /// Its newest signed prekey.
    pub signed_prekey: SignedPreKey,
    /// The consumed one-time prekey, if any was left.
    pub one_time_prekey: Option<OneTimePreKey>,
    /// One-time prekeys left after this one.
    pub remaining: usize,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The target device.
    pub target: Uuid,
    /// The sending user.
    pub sender_user: Uuid,
    /// The sending device.
    pub sender_device: Uuid,
    /// The client's submission id (dedup key with sender and target).
    pub submission_id: Uuid,
    /// Ciphertext.
    pub payload: bytes::Bytes,
    /// Server receive time, ms since the epoch.
    pub created_at_ms: u64,
    /// Expiry, Unix seconds.
    pub expires_at_secs: i64,
    /// A wake-up push for the target, due at this time (ms since the epoch),
    /// if it has a push token and none is pending (BEHAVIOR.md §11.2).
    pub wake_at_ms: Option<u64>,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in its device's mailbox: increases in commit order.
    pub seq: u64,
    /// The message id clients see (a UUID v7 that carries `seq`).
    pub id: Uuid,
    /// The sending user.
    pub sender_user: Uuid,
    /// The sending device.
    pub sender_device: Uuid,
    /// Ciphertext.
    pub payload: bytes::Bytes,
    /// Server receive time, ms.
    pub created_at_ms: u64,
}

/// Where an appended message was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Its mailbox position.
    pub seq: u64,
    /// Its message id.
    pub id: Uuid,
    /// Its predecessor: a position at or after the newest message queued
    /// before it in the same mailbox, and before its own (`None`: the
    /// mailbox held nothing else). A reader whose cursor is at or past
    /// `prev` has missed nothing before this message. The embedded store
    /// names the newest one exactly; the ScyllaDB store names the last one
    /// its process queued there, or `seq - 1` when it knows none, which
    /// makes a reader read the store.
    pub prev: Option<u64>,
}

/// What appending one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Queued.
    Stored(Queued),
    /// The (sender device, submission id, target) was already queued.
    Duplicate,
    /// The target device does not exist.
    NoSuchDevice,
    /// The sending device does not exist (any more): nothing is queued.
    NoSuchSender,
}

/// The Idempotency-Key of a send ([`Mailboxes::append_and_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerKey {
    /// The sending device.
    pub device: Uuid,
    /// The key.
    pub key: Uuid,
    /// When the request began: a stored answer that expires later counts.
    pub now_secs: i64,
    /// When this request's answer, if it is stored, expires.
    pub expires_at_secs: i64,
}

/// Makes a send's answer from the outcomes of its appends: the bytes to
/// store under its key, or `None` to store nothing (the request failed as a
/// whole).
pub type AnswerOf = Box<dyn FnOnce(&[Appended]) -> Option<bytes::Bytes> + Send>;

/// What [`Mailboxes::append_and_answer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardedAppend {
    /// No answer was stored under the key: the messages were appended, and
    /// this request's answer (if any) stored with them.
    Appended {
        /// Each message's outcome, in order.
        outcomes: Vec<Appended>,
        /// The answer stored under the key.
        answer: Option<bytes::Bytes>,
    },
    /// An earlier answer is stored under the key: nothing was appended.
    Answered(bytes::Bytes),
}

/// Mailboxes: the queued messages of each device.
pub trait Mailboxes {
    /// Appends messages (each to its target), skipping duplicates and
    /// unknown targets, in one durable transaction. Messages whose sending
    /// device no longer exists are refused.
    fn append(&self, messages: Vec<NewMessage>) -> StoreFuture<'_, Vec<Appended>>;
    /// A send, as one durable transaction: when an unexpired answer is
    /// stored under `key`, nothing is appended and it comes back; otherwise
    /// the messages are appended as [`Mailboxes::append`] does and the
    /// answer `answer` makes of their outcomes is stored under `key` until
    /// `key.expires_at_secs`. Sends with one key are serialized, so a
    /// repeat gets the first one's answer once that is durable.
    fn append_and_answer(
        &self,
        messages: Vec<NewMessage>,
        key: AnswerKey,
        answer: AnswerOf,
    ) -> StoreFuture<'_, GuardedAppend>;
    /// Up to `limit` unexpired messages of `device` after position `after`.
    fn fetch(
        &self,
        device: Uuid,
        after: Option<u64>,
        limit: usize,
        now_secs: i64,
    ) -> StoreFuture<'_, Vec<StoredMessage>>;
    /// Deletes the messages of `device` with these ids; ids that name no
    /// message of this device are skipped. An ack also cancels the device's
    /// pending wake-up push.
    fn ack(&self, device: Uuid, ids: Vec<Uuid>) -> StoreFuture<'_, usize>;
    /// Deletes the messages of `device` that expired at `now_secs` or were
    /// sent by a deleted device, then the oldest of the rest beyond `max`;
    /// returns how many.
    fn sweep_mailbox(&self, device: Uuid, now_secs: i64, max: usize) -> StoreFuture<'_, usize>;
    /// Forgets the devices deleted before `before_secs` as senders (by then
    /// every message they sent has expired and been swept); returns how
    /// many.
    fn forget_deleted_senders(&self, before_secs: i64) -> StoreFuture<'_, usize>;
    /// How far behind the newest position of a mailbox (in positions) a
    /// message appended through another relay node may still commit: 0
    /// where positions are handed out in commit order, as on the embedded
    /// store. A gateway session re-reads that far back.
    fn late_commit_window(&self) -> u64 {
        0
    }
    /// Up to `limit` device ids after `after`, in id order (for sweeps).
    fn device_page(&self, after: Option<Uuid>, limit: usize) -> StoreFuture<'_, Vec<Uuid>>;
}

/// Idempotency records of `POST /v1/messages`, per sending device.
pub trait Idempotency {
    /// The cached response for (device, key), if unexpired (answers are
    /// stored by [`Mailboxes::append_and_answer`]).
    fn idempotent_response(&self, device: Uuid, key: Uuid, now_secs: i64) -> StoreFuture<'_, Option<bytes::Bytes>>;
    /// Deletes up to `limit` expired records.
    fn purge_idempotency(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize>;
}

/// Push tokens of devices (BEHAVIOR.md §11.1): one per device; one token
/// string may be registered for several devices.
pub trait PushTokens {
    /// Sets the device's token, replacing any; `false` if the device does
    /// not exist.
    fn set_push_token(&self, device: Uuid, token: String) -> StoreFuture<'_, bool>;
    /// The device's token.
    fn push_token(&self, device: Uuid) -> StoreFuture<'_, Option<String>>;
    /// Deletes these tokens from every device that carries them; returns how
    /// many devices lost theirs.
    fn remove_push_tokens(&self, tokens: Vec<String>) -> StoreFuture<'_, usize>;
}

/// Wake-up push jobs (BEHAVIOR.md §11.2): at most one per device, due at a
/// time. Jobs are also scheduled by [`Mailboxes::append`] and cancelled by
/// [`Mailboxes::ack`] and by deleting the device.
pub trait PushJobs {
    /// Schedules a job due at `due_at_ms` for the device if it has a push
    /// token and no job is pending (a pending job keeps its due time).
    fn schedule_push(&self, device: Uuid, due_at_ms: u64) -> StoreFuture<'_, ()>;
    /// Cancels the device's pending job.
    fn cancel_push(&self, device: Uuid) -> StoreFuture<'_, ()>;
    /// Leases up to `limit` jobs due at `now_ms`, atomically: each becomes
    /// due again at `lease_until_ms` (a retry) unless completed first, so
    /// of competing workers only one gets a job. Jobs of devices without a
    /// token are removed instead. Returns each leased device with its token.
    fn lease_pushes(&self, now_ms: u64, limit: usize, lease_until_ms: u64) -> StoreFuture<'_, Vec<(Uuid, String)>>;
    /// Removes a device's job (its push was delivered or is moot).
    fn complete_push(&self, device: Uuid) -> StoreFuture<'_, ()>;
    /// The due time of the device's pending job, ms.
    fn pending_push(&self, device: Uuid) -> StoreFuture<'_, Option<u64>>;
}

/// Whom a gateway ticket was issued to: the device, and the account and
/// token generation of the token that asked for it, so a ticket issued
/// before a password change or a deletion is refused like that token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketHolder {
    /// The device the session is for.
    pub device_id: Uuid,
    /// Its account.
    pub user_id: Uuid,
    /// The token generation of the token that asked for the ticket.
    pub generation: u32,
}

/// Gateway tickets: short-lived, single use.
pub trait Tickets {
    /// Maps `ticket` to `holder` for `ttl_secs`.
    fn create_ticket(&self, ticket: Uuid, holder: TicketHolder, ttl_secs: u64) -> StoreFuture<'_, ()>;
    /// Consumes a ticket atomically: of two racing consumers, one gets it.
    fn consume_ticket(&self, ticket: Uuid) -> StoreFuture<'_, Option<TicketHolder>>;
}

/// Refresh tokens and their families.
pub trait RefreshTokens {
    /// Stores a new token (login); [`StoreError::AccountChanged`] when its
    /// user does not exist or has moved past its generation.
    fn insert_refresh(&self, record: RefreshRecord) -> StoreFuture<'_, ()>;
    /// Presents `presented` at `now_secs`; if valid, replaces it by `next`
    /// (same user, device, family and generation; expiry
    /// `next_expires_at_secs`). A token whose account is gone or no longer
    /// holds it ([`RefreshRecord::held_by`]: the password changed, or a
    /// user-scoped token issued before a device deletion) is
    /// [`Rotation::Unknown`] (and deleted).
    fn rotate_refresh(
        &self,
        presented: TokenHash,
        next: TokenHash,
        now_secs: i64,
        next_expires_at_secs: i64,
    ) -> StoreFuture<'_, Rotation>;
    /// Logout: revokes the family of `presented` if it belongs to `user_id`.
    fn revoke_refresh(&self, user_id: Uuid, presented: TokenHash) -> StoreFuture<'_, ()>;
    /// Deletes up to `limit` tokens that expired before `now_secs`; returns
    /// how many.
    fn purge_expired_refresh(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize>;
}

/// Attachment metadata: the blob lives in blob storage, its expiry here.
pub trait Attachments {
    /// Records an uploaded attachment.
    fn insert_attachment(&self, id: Uuid, expires_at_secs: i64) -> StoreFuture<'_, ()>;
    /// The expiry (Unix seconds) of an attachment; `None` if unknown.
    fn attachment_expiry(&self, id: Uuid) -> StoreFuture<'_, Option<i64>>;
    /// Up to `limit` attachments that expired before `now_secs`, oldest first.
    fn expired_attachments(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, Vec<Uuid>>;
    /// Forgets an attachment (after its blob was deleted).
    fn delete_attachment(&self, id: Uuid) -> StoreFuture<'_, ()>;
}

/// An upload that holds the next version of a device's backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBackup {
    /// The version it will commit (`current + 1`).
    pub version: i32,
    /// Names this upload (and its blob) among uploads of the same version.
    pub token: Uuid,
    /// When it reserved the slot, ms since the epoch.
    pub started_at_ms: i64,
}

/// A device's backup state (BEHAVIOR.md §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupRow {
    /// The last committed version; 0 = none yet.
    pub current_version: i32,
    /// The token of the upload that committed it (names its blob).
    pub current_token: Option<Uuid>,
    /// The upload in progress (state `UPLOADING`), if any.
    pub pending: Option<PendingBackup>,
}

/// What asking for the next backup version gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The slot is ours; `replaced` is a stale upload we took over.
    Reserved {
        /// The version to upload.
        version: i32,
        /// The stale upload whose slot this is now.
        replaced: Option<PendingBackup>,
    },
    /// The committed version is not the expected one (412).
    VersionMismatch,
    /// A fresh upload holds the slot (409).
    InProgress,
}

/// What committing an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupCommit {
    /// It is the current version now; the one it replaced (version, token)
    /// may be deleted.
    Committed(Option<(i32, Uuid)>),
    /// The slot was no longer ours (taken over or reset): nothing changed.
    Lost,
}

/// Backup state per device, with optimistic locking. Every change is one
/// conditional update: a commit only lands if its upload still holds the slot.
pub trait Backups {
    /// The backup row of `device`.
    fn backup(&self, device: Uuid) -> StoreFuture<'_, Option<BackupRow>>;
    /// Reserves the next version for upload `token` if the committed
    /// version is `expected` and no fresh upload (started after
    /// `stale_before_ms`) holds the slot. Creates the row at version 0.
    fn reserve_backup(
        &self,
        device: Uuid,
        expected: i32,
        token: Uuid,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'_, Reservation>;
    /// Makes upload `token` the current version if it still holds the slot.
    fn commit_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, BackupCommit>;
    /// Frees the slot of upload `token` without committing, if it still
    /// holds it; whether it did.
    fn release_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, bool>;
    /// Up to `limit` uploads that started at or before `stale_before_ms`.
    fn stale_backups(&self, stale_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<(Uuid, PendingBackup)>>;
}

/// Liveness of the backend.
pub trait Health {
    /// A round trip to the backend's threads (or servers).
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// Whether a failed flush has made the store refuse writes.
    fn is_poisoned(&self) -> bool;
    /// Makes every acknowledged write durable (fsync), for shutdown.
    fn flush(&self) -> Result<(), StoreError>;
    /// Appends the backend's own metrics (Prometheus text) to `out`.
    fn render_metrics(&self, _out: &mut String) {}
}

/// Declares `Store` as all of the given traits, implemented by every type
/// that implements them (the list is written once).
macro_rules! complete_backend {
    ($($part:ident),+) => {
        /// A complete backend.
        pub trait Store: $($part +)+ Send + Sync {}

        impl<T> Store for T where T: $($part +)+ Send + Sync {}
    };
}

complete_backend!(
    Accounts,
    RevocationLog,
    Devices,
    Keys,
    Mailboxes,
    Idempotency,
    Tickets,
    RefreshTokens,
    Attachments,
    Backups,
    PushTokens,
    PushJobs,
    Health
);

/// Opens the store `--store` names: the embedded one in `--data-dir`, or
/// the ScyllaDB one (whose driver gets a side runtime of its own). Its
/// threads live until the process exits.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    match config.store {
        StoreKind::Embedded => {
            let options = embedded::EmbeddedOptions {
                durability: config.durability,
                read_threads: config.store_read_threads,
                faults: config.store_faults(),
                mailbox_index_max: config.store_mailbox_index_max,
            };
            let (store, _detached) = embedded::EmbeddedStore::open(&config.data_dir, &options)?;
            Ok(store)
        }
        StoreKind::Scylla => {
            let options = scylla::session::ScyllaOptions::from_config(config)?;
            let runtime = crate::offload::side_runtime::SideRuntime::start_named(
                "cql-runtime",
                config.scylla.scylla_driver_threads,
            )
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
            Ok(scylla::ScyllaStore::open(options, runtime)?)
        }
    }
}

/// Runs a maintenance subcommand (`schema apply`, `store copy`) and says
/// what it did.
pub fn run_command(command: &Command, config: &Config) -> Result<String, StoreError> {
    match command {
        Command::Schema {
            action: SchemaAction::Apply,
        } => {
            let version = scylla::schema::apply_with(config)?;
            Ok(format!(
                "keyspace {} is at schema version {version}",
                config.scylla.scylla_keyspace
            ))
        }
        Command::Store {
            action: StoreAction::Copy { from, to },
        } => Ok(copy::copy(from, *to, config)?.to_string()),
    }
}

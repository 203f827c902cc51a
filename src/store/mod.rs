//! The storage interface: what the relay keeps, as async traits that a
//! backend implements ([`embedded`] on fjall today; ScyllaDB later), and the
//! records that cross it. Callers never see a backend type, only
//! `Arc<dyn Store>`.
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
pub mod embedded;

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

/// Accounts: users and their unique usernames.
pub trait Accounts {
    /// Creates a user; [`StoreError::UsernameTaken`] if the name exists.
    fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> StoreFuture<'_, ()>;
    /// Looks a user up by (lower-cased) username.
    fn user_by_name(&self, username: &str) -> StoreFuture<'_, Option<UserRecord>>;
}

/// Devices and the keys they are created with.
pub trait Devices {
    /// Creates a device with its keys and refresh token, unless the user
    /// already has `max_devices` ([`StoreError::DeviceLimit`]).
    fn create_device(&self, new: NewDevice, max_devices: usize) -> StoreFuture<'_, ()>;
    /// One device, whoever owns it.
    fn device(&self, id: Uuid) -> StoreFuture<'_, Option<DeviceRecord>>;
    /// A user's devices, oldest first.
    fn devices_of(&self, user_id: Uuid) -> StoreFuture<'_, Vec<DeviceRecord>>;
    /// Renames a device of `user_id`; `None` if it is not theirs or absent.
    fn rename_device(&self, user_id: Uuid, id: Uuid, name: Option<String>) -> StoreFuture<'_, Option<DeviceRecord>>;
    /// Deletes a device of `user_id` and everything it owns (keys, refresh
    /// tokens); `false` if it is not theirs or absent.
    fn delete_device(&self, user_id: Uuid, id: Uuid) -> StoreFuture<'_, bool>;
}

/// Prekeys of devices.
pub trait Keys {
    /// The signed prekeys of a device, by ascending key id.
    fn signed_prekeys(&self, device_id: Uuid) -> StoreFuture<'_, Vec<SignedPreKey>>;
    /// The number of one-time prekeys a device has.
    fn one_time_prekey_count(&self, device_id: Uuid) -> StoreFuture<'_, usize>;
}

/// Refresh tokens and their families.
pub trait RefreshTokens {
    /// Stores a new token (login).
    fn insert_refresh(&self, record: RefreshRecord) -> StoreFuture<'_, ()>;
    /// Presents `presented` at `now_secs`; if valid, replaces it by `next`
    /// (same user, device and family; expiry `next_expires_at_secs`).
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

/// Liveness of the backend.
pub trait Health {
    /// A round trip to the backend's threads (or servers).
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// Whether a failed flush has made the store refuse writes.
    fn is_poisoned(&self) -> bool;
    /// Makes every acknowledged write durable (fsync), for shutdown.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A complete backend.
pub trait Store: Accounts + Devices + Keys + RefreshTokens + Health + Send + Sync {}

impl<T: Accounts + Devices + Keys + RefreshTokens + Health + Send + Sync> Store for T {}

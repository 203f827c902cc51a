//! On-disk value encodings of the embedded store: protobuf messages (prost),
//! so a field can be added later without rewriting old records. Conversions
//! to and from the interface records live here and nowhere else. Fields
//! mirror the interface records of [`crate::store`], which document them.

#![allow(missing_docs)]

use prost::Message;
use uuid::Uuid;

use crate::auth::refresh::TokenHash;
use crate::crypto::public_key::{PublicKey, Signature};
use crate::store::{
    AccountDeletion, BackupRow, DeviceRecord, OneTimePreKey, PendingBackup, RefreshRecord, Revoked, SignedPreKey,
    StoreError, TokenFloor, UserRecord,
};

/// Stored user.
#[derive(Clone, PartialEq, Message)]
pub struct UserValue {
    #[prost(string, tag = "1")]
    pub username: String,
    #[prost(string, tag = "2")]
    pub password_hash: String,
    #[prost(int64, tag = "3")]
    pub created_at_micros: i64,
    #[prost(bool, tag = "4")]
    pub legacy: bool,
    #[prost(uint32, tag = "5")]
    pub token_generation: u32,
    /// Raised by every device deletion (0 in records from before).
    #[prost(uint32, tag = "6")]
    pub user_scope_generation: u32,
}

/// Stored device.
#[derive(Clone, PartialEq, Message)]
pub struct DeviceValue {
    #[prost(bytes = "vec", tag = "1")]
    pub user_id: Vec<u8>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(int64, tag = "3")]
    pub created_at_micros: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub identity_key: Vec<u8>,
    #[prost(int32, tag = "5")]
    pub registration_id: i32,
}

/// Stored signed prekey (key id is in the key).
#[derive(Clone, PartialEq, Message)]
pub struct SignedPreKeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
}

/// Stored one-time prekey (key id is in the key).
#[derive(Clone, PartialEq, Message)]
pub struct OneTimePreKeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub public_key: Vec<u8>,
    /// Upload order, for pruning the oldest.
    #[prost(uint64, tag = "2")]
    pub uploaded_seq: u64,
}

/// Stored refresh token (hash is the key).
#[derive(Clone, PartialEq, Message)]
pub struct RefreshValue {
    #[prost(bytes = "vec", tag = "1")]
    pub user_id: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub device_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "3")]
    pub family: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub expires_at_secs: i64,
    /// Spent by a rotation; kept until expiry to detect reuse.
    #[prost(bool, tag = "5")]
    pub rotated: bool,
    /// The account's token generation at issue (0 in records from before).
    #[prost(uint32, tag = "6")]
    pub generation: u32,
    /// The account's user-scope generation at issue (0 in records from
    /// before).
    #[prost(uint32, tag = "7")]
    pub user_scope_generation: u32,
}

/// Stored revocation (time and user are in the key).
#[derive(Clone, PartialEq, Message)]
pub struct RevocationValue {
    /// The lowest accepted generation; ignored when `deleted`.
    #[prost(uint32, tag = "1")]
    pub generation: u32,
    #[prost(bool, tag = "2")]
    pub deleted: bool,
}

/// Stored pending account deletion (user id is the key).
#[derive(Clone, PartialEq, Message)]
pub struct AccountDeletionValue {
    /// The account's devices, 16 bytes each.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub devices: Vec<Vec<u8>>,
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
}

/// Stored backup row (device id is the key).
#[derive(Clone, PartialEq, Message)]
pub struct BackupValue {
    #[prost(int32, tag = "1")]
    pub current_version: i32,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub current_token: Option<Vec<u8>>,
    /// Present while an upload holds the slot (state `UPLOADING`).
    #[prost(message, optional, tag = "3")]
    pub pending: Option<PendingValue>,
}

/// Stored upload in progress.
#[derive(Clone, PartialEq, Message)]
pub struct PendingValue {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub token: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub started_at_ms: i64,
}

fn corrupt(table: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

/// Decodes a value of `table`.
pub fn decode<M: Message + Default>(table: &'static str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| corrupt(table, e))
}

/// A UUID from 16 stored bytes.
pub fn uuid(table: &'static str, bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|e| corrupt(table, e))
}

fn key(table: &'static str, bytes: &[u8]) -> Result<PublicKey, StoreError> {
    PublicKey::from_bytes(bytes).map_err(|e| corrupt(table, e))
}

impl UserValue {
    /// From the interface record.
    pub fn from_record(u: &UserRecord) -> Self {
        Self {
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            created_at_micros: u.created_at_micros,
            legacy: u.legacy,
            token_generation: u.token_generation,
            user_scope_generation: u.user_scope_generation,
        }
    }

    /// To the interface record.
    pub fn into_record(self, id: Uuid) -> UserRecord {
        UserRecord {
            id,
            username: self.username,
            password_hash: self.password_hash,
            created_at_micros: self.created_at_micros,
            legacy: self.legacy,
            token_generation: self.token_generation,
            user_scope_generation: self.user_scope_generation,
        }
    }
}

impl DeviceValue {
    /// From the interface record.
    pub fn from_record(d: &DeviceRecord) -> Self {
        Self {
            user_id: d.user_id.as_bytes().to_vec(),
            name: d.name.clone(),
            created_at_micros: d.created_at_micros,
            identity_key: d.identity_key.0.to_vec(),
            registration_id: d.registration_id,
        }
    }

    /// To the interface record.
    pub fn into_record(self, id: Uuid) -> Result<DeviceRecord, StoreError> {
        Ok(DeviceRecord {
            id,
            user_id: uuid("devices", &self.user_id)?,
            name: self.name,
            created_at_micros: self.created_at_micros,
            identity_key: key("devices", &self.identity_key)?,
            registration_id: self.registration_id,
        })
    }
}

impl SignedPreKeyValue {
    /// From the interface record.
    pub fn from_record(k: &SignedPreKey) -> Self {
        Self {
            public_key: k.public_key.0.to_vec(),
            signature: k.signature.0.to_vec(),
        }
    }

    /// To the interface record.
    pub fn into_record(self, key_id: i32) -> Result<SignedPreKey, StoreError> {
        Ok(SignedPreKey {
            key_id,
            public_key: key("signed_prekeys", &self.public_key)?,
            signature: Signature::from_bytes(&self.signature).map_err(|e| corrupt("signed_prekeys", e))?,
        })
    }
}

impl OneTimePreKeyValue {
    /// From the interface record and its upload order.
    pub fn from_record(k: &OneTimePreKey, uploaded_seq: u64) -> Self {
        Self {
            public_key: k.public_key.0.to_vec(),
            uploaded_seq,
        }
    }
}

impl RefreshValue {
    /// From the interface record.
    pub fn from_record(r: &RefreshRecord) -> Self {
        Self {
            user_id: r.user_id.as_bytes().to_vec(),
            device_id: r.device_id.map(|d| d.as_bytes().to_vec()),
            family: r.family.as_bytes().to_vec(),
            expires_at_secs: r.expires_at_secs,
            rotated: false,
            generation: r.generation,
            user_scope_generation: r.user_scope_generation,
        }
    }

    /// To the interface record.
    pub fn to_record(&self, hash: TokenHash) -> Result<RefreshRecord, StoreError> {
        Ok(RefreshRecord {
            hash,
            user_id: uuid("refresh_tokens", &self.user_id)?,
            device_id: self
                .device_id
                .as_deref()
                .map(|d| uuid("refresh_tokens", d))
                .transpose()?,
            family: uuid("refresh_tokens", &self.family)?,
            expires_at_secs: self.expires_at_secs,
            generation: self.generation,
            user_scope_generation: self.user_scope_generation,
        })
    }
}

/// Stored message (target device and seq are in the key).
#[derive(Clone, PartialEq, Message)]
pub struct MessageValue {
    #[prost(bytes = "vec", tag = "1")]
    pub sender_user: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub sender_device: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub submission_id: Vec<u8>,
    #[prost(bytes = "bytes", tag = "4")]
    pub payload: bytes::Bytes,
    #[prost(uint64, tag = "5")]
    pub created_at_ms: u64,
    #[prost(int64, tag = "6")]
    pub expires_at_secs: i64,
}

/// Stored idempotent response.
#[derive(Clone, PartialEq, Message)]
pub struct IdempotencyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub response: bytes::Bytes,
    #[prost(int64, tag = "2")]
    pub expires_at_secs: i64,
}

pub use crate::store::message_ids::{message_id, seq_of_message_id};

impl BackupValue {
    /// From the interface record.
    pub fn from_record(row: &BackupRow) -> Self {
        Self {
            current_version: row.current_version,
            current_token: row.current_token.map(|t| t.as_bytes().to_vec()),
            pending: row.pending.map(|p| PendingValue {
                version: p.version,
                token: p.token.as_bytes().to_vec(),
                started_at_ms: p.started_at_ms,
            }),
        }
    }

    /// To the interface record.
    pub fn into_record(self) -> Result<BackupRow, StoreError> {
        let pending = match self.pending {
            Some(p) => Some(PendingBackup {
                version: p.version,
                token: uuid("backups", &p.token)?,
                started_at_ms: p.started_at_ms,
            }),
            None => None,
        };
        Ok(BackupRow {
            current_version: self.current_version,
            current_token: self.current_token.as_deref().map(|t| uuid("backups", t)).transpose()?,
            pending,
        })
    }
}

impl RevocationValue {
    /// From what is revoked (its subject is in the key).
    pub fn from_revoked(revoked: Revoked) -> Self {
        let (generation, deleted) = match revoked {
            Revoked::Account(_, TokenFloor::Generation(generation)) | Revoked::UserScope(_, generation) => {
                (generation, false)
            }
            Revoked::Account(_, TokenFloor::Deleted) | Revoked::Device(_) => (0, true),
        };
        Self { generation, deleted }
    }

    /// What is revoked of `subject`, whose kind the key gives.
    pub fn revoked(&self, subject: Uuid, kind: RevokedKind) -> Revoked {
        match kind {
            RevokedKind::Account if self.deleted => Revoked::Account(subject, TokenFloor::Deleted),
            RevokedKind::Account => Revoked::Account(subject, TokenFloor::Generation(self.generation)),
            RevokedKind::UserScope => Revoked::UserScope(subject, self.generation),
            RevokedKind::Device => Revoked::Device(subject),
        }
    }
}

/// The kind of a revocation row, the byte after its subject in the key
/// (none: an account's, as rows from before device revocations are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedKind {
    Account,
    UserScope,
    Device,
}

impl RevokedKind {
    /// The kind of `revoked`.
    pub fn of(revoked: Revoked) -> Self {
        match revoked {
            Revoked::Account(..) => Self::Account,
            Revoked::UserScope(..) => Self::UserScope,
            Revoked::Device(_) => Self::Device,
        }
    }

    /// Its key suffix.
    pub fn suffix(self) -> &'static [u8] {
        match self {
            Self::Account => &[],
            Self::UserScope => &[1],
            Self::Device => &[2],
        }
    }

    /// The kind of a key suffix; `None` for an unknown one.
    pub fn from_suffix(suffix: &[u8]) -> Option<Self> {
        match suffix {
            [] => Some(Self::Account),
            [1] => Some(Self::UserScope),
            [2] => Some(Self::Device),
            _ => None,
        }
    }
}

impl AccountDeletionValue {
    /// From the interface record (the user id is the key).
    pub fn from_record(d: &AccountDeletion) -> Self {
        Self {
            devices: d.devices.iter().map(|id| id.as_bytes().to_vec()).collect(),
            at_ms: d.at_ms,
        }
    }

    /// To the interface record.
    pub fn into_record(self, user_id: Uuid) -> Result<AccountDeletion, StoreError> {
        Ok(AccountDeletion {
            user_id,
            devices: self
                .devices
                .iter()
                .map(|d| uuid("account_deletions", d))
                .collect::<Result<_, _>>()?,
            at_ms: self.at_ms,
        })
    }
}

//! Key layout of the embedded store: which keyspace holds what, and how its
//! keys are built. Composite keys concatenate fixed-width parts so a prefix
//! scan finds all rows of one owner; integers are big-endian (signed ones
//! with the sign bit flipped) so byte order is numeric order.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `users` | user id | [`super::records::UserValue`] |
//! | `usernames` | lower-cased name | user id |
//! | `devices` | device id | [`super::records::DeviceValue`] |
//! | `user_devices` | user id ‖ device id | – |
//! | `signed_prekeys` | device id ‖ key id | [`super::records::SignedPreKeyValue`] |
//! | `one_time_prekeys` | device id ‖ key id | [`super::records::OneTimePreKeyValue`] |
//! | `refresh_tokens` | token hash | [`super::records::RefreshValue`] |
//! | `refresh_families` | family id ‖ token hash | – |
//! | `device_refresh` | device id ‖ token hash | – |
//! | `refresh_expiry` | expiry (s) ‖ token hash | – |
//! | `mailboxes` | device id ‖ seq | [`super::records::MessageValue`] |
//! | `deleted_senders` | device id | deletion time (s), big-endian |
//! | `idempotency` | sender device ‖ key | [`super::records::IdempotencyValue`] |
//! | `idempotency_expiry` | expiry (s) ‖ sender device ‖ key | – |
//! | `attachments` | attachment id | expiry (s), big-endian |
//! | `attachment_expiry` | expiry (s) ‖ attachment id | – |
//! | `backups` | device id | [`super::records::BackupValue`] |
//! | `backup_uploads` | device id | – (the rows with an upload in progress) |
//! | `meta` | name | value (`seq`: the end of the reserved block of sequence numbers; `user_refresh_indexed`) |
//! | `push_tokens` | device id | token (UTF-8) |
//! | `push_token_devices` | sha256(token) ‖ device id | – |
//! | `push_jobs` | device id | due (ms) |
//! | `push_due` | due (ms) ‖ device id | – |
//! | `user_refresh` | user id ‖ token hash | – (every refresh token of a user) |
//! | `revocations` | time (ms) ‖ account or device id ‖ kind (none: account; 1: user scope; 2: device) | [`super::records::RevocationValue`] |
//! | `account_deletions` | user id | [`super::records::AccountDeletionValue`] (deletions whose blob clean-up is due) |
//!
//! `seq` is one process-wide counter that only the writer thread advances,
//! so within a mailbox the order of seqs is the order of commits: a cursor
//! on seq can never skip a message that committed late.

use uuid::Uuid;

/// Every keyspace name, in creation order.
pub const KEYSPACES: [&str; 26] = [
    "users",
    "usernames",
    "devices",
    "user_devices",
    "signed_prekeys",
    "one_time_prekeys",
    "refresh_tokens",
    "refresh_families",
    "device_refresh",
    "refresh_expiry",
    "mailboxes",
    "deleted_senders",
    "idempotency",
    "idempotency_expiry",
    "meta",
    "push_tokens",
    "push_token_devices",
    "push_jobs",
    "push_due",
    "attachments",
    "attachment_expiry",
    "backups",
    "backup_uploads",
    "user_refresh",
    "revocations",
    "account_deletions",
];

/// The `meta` key of the sequence high-water mark.
pub const META_SEQ: &[u8] = b"seq";

/// The `meta` key present once `user_refresh` indexes every refresh token
/// (stores from before the index get it built at their first open).
pub const META_USER_REFRESH_INDEXED: &[u8] = b"user_refresh_indexed";

/// `device id ‖ seq`.
pub fn mailbox_key(device: Uuid, seq: u64) -> Vec<u8> {
    pair(device.as_bytes(), &seq.to_be_bytes())
}

/// The seq of a `mailboxes` key.
pub fn seq_of_mailbox_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(16..24)?.try_into().ok()?))
}

/// `expiry ‖ id ‖ rest`, for the expiry indexes.
pub fn expiry_key(expires_at_secs: i64, id: Uuid, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + 16 + rest.len());
    key.extend_from_slice(&ordered_i64(expires_at_secs));
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(rest);
    key
}

/// `a ‖ b`.
pub fn pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len());
    key.extend_from_slice(a);
    key.extend_from_slice(b);
    key
}

/// A signed 32-bit integer whose byte order is its numeric order.
pub fn ordered_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ 0x8000_0000).to_be_bytes()
}

/// Inverse of [`ordered_i32`].
pub fn i32_from_ordered(bytes: &[u8]) -> Option<i32> {
    let array: [u8; 4] = bytes.try_into().ok()?;
    Some((u32::from_be_bytes(array) ^ 0x8000_0000) as i32)
}

/// A signed 64-bit integer whose byte order is its numeric order.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ 0x8000_0000_0000_0000).to_be_bytes()
}

/// `device id ‖ key id`.
pub fn device_key(device: Uuid, key_id: i32) -> Vec<u8> {
    pair(device.as_bytes(), &ordered_i32(key_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ints_sort_numerically() {
        let mut values = vec![i32::MIN, -5, -1, 0, 1, 7, i32::MAX];
        let mut encoded: Vec<_> = values.iter().map(|v| ordered_i32(*v)).collect();
        encoded.sort();
        let decoded: Vec<_> = encoded.iter().map(|e| i32_from_ordered(e).unwrap()).collect();
        values.sort();
        assert_eq!(decoded, values);
        assert!(ordered_i64(-1) < ordered_i64(0));
    }
}

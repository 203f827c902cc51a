//! Every CQL statement of the ScyllaDB store, in one place: each is
//! prepared once at start ([`super::cql::Cql`]) and named by a [`Stmt`],
//! whose label is what `/metrics` reports its latency and errors under.
//! The tables are in `schema/`; lightweight transactions (`IF …`) appear
//! only where a check-then-act is the point (see docs/ARCHITECTURE.md).

/// Declares [`Stmt`], its CQL and its label, from one list.
macro_rules! statements {
    ($($name:ident => $cql:literal,)+) => {
        /// A prepared statement of the store.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Stmt {
            $(
                #[doc = $cql]
                $name,
            )+
        }

        /// Every statement, in declaration order (`Stmt as usize` indexes it).
        pub const ALL: &[Stmt] = &[$(Stmt::$name,)+];

        impl Stmt {
            /// The statement's CQL.
            pub fn cql(self) -> &'static str {
                match self {
                    $(Stmt::$name => $cql,)+
                }
            }

            /// Its name in metrics.
            pub fn label(self) -> &'static str {
                match self {
                    $(Stmt::$name => stringify!($name),)+
                }
            }
        }
    };
}

statements! {
    // --- health ---
    Ping => "SELECT release_version FROM system.local",
    // --- accounts ---
    InsertUser => "INSERT INTO users (id, username, password_hash, created_at_us, legacy, token_generation, \
                   user_scope_generation) VALUES (?, ?, ?, ?, ?, ?, ?)",
    SelectUser => "SELECT username, password_hash, created_at_us, legacy, token_generation, deleted_at_ms, \
                   deleted_devices, user_scope_generation FROM users WHERE id = ?",
    DeleteUser => "DELETE FROM users WHERE id = ?",
    ClaimUsername => "INSERT INTO usernames (username, user_id) VALUES (?, ?) IF NOT EXISTS",
    SelectUsername => "SELECT user_id FROM usernames WHERE username = ?",
    // The username of a deleted account is taken over, or released, only
    // while it still names that account: never a name a new one claimed.
    TakeOverUsername => "UPDATE usernames SET user_id = ? WHERE username = ? IF user_id = ?",
    ReleaseUsername => "DELETE FROM usernames WHERE username = ? IF user_id = ?",
    // The compare-and-sets of a password change and of a deletion's
    // decision: the generation the caller was authorized at (null on a row
    // written by schema version 1, which counts as 0), not deleted, and the
    // username (so that a row the clean-up removed meanwhile is not
    // recreated by the update).
    ChangePassword => "UPDATE users SET password_hash = ?, token_generation = ? WHERE id = ? \
                       IF token_generation = ? AND deleted_at_ms = null AND username = ?",
    MarkUserDeleted => "UPDATE users SET deleted_at_ms = ?, password_hash = null WHERE id = ? \
                        IF token_generation = ? AND deleted_at_ms = null AND username = ?",
    SetDeletedDevices => "UPDATE users SET deleted_devices = ? WHERE id = ?",
    // A device deletion raises the account's user-scope generation from the
    // one it read (null before schema 4, which counts as 0), while the
    // account lives.
    RaiseUserScope => "UPDATE users SET user_scope_generation = ? WHERE id = ? \
                       IF user_scope_generation = ? AND deleted_at_ms = null AND username = ?",
    InsertDeletedUser => "INSERT INTO users (id, deleted_at_ms, deleted_devices) VALUES (?, ?, ?)",
    // --- devices ---
    InsertDevice => "INSERT INTO devices (id, user_id, name, created_at_us, identity_key, registration_id) \
                     VALUES (?, ?, ?, ?, ?, ?)",
    SelectDevice => "SELECT id, user_id, name, created_at_us, identity_key, registration_id, push_token \
                     FROM devices WHERE id = ?",
    SelectDevices => "SELECT id, user_id, name, created_at_us, identity_key, registration_id, push_token \
                      FROM devices WHERE id IN ?",
    UpdateDeviceName => "UPDATE devices SET name = ? WHERE id = ?",
    UpdateDeviceIdentity => "UPDATE devices SET identity_key = ?, registration_id = ? WHERE id = ?",
    DeleteDevice => "DELETE FROM devices WHERE id = ?",
    SelectUserDevices => "SELECT device_id, version FROM user_devices WHERE user_id = ?",
    InsertUserDevice => "INSERT INTO user_devices (user_id, device_id) VALUES (?, ?)",
    SetDeviceVersion => "UPDATE user_devices SET version = ? WHERE user_id = ?",
    BumpDeviceVersion => "UPDATE user_devices SET version = ? WHERE user_id = ? IF version = ?",
    DeleteUserDevice => "DELETE FROM user_devices WHERE user_id = ? AND device_id = ?",
    DeleteUserDevices => "DELETE FROM user_devices WHERE user_id = ?",
    // --- prekeys (deletes and inserts carry timestamps: a batch that deletes
    // and re-inserts one key must let the insert win) ---
    InsertSignedPreKey => "INSERT INTO signed_prekeys (device_id, key_id, public_key, signature) \
                           VALUES (?, ?, ?, ?) USING TIMESTAMP ?",
    SelectSignedPreKeys => "SELECT key_id, public_key, signature FROM signed_prekeys WHERE device_id = ?",
    DeleteSignedPreKey => "DELETE FROM signed_prekeys USING TIMESTAMP ? WHERE device_id = ? AND key_id = ?",
    DeleteSignedPreKeys => "DELETE FROM signed_prekeys USING TIMESTAMP ? WHERE device_id = ?",
    InsertOneTimePreKey => "INSERT INTO one_time_prekeys (device_id, key_id, public_key, uploaded_seq) \
                            VALUES (?, ?, ?, ?) USING TIMESTAMP ?",
    SelectOneTimePreKeys => "SELECT key_id, public_key, uploaded_seq FROM one_time_prekeys WHERE device_id = ?",
    CountOneTimePreKeys => "SELECT COUNT(*) FROM one_time_prekeys WHERE device_id = ?",
    DeleteOneTimePreKey => "DELETE FROM one_time_prekeys USING TIMESTAMP ? WHERE device_id = ? AND key_id = ?",
    DeleteOneTimePreKeys => "DELETE FROM one_time_prekeys USING TIMESTAMP ? WHERE device_id = ?",
    ClaimOneTimePreKey => "DELETE FROM one_time_prekeys WHERE device_id = ? AND key_id = ? IF EXISTS",
    // --- refresh tokens ---
    InsertRefresh => "INSERT INTO refresh_tokens (hash, user_id, device_id, family, expires_at, rotated, generation, \
                      user_scope_generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
    SelectRefresh => "SELECT user_id, device_id, family, expires_at, rotated, generation, user_scope_generation \
                      FROM refresh_tokens WHERE hash = ?",
    SpendRefresh => "UPDATE refresh_tokens SET rotated = true, rotated_to = ? WHERE hash = ? \
                     IF rotated = false AND rotated_to = null",
    DeleteRefresh => "DELETE FROM refresh_tokens WHERE hash = ?",
    InsertFamilyMember => "INSERT INTO refresh_families (family, hash) VALUES (?, ?) USING TTL ?",
    SelectFamily => "SELECT hash, revoked FROM refresh_families WHERE family = ?",
    RevokeFamily => "UPDATE refresh_families USING TTL ? SET revoked = true WHERE family = ?",
    DeleteFamilyMember => "DELETE FROM refresh_families WHERE family = ? AND hash = ?",
    InsertDeviceRefresh => "INSERT INTO device_refresh (device_id, hash) VALUES (?, ?) USING TTL ?",
    SelectDeviceRefresh => "SELECT hash FROM device_refresh WHERE device_id = ?",
    DeleteDeviceRefreshes => "DELETE FROM device_refresh WHERE device_id = ?",
    DeleteDeviceRefresh => "DELETE FROM device_refresh WHERE device_id = ? AND hash = ?",
    InsertUserRefresh => "INSERT INTO user_refresh (user_id, hash) VALUES (?, ?) USING TTL ?",
    SelectUserRefresh => "SELECT hash FROM user_refresh WHERE user_id = ?",
    DeleteUserRefresh => "DELETE FROM user_refresh WHERE user_id = ? AND hash = ?",
    DeleteUserRefreshes => "DELETE FROM user_refresh WHERE user_id = ?",
    // --- mailboxes ---
    InsertMessage => "INSERT INTO messages (device_id, bucket, seq, sender_user, sender_device, submission_id, \
                      payload, created_at_ms, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
    SelectMessages => "SELECT seq, sender_user, sender_device, payload, created_at_ms, expires_at FROM messages \
                       WHERE device_id = ? AND bucket = ? AND seq >= ? AND seq < ? LIMIT ?",
    SelectMessageHeads => "SELECT seq, sender_device, expires_at FROM messages \
                           WHERE device_id = ? AND bucket = ? AND seq >= ? AND seq < ? LIMIT ?",
    SelectMessageStamps => "SELECT seq, created_at_ms FROM messages WHERE device_id = ? AND bucket = ? AND seq IN ?",
    DeleteMessage => "DELETE FROM messages WHERE device_id = ? AND bucket = ? AND seq = ?",
    DeleteMessageAt => "DELETE FROM messages USING TIMESTAMP ? WHERE device_id = ? AND bucket = ? AND seq = ?",
    DeleteBucket => "DELETE FROM messages USING TIMESTAMP ? WHERE device_id = ? AND bucket = ?",
    InsertBucket => "INSERT INTO mailbox_buckets (device_id, bucket) VALUES (?, ?) USING TTL ?",
    SelectBuckets => "SELECT bucket, floor FROM mailbox_buckets WHERE device_id = ?",
    DeleteBucketRow => "DELETE FROM mailbox_buckets WHERE device_id = ? AND bucket = ?",
    SetFloor => "UPDATE mailbox_buckets SET floor = ? WHERE device_id = ?",
    DeleteMailbox => "DELETE FROM mailbox_buckets USING TIMESTAMP ? WHERE device_id = ?",
    InsertSubmission => "INSERT INTO submissions (sender_device, submission_id, target, seq) \
                         VALUES (?, ?, ?, ?) USING TTL ?",
    SelectSubmissions => "SELECT submission_id, target, seq FROM submissions \
                          WHERE sender_device = ? AND submission_id IN ?",
    // --- idempotency answers ---
    InsertAnswer => "INSERT INTO answers (device_id, key, response, expires_at) VALUES (?, ?, ?, ?) USING TTL ?",
    SelectAnswer => "SELECT response, expires_at FROM answers WHERE device_id = ? AND key = ?",
    DeleteAnswer => "DELETE FROM answers WHERE device_id = ? AND key = ?",
    // --- tickets ---
    InsertTicket => "INSERT INTO tickets (ticket, device_id, expires_at_ms, user_id, generation) \
                     VALUES (?, ?, ?, ?, ?) USING TTL ?",
    SelectTicket => "SELECT device_id, expires_at_ms, user_id, generation FROM tickets WHERE ticket = ?",
    ClaimTicket => "DELETE FROM tickets WHERE ticket = ? IF EXISTS",
    // --- node tags ---
    ClaimNodeTag => "INSERT INTO node_tags (tag, holder) VALUES (?, ?) IF NOT EXISTS USING TTL ?",
    RenewNodeTag => "UPDATE node_tags USING TTL ? SET holder = ? WHERE tag = ? IF holder = ?",
    // --- push ---
    SetPushToken => "UPDATE devices SET push_token = ? WHERE id = ?",
    ClearPushTokenIf => "UPDATE devices SET push_token = null WHERE id = ? IF push_token = ?",
    InsertTokenDevice => "INSERT INTO push_token_devices (token_hash, device_id) VALUES (?, ?)",
    SelectTokenDevices => "SELECT device_id FROM push_token_devices WHERE token_hash = ?",
    DeleteTokenDevice => "DELETE FROM push_token_devices WHERE token_hash = ? AND device_id = ?",
    InsertPushJob => "INSERT INTO push_jobs (device_id, due_ms) VALUES (?, ?) USING TIMESTAMP ? AND TTL ?",
    SelectPushJob => "SELECT due_ms FROM push_jobs WHERE device_id = ? LIMIT 1",
    DeletePushJobs => "DELETE FROM push_jobs USING TIMESTAMP ? WHERE device_id = ?",
    SelectLease => "SELECT lease_until_ms FROM push_leases WHERE device_id = ?",
    ClaimLease => "UPDATE push_leases SET lease_until_ms = ? WHERE device_id = ? IF lease_until_ms = ?",
    DeleteLease => "DELETE FROM push_leases WHERE device_id = ?",
    // --- attachments ---
    InsertAttachment => "INSERT INTO attachments (id, expires_at) VALUES (?, ?) USING TTL ?",
    SelectAttachment => "SELECT expires_at FROM attachments WHERE id = ?",
    DeleteAttachment => "DELETE FROM attachments WHERE id = ?",
    // --- backups ---
    SelectBackup => "SELECT current_version, current_token, pending_version, pending_token, pending_started_ms \
                     FROM backups WHERE device_id = ?",
    CreateBackup => "INSERT INTO backups (device_id, current_version, pending_version, pending_token, \
                     pending_started_ms) VALUES (?, 0, ?, ?, ?) IF NOT EXISTS",
    ReserveBackup => "UPDATE backups SET pending_version = ?, pending_token = ?, pending_started_ms = ? \
                      WHERE device_id = ? IF current_version = ? AND pending_token = ?",
    CommitBackup => "UPDATE backups SET current_version = ?, current_token = ?, pending_version = null, \
                     pending_token = null, pending_started_ms = null WHERE device_id = ? IF pending_token = ?",
    ReleaseBackup => "UPDATE backups SET pending_version = null, pending_token = null, pending_started_ms = null \
                      WHERE device_id = ? IF pending_token = ?",
    DeleteBackup => "DELETE FROM backups WHERE device_id = ?",
    InsertBackup => "INSERT INTO backups (device_id, current_version, current_token, pending_version, pending_token, \
                     pending_started_ms) VALUES (?, ?, ?, ?, ?, ?)",
    // --- time-bucketed indexes ---
    InsertTimeIndex => "INSERT INTO time_index (kind, bucket, at, id) VALUES (?, ?, ?, ?) USING TTL ?",
    SelectTimeIndex => "SELECT at, id FROM time_index WHERE kind = ? AND bucket = ? AND at <= ? LIMIT ?",
    SelectTimeIndexAfter => "SELECT at, id FROM time_index WHERE kind = ? AND bucket = ? AND (at, id) > (?, ?) LIMIT ?",
    SelectTimeIndexAt => "SELECT id FROM time_index WHERE kind = ? AND bucket = ? AND at = ? AND id > ? LIMIT ?",
    DeleteTimeIndex => "DELETE FROM time_index WHERE kind = ? AND bucket = ? AND at = ? AND id = ?",
    SelectFloors => "SELECT kind, bucket FROM time_index_floors WHERE kind IN ?",
    InsertFloor => "INSERT INTO time_index_floors (kind, bucket) VALUES (?, ?) IF NOT EXISTS",
    MoveFloor => "UPDATE time_index_floors SET bucket = ? WHERE kind = ? IF bucket = ?",
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `Stmt as usize` indexes [`ALL`], so prepared statements can be
    /// looked up by it; labels are unique.
    #[test]
    fn statements_index_their_list() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let mut labels: Vec<_> = ALL.iter().map(|s| s.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ALL.len());
    }
}

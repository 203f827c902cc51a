//! The decisions both backends make, as pure functions from what was read
//! to what to do: each backend only reads and writes around them, so the
//! rule lives once and is unit-tested here (the conformance suite checks
//! that each backend follows it).
//!
//! - [`RefreshRecord::rotation_step`]: presenting a refresh token, in one
//!   order of checks (with [`RefreshRecord::held_by`]);
//! - [`deliverable`]: whether a stored message is still to be delivered;
//! - [`KeyUpload::takes_over`], [`KeyUpload::signing_identity`],
//!   [`KeyUpload::check_signed_prekey_id`] and [`KeyUpload::refill_plan`]:
//!   an upload's mode, the key its signature is checked against, the
//!   increasing signed-prekey id of a refill, and which one-time prekeys a
//!   refill prunes and adds;
//! - [`BackupRow::reservation`]: who gets a backup's upload slot.

use super::{
    BackupRow, KeyUpload, OneTimePreKey, PendingBackup, RefreshRecord, Reservation, UploadRejection, UserRecord,
};
use crate::crypto::public_key::PublicKey;

/// An account's generations, as a refresh rotation compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountGenerations {
    /// [`UserRecord::token_generation`].
    pub token: u32,
    /// [`UserRecord::user_scope_generation`].
    pub user_scope: u32,
}

impl From<&UserRecord> for AccountGenerations {
    fn from(user: &UserRecord) -> Self {
        Self {
            token: user.token_generation,
            user_scope: user.user_scope_generation,
        }
    }
}

/// Whether a stored message is still to be delivered at `now_secs`: not
/// expired, and its sender device not deleted. The one test every read of
/// a mailbox applies, on both backends.
pub fn deliverable(expires_at_secs: i64, now_secs: i64, sender_deleted: bool) -> bool {
    expires_at_secs > now_secs && !sender_deleted
}

/// What presenting a refresh token is to do ([`RefreshRecord::rotation_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// Its device or family is gone, or its account no longer holds it:
    /// delete it and answer [`Rotation::Unknown`].
    Forget,
    /// It was spent already: revoke its family, [`Rotation::Reused`].
    RevokeFamily,
    /// It expired: delete it, [`Rotation::Expired`].
    Expire,
    /// Spend it and store its successor, [`Rotation::Rotated`].
    Rotate,
}

impl RefreshRecord {
    /// Whether an account at `generations` still honours this token: the
    /// same token generation and, for a user-scoped token, no device
    /// deleted since it was issued.
    pub fn held_by(&self, generations: AccountGenerations) -> bool {
        generations.token == self.generation
            && (self.device_id.is_some() || self.user_scope_generation >= generations.user_scope)
    }

    /// The decision of a rotation, from what was read (both backends
    /// follow it, in this order): `orphaned` — its device or family is gone
    /// (rows a non-atomic deletion left behind) — wins, then a spent token
    /// is a reuse, an expired one expires, and a token its account (`None`:
    /// gone) no longer holds is forgotten; only then it rotates.
    pub fn rotation_step(
        &self,
        orphaned: bool,
        spent: bool,
        now_secs: i64,
        account: Option<AccountGenerations>,
    ) -> RotationStep {
        if orphaned {
            RotationStep::Forget
        } else if spent {
            RotationStep::RevokeFamily
        } else if self.expires_at_secs < now_secs {
            RotationStep::Expire
        } else if account.is_some_and(|a| self.held_by(a)) {
            RotationStep::Rotate
        } else {
            RotationStep::Forget
        }
    }
}

impl KeyUpload {
    /// Whether the upload replaces the device's identity `current` (a
    /// takeover, BEHAVIOR.md §6.3) rather than refilling its keys.
    pub fn takes_over(&self, current: &PublicKey) -> bool {
        self.identity.as_ref().is_some_and(|(key, _)| key != current)
    }

    /// The identity key the signed prekey must be signed by: the one the
    /// upload brings, else the device's `current` one.
    pub fn signing_identity<'a>(&'a self, current: &'a PublicKey) -> &'a PublicKey {
        self.identity.as_ref().map_or(current, |(key, _)| key)
    }

    /// A refill's signed-prekey id must be above every stored one's.
    pub fn check_signed_prekey_id(&self, stored: impl IntoIterator<Item = i32>) -> Result<(), UploadRejection> {
        match stored.into_iter().max() {
            Some(current) if self.signed_prekey.key_id <= current => {
                Err(UploadRejection::SignedPreKeyIdNotIncreasing {
                    new: self.signed_prekey.key_id,
                    current,
                })
            }
            _ => Ok(()),
        }
    }

    /// What a refill does to the one-time prekeys (BEHAVIOR.md §6.3), given
    /// the stored ones as (key id, upload order): the ids to prune (the
    /// oldest beyond the cap) and the sent keys to add (those not kept).
    pub fn refill_plan(&self, mut stored: Vec<(i32, u64)>) -> (Vec<i32>, Vec<OneTimePreKey>) {
        let excess = (stored.len() + self.one_time_prekeys.len()).saturating_sub(self.pre_keys_max);
        stored.sort_by_key(|(_, order)| *order);
        let pruned = stored.iter().take(excess).map(|(id, _)| *id).collect();
        let kept: std::collections::HashSet<i32> = stored.iter().skip(excess).map(|(id, _)| *id).collect();
        let fresh = self
            .one_time_prekeys
            .iter()
            .filter(|k| !kept.contains(&k.key_id))
            .cloned()
            .collect();
        (pruned, fresh)
    }
}

impl BackupRow {
    /// The row of a device that has no backup yet.
    pub const EMPTY: Self = Self {
        current_version: 0,
        current_token: None,
        pending: None,
    };

    /// Who gets the upload slot when an upload expecting committed version
    /// `expected` asks at a time when uploads started at or before
    /// `stale_before_ms` count as stale: a mismatched version is refused,
    /// a fresh pending upload keeps the slot, else the slot is the asker's
    /// (for the next version), replacing a stale upload if there was one.
    pub fn reservation(&self, expected: i32, stale_before_ms: i64) -> Reservation {
        if self.current_version != expected {
            Reservation::VersionMismatch
        } else if self.pending.is_some_and(|p| p.started_at_ms > stale_before_ms) {
            Reservation::InProgress
        } else {
            Reservation::Reserved {
                version: self.current_version + 1,
                replaced: self.pending,
            }
        }
    }
}

/// The pending upload a reservation made, if it made one.
pub fn reserved_upload(outcome: &Reservation, token: uuid::Uuid, started_at_ms: i64) -> Option<PendingBackup> {
    match outcome {
        Reservation::Reserved { version, .. } => Some(PendingBackup {
            version: *version,
            token,
            started_at_ms,
        }),
        Reservation::VersionMismatch | Reservation::InProgress => None,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::auth::refresh::hash_text;
    use crate::crypto::public_key::PublicKey;

    fn token(device: Option<Uuid>, generation: u32, user_scope: u32) -> RefreshRecord {
        RefreshRecord {
            hash: hash_text("t"),
            user_id: Uuid::now_v7(),
            device_id: device,
            family: Uuid::now_v7(),
            expires_at_secs: 100,
            generation,
            user_scope_generation: user_scope,
        }
    }

    const AT: AccountGenerations = AccountGenerations {
        token: 2,
        user_scope: 3,
    };

    /// Goal: the order of a rotation's checks: an orphan is forgotten even
    /// when spent, a spent token is a reuse even when expired, an expired
    /// one expires even when its account moved on; then the account decides
    /// (gone, another token generation, or a user scope below its floor for
    /// a user-scoped token only).
    #[test]
    fn rotation_checks_in_one_order() {
        let user = token(None, 2, 3);
        assert_eq!(user.rotation_step(true, true, 0, Some(AT)), RotationStep::Forget);
        assert_eq!(
            user.rotation_step(false, true, 200, Some(AT)),
            RotationStep::RevokeFamily
        );
        assert_eq!(user.rotation_step(false, false, 200, None), RotationStep::Expire);
        assert_eq!(
            user.rotation_step(false, false, 100, Some(AT)),
            RotationStep::Rotate,
            "expires after"
        );
        assert_eq!(user.rotation_step(false, false, 0, None), RotationStep::Forget);
        let moved = AccountGenerations { token: 3, ..AT };
        assert_eq!(user.rotation_step(false, false, 0, Some(moved)), RotationStep::Forget);
        let deleted_since = token(None, 2, 2);
        assert_eq!(
            deleted_since.rotation_step(false, false, 0, Some(AT)),
            RotationStep::Forget
        );
        let device = token(Some(Uuid::now_v7()), 2, 0);
        assert_eq!(device.rotation_step(false, false, 0, Some(AT)), RotationStep::Rotate);
    }

    /// Goal: a message is delivered strictly before its expiry and never
    /// once its sender is deleted.
    #[test]
    fn deliverable_until_expiry_unless_the_sender_is_gone() {
        assert!(deliverable(10, 9, false));
        assert!(!deliverable(10, 10, false));
        assert!(!deliverable(10, 9, true));
    }

    /// Goal: a refill prunes the oldest stored keys beyond the cap and adds
    /// only the sent keys it does not keep already.
    #[test]
    fn refill_prunes_the_oldest_beyond_the_cap() {
        let key = |key_id| OneTimePreKey {
            key_id,
            public_key: PublicKey([5; 33]),
        };
        let upload = KeyUpload {
            identity: None,
            signed_prekey: crate::store::SignedPreKey {
                key_id: 1,
                public_key: PublicKey([5; 33]),
                signature: crate::crypto::public_key::Signature([0; 64]),
            },
            one_time_prekeys: vec![key(3), key(4), key(5)],
            pre_keys_max: 4,
        };
        let (pruned, fresh) = upload.refill_plan(vec![(2, 20), (1, 10), (3, 30)]);
        assert_eq!(pruned, vec![1, 2], "the two oldest make room");
        let fresh: Vec<i32> = fresh.iter().map(|k| k.key_id).collect();
        assert_eq!(fresh, vec![4, 5], "3 is kept already");
    }

    /// Goal: an upload's mode and signing key follow its identity, and a
    /// refill's signed-prekey id must rise.
    #[test]
    fn uploads_take_over_only_with_another_identity() {
        let (mine, other) = (PublicKey([5; 33]), PublicKey([6; 33]));
        let mut upload = KeyUpload {
            identity: None,
            signed_prekey: crate::store::SignedPreKey {
                key_id: 7,
                public_key: PublicKey([7; 33]),
                signature: crate::crypto::public_key::Signature([0; 64]),
            },
            one_time_prekeys: Vec::new(),
            pre_keys_max: 100,
        };
        assert!(!upload.takes_over(&mine));
        assert_eq!(upload.signing_identity(&mine), &mine);
        upload.identity = Some((mine.clone(), 1));
        assert!(!upload.takes_over(&mine), "the same identity is a refill");
        upload.identity = Some((other.clone(), 1));
        assert!(upload.takes_over(&mine));
        assert_eq!(upload.signing_identity(&mine), &other);
        assert_eq!(upload.check_signed_prekey_id([1, 6]), Ok(()));
        assert_eq!(upload.check_signed_prekey_id([]), Ok(()));
        assert_eq!(
            upload.check_signed_prekey_id([7, 3]),
            Err(UploadRejection::SignedPreKeyIdNotIncreasing { new: 7, current: 7 })
        );
    }

    /// Goal: the backup slot goes to an upload that expects the committed
    /// version and finds no fresh upload in progress; a stale one is
    /// replaced; a device without a row reserves version 1 only when it
    /// expects 0.
    #[test]
    fn the_backup_slot_goes_to_the_expected_version_unless_busy() {
        let token = uuid::Uuid::new_v4();
        let pending = |started_at_ms| PendingBackup {
            version: 3,
            token,
            started_at_ms,
        };
        let row = BackupRow {
            current_version: 2,
            current_token: None,
            pending: Some(pending(100)),
        };
        assert_eq!(row.reservation(1, 50), Reservation::VersionMismatch);
        assert_eq!(row.reservation(2, 50), Reservation::InProgress, "fresh");
        let stale = row.reservation(2, 100);
        assert_eq!(
            stale,
            Reservation::Reserved {
                version: 3,
                replaced: Some(pending(100))
            }
        );
        assert_eq!(
            reserved_upload(&stale, token, 7),
            Some(PendingBackup {
                version: 3,
                token,
                started_at_ms: 7
            })
        );
        assert_eq!(
            BackupRow::EMPTY.reservation(0, 0),
            Reservation::Reserved {
                version: 1,
                replaced: None
            }
        );
        assert_eq!(BackupRow::EMPTY.reservation(1, 0), Reservation::VersionMismatch);
        assert_eq!(reserved_upload(&Reservation::InProgress, token, 7), None);
    }
}

//! [`Devices`] on ScyllaDB. A device is its `devices` row, a row under its
//! user in `user_devices`, its prekeys and its device-scoped refresh token.
//! Creation writes them in one logged batch, then takes a slot under the
//! device limit with a conditional batch on the user's partition (its
//! static `version` is the compare-and-set counter), and removes them again
//! if the limit is reached. Creation needs the account to exist at the
//! generation of the device's refresh token, checked before and again after
//! the slot is taken (an account deleted meanwhile removes the new device
//! again). Deletion first logs its revocations and marks the device a
//! deleted sender (its queued messages vanish from every read at once),
//! raises the account's user-scope generation (a lightweight transaction),
//! removes the device row, frees its slot, then everything it owns.
//! Reads of a device or of a user's devices check the account's deletion
//! marker. A send checks its targets in this process's device cache; a
//! deletion through another node drops the device from it when its event
//! arrives ([`Inner::forget_device`]), and while such events may be missed
//! the cache is not used ([`super::caches::DeviceCache`]).

use std::collections::HashMap;

use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::account_rows::{generation_to_cql, now_ms, Account};
use super::caches::{lock, KnownDevice};
use super::cql::{corrupt, part, Part};
use super::refresh::{refresh_parts, remove_token_parts};
use super::statements::Stmt;
use super::time_index::DELETED_SENDERS;
use super::{Inner, ScyllaStore};
use crate::crypto::public_key::PublicKey;
use crate::limits;
use crate::store::{DeviceDeletion, DeviceRecord, Devices, NewDevice, StoreError, StoreFuture};
use crate::util::time::{now_micros, now_secs};

/// A `devices` row as read.
type DeviceRow = (
    Uuid,
    Option<Uuid>,
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i32>,
    Option<String>,
);

/// A device with its push token.
#[derive(Debug, Clone)]
pub(super) struct LoadedDevice {
    pub record: DeviceRecord,
    pub push_token: Option<String>,
}

/// The device of a row; `None` for a partial row (a push token written
/// while the device was being deleted).
fn from_row(row: DeviceRow) -> Result<Option<LoadedDevice>, StoreError> {
    let (id, user_id, name, created, key, registration_id, push_token) = row;
    let (Some(user_id), Some(created_at_micros), Some(key), Some(registration_id)) =
        (user_id, created, key, registration_id)
    else {
        return Ok(None);
    };
    let identity_key = PublicKey::from_bytes(&key).map_err(|e| corrupt("devices", e.to_string()))?;
    Ok(Some(LoadedDevice {
        record: DeviceRecord {
            id,
            user_id,
            name,
            created_at_micros,
            identity_key,
            registration_id,
        },
        push_token,
    }))
}

/// A device's row.
pub(super) fn device_part(d: &DeviceRecord) -> Part {
    let key = d.identity_key.0.to_vec();
    let values = (
        d.id,
        d.user_id,
        d.name.clone(),
        d.created_at_micros,
        key,
        d.registration_id,
    );
    part(Stmt::InsertDevice, values)
}

/// The rows a new device writes (device, prekeys, refresh token), but not
/// its slot under the user.
pub(super) fn device_parts(s: &Inner, new: &NewDevice) -> Vec<Part> {
    let d = &new.device;
    let ts = now_micros();
    let mut parts = vec![device_part(d)];
    let spk = &new.signed_prekey;
    parts.push(part(
        Stmt::InsertSignedPreKey,
        (
            d.id,
            spk.key_id,
            spk.public_key.0.to_vec(),
            spk.signature.0.to_vec(),
            ts,
        ),
    ));
    for k in &new.one_time_prekeys {
        let order = super::positions::to_cql(s.positions.next());
        parts.push(part(
            Stmt::InsertOneTimePreKey,
            (d.id, k.key_id, k.public_key.0.to_vec(), order, ts),
        ));
    }
    parts.extend(refresh_parts(&new.refresh, now_secs(), false));
    parts
}

impl Inner {
    /// One device, with its push token.
    pub(super) async fn load_device(&self, id: Uuid) -> Result<Option<LoadedDevice>, StoreError> {
        match self.cql.first::<DeviceRow>(Stmt::SelectDevice, (id,)).await? {
            Some(row) => from_row(row),
            None => Ok(None),
        }
    }

    /// Which of `ids` exist, from the cache (while it is trusted) or one
    /// read for the rest.
    pub(super) async fn known_devices(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, KnownDevice>, StoreError> {
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        let start = self.caches.devices.read_start();
        {
            let mut cache = lock(&self.caches.devices.map);
            for id in ids {
                match cache.get(id).filter(|_| start.is_some()) {
                    Some(device) => drop(known.insert(*id, device)),
                    None if !missing.contains(id) => missing.push(*id),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(known);
        }
        let rows: Vec<DeviceRow> = self.cql.rows(Stmt::SelectDevices, (missing,)).await?;
        let mut cache = lock(&self.caches.devices.map);
        let fill = self.caches.devices.may_fill(start);
        for row in rows {
            if let Some(loaded) = from_row(row)? {
                let device = KnownDevice {
                    has_token: loaded.push_token.is_some(),
                };
                if fill {
                    cache.insert(loaded.record.id, device);
                }
                known.insert(loaded.record.id, device);
            }
        }
        Ok(known)
    }

    /// A device deleted through another node: hidden and refused as a
    /// target from now on, and dropped from the cache.
    pub(super) fn forget_device(&self, id: Uuid) {
        lock(&self.deleted).insert(id);
        self.caches.devices.forget(&id);
    }

    /// One device of a live account, with its push token: none when the
    /// device or its account was deleted.
    pub(super) async fn live_device(&self, id: Uuid) -> Result<Option<LoadedDevice>, StoreError> {
        if self.is_deleted_sender(&id) {
            return Ok(None);
        }
        let Some(device) = self.load_device(id).await? else {
            return Ok(None);
        };
        Ok(self.account_lives(device.record.user_id).await?.then_some(device))
    }

    /// The ids of a user's devices and the slot counter.
    pub(super) async fn slots(&self, user: Uuid) -> Result<(Vec<Uuid>, Option<i32>), StoreError> {
        let rows: Vec<(Option<Uuid>, Option<i32>)> = self.cql.rows(Stmt::SelectUserDevices, (user,)).await?;
        let version = rows.first().and_then(|(_, v)| *v);
        Ok((rows.into_iter().filter_map(|(d, _)| d).collect(), version))
    }

    /// A live user's devices, oldest first.
    pub(super) async fn devices_of(&self, user: Uuid) -> Result<Vec<DeviceRecord>, StoreError> {
        let (slots, lives) = tokio::join!(self.slots(user), self.account_lives(user));
        let (ids, _) = slots?;
        if ids.is_empty() || !lives? {
            return Ok(Vec::new());
        }
        let rows: Vec<DeviceRow> = self.cql.rows(Stmt::SelectDevices, (ids,)).await?;
        let mut devices = Vec::with_capacity(rows.len());
        for row in rows {
            devices.extend(from_row(row)?.map(|d| d.record).filter(|d| d.user_id == user));
        }
        devices.sort_by_key(|d| (d.created_at_micros, d.id));
        Ok(devices)
    }

    /// Changes a user's slots with a conditional batch on its partition,
    /// retried while other changes race it; `change` returns the statement
    /// to add, or `None` to stop with `Ok(false)`.
    async fn change_slots(
        &self,
        user: Uuid,
        change: impl Fn(&[Uuid]) -> Result<Option<Part>, StoreError>,
    ) -> Result<bool, StoreError> {
        for _ in 0..limits::SCYLLA_CAS_ATTEMPTS_MAX {
            let (ids, version) = self.slots(user).await?;
            let Some(row) = change(&ids)? else {
                return Ok(false);
            };
            let next = version.unwrap_or(0) + 1;
            let bump = part(Stmt::BumpDeviceVersion, (next, user, version));
            if self.cql.batch_lwt(vec![bump, row]).await?.0 {
                return Ok(true);
            }
        }
        Err(super::cql::backend(Contended("user_devices")))
    }

    async fn create_device(&self, new: NewDevice, max: usize) -> Result<(), StoreError> {
        let (user, id, generation) = (new.device.user_id, new.device.id, new.refresh.generation);
        if !self.account_holds(user, generation).await? {
            return Err(StoreError::AccountChanged);
        }
        let mut parts = device_parts(self, &new);
        parts.push(self.refresh_index(&new.refresh).await?);
        self.cql.batch(BatchType::Logged, parts).await?;
        let claimed = self
            .change_slots(user, |ids| {
                if ids.len() >= max {
                    return Err(StoreError::DeviceLimit(max));
                }
                Ok(Some(part(Stmt::InsertUserDevice, (user, id))))
            })
            .await;
        if let Err(refused) = claimed {
            self.remove_new_device(&new).await?;
            return Err(refused);
        }
        if self.account_holds(user, generation).await? {
            return Ok(());
        }
        // The account was deleted (or its password changed) meanwhile.
        self.change_slots(user, |_| Ok(Some(part(Stmt::DeleteUserDevice, (user, id)))))
            .await?;
        self.remove_new_device(&new).await?;
        Err(StoreError::AccountChanged)
    }

    /// Removes what a device creation wrote before it was refused.
    pub(super) async fn remove_new_device(&self, new: &NewDevice) -> Result<(), StoreError> {
        let (id, ts) = (new.device.id, now_micros());
        let mut parts = vec![
            part(Stmt::DeleteDevice, (id,)),
            part(Stmt::DeleteSignedPreKeys, (ts, id)),
            part(Stmt::DeleteOneTimePreKeys, (ts, id)),
        ];
        parts.extend(remove_token_parts(&new.refresh));
        self.cql.batch(BatchType::Logged, parts).await.map(drop)
    }

    async fn resolve(&self, ids: Vec<Uuid>) -> Result<Vec<Option<Uuid>>, StoreError> {
        let known = self.known_devices(&ids).await?;
        let mut resolved = Vec::with_capacity(ids.len());
        for id in ids {
            if known.contains_key(&id) {
                resolved.push(Some(id));
            } else {
                resolved.push(self.devices_of(id).await?.first().map(|d| d.id));
            }
        }
        Ok(resolved)
    }

    async fn rename(&self, user: Uuid, id: Uuid, name: Option<String>) -> Result<Option<DeviceRecord>, StoreError> {
        let Some(mut device) = self.load_device(id).await?.filter(|d| d.record.user_id == user) else {
            return Ok(None);
        };
        self.cql.exec(Stmt::UpdateDeviceName, (name.clone(), id)).await?;
        device.record.name = name;
        Ok(Some(device.record))
    }

    async fn delete_device(&self, user: Uuid, id: Uuid) -> Result<Option<DeviceDeletion>, StoreError> {
        let Some(device) = self.load_device(id).await?.filter(|d| d.record.user_id == user) else {
            return Ok(None);
        };
        let Some(account) = self.account(user).await?.filter(|a| a.deleted_at_ms.is_none()) else {
            return Ok(None);
        };
        let deletion = DeviceDeletion {
            user_scope_generation: account.user_scope().saturating_add(1),
            at_ms: now_ms(),
        };
        let now = deletion.at_ms.div_euclid(1000);
        let alive = now.saturating_add(self.options.ttl_secs);
        let mut findable = vec![
            self.indexes
                .part(&self.cql, DELETED_SENDERS, now, id.as_bytes().to_vec(), alive)
                .await?,
        ];
        for revocation in deletion.revocations(user, id) {
            findable.push(self.revocation_part(revocation).await?);
        }
        self.cql.batch(BatchType::Unlogged, findable).await?;
        lock(&self.deleted).insert(id);
        // Raised while the device still exists: should it fail, a retry of
        // the deletion finds the device and raises it again.
        self.raise_user_scope(account, deletion.user_scope_generation).await?;
        self.cql.exec(Stmt::DeleteDevice, (id,)).await?;
        self.caches.devices.forget(&id);
        self.change_slots(user, |_| Ok(Some(part(Stmt::DeleteUserDevice, (user, id)))))
            .await?;
        self.wipe_device(id, device.push_token).await?;
        Ok(Some(deletion))
    }

    /// Raises the account's user-scope generation to at least `to` (while
    /// the account lives), retried while other changes race it.
    async fn raise_user_scope(&self, mut account: Account, to: u32) -> Result<(), StoreError> {
        for _ in 0..limits::SCYLLA_CAS_ATTEMPTS_MAX {
            if account.deleted_at_ms.is_some() || account.user_scope() >= to {
                return Ok(());
            }
            let id = account.id;
            let values = (
                generation_to_cql(to),
                id,
                account.stored_user_scope,
                account.username.clone(),
            );
            if self.cql.applied(Stmt::RaiseUserScope, values).await? {
                return Ok(());
            }
            match self.account(id).await? {
                Some(next) => account = next,
                None => return Ok(()),
            }
        }
        Err(super::cql::backend(Contended("users")))
    }

    /// Everything a deleted device owned but its row and slot.
    pub(super) async fn wipe_device(&self, id: Uuid, push_token: Option<String>) -> Result<(), StoreError> {
        let ts = now_micros();
        let keys = self.cql.batch(
            BatchType::Unlogged,
            vec![
                part(Stmt::DeleteSignedPreKeys, (ts, id)),
                part(Stmt::DeleteOneTimePreKeys, (ts, id)),
            ],
        );
        let (keys, mailbox, push, backup, refresh) = tokio::join!(
            keys,
            self.wipe_mailbox(id),
            self.wipe_push(id, push_token),
            self.wipe_backup(id),
            self.wipe_device_refresh(id),
        );
        keys?;
        mailbox?;
        push?;
        backup?;
        refresh?;
        self.appends.forget(id);
        Ok(())
    }
}

/// A compare-and-set lost too many races in a row.
#[derive(Debug, thiserror::Error)]
#[error("too many concurrent changes of one {0} row; try again")]
pub(super) struct Contended(pub &'static str);

impl Devices for ScyllaStore {
    fn create_device(&self, new: NewDevice, max_devices: usize) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.create_device(new, max_devices).await })
    }

    fn device(&self, id: Uuid) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.call(move |s| async move { Ok(s.live_device(id).await?.map(|d| d.record)) })
    }

    fn devices_of(&self, user_id: Uuid) -> StoreFuture<'_, Vec<DeviceRecord>> {
        self.call(move |s| async move { s.devices_of(user_id).await })
    }

    fn resolve_targets(&self, ids: Vec<Uuid>) -> StoreFuture<'_, Vec<Option<Uuid>>> {
        self.call(move |s| async move { s.resolve(ids).await })
    }

    fn rename_device(&self, user_id: Uuid, id: Uuid, name: Option<String>) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.call(move |s| async move { s.rename(user_id, id, name).await })
    }

    fn delete_device(&self, user_id: Uuid, id: Uuid) -> StoreFuture<'_, Option<DeviceDeletion>> {
        self.call(move |s| async move { s.delete_device(user_id, id).await })
    }

    fn forget_device(&self, id: Uuid) {
        self.inner.forget_device(id);
    }

    fn forget_cached_device(&self, id: Uuid) {
        self.inner.caches.forget_device(id);
    }

    fn trust_device_cache(&self, trusted: bool) {
        self.inner.caches.trust(trusted);
    }
}

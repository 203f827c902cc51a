//! [`Devices`] on fjall. A device is its row, an index row under
//! its user, its prekeys and its device-scoped refresh tokens; creation
//! writes all of them in one batch (if its account still exists at the
//! generation its token was issued at) and deletion removes all of them
//! (and the device's mailbox, push token and backup row) in one batch,
//! which also marks the device as a deleted sender (see
//! [`super::mailboxes`]), raises the account's user-scope generation and
//! logs the deletion's revocations. An account deletion wipes each of its devices
//! the same way ([`wipe_device`]) inside its own batch.

use prost::Message;
use uuid::Uuid;

use super::backups::wipe_backup;
use super::group_commit::Writer;
use super::layout::{device_key, pair};
use super::mailboxes::wipe_mailbox;
use super::push::wipe_push;
use super::records::{decode, uuid, DeviceValue, OneTimePreKeyValue, RefreshValue, SignedPreKeyValue};
use super::refresh::{insert_refresh, remove_token};
use super::revocations::log_revocation;
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{DeviceDeletion, DeviceRecord, Devices, NewDevice, StoreError, StoreFuture};
use crate::util::time::now_millis;

pub(super) fn load_device(t: &Tables, id: Uuid) -> Result<Option<DeviceRecord>, StoreError> {
    Tables::get(&t.devices, id.as_bytes())?
        .map(|v| decode::<DeviceValue>("devices", &v)?.into_record(id))
        .transpose()
}

/// The ids of a user's devices, in id order.
pub(super) fn device_ids_of(t: &Tables, user: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Tables::keys_with_prefix(&t.user_devices, user.as_bytes())?
        .iter()
        .map(|k| uuid("user_devices", k.get(16..).unwrap_or_default()))
        .collect()
}

/// A user's devices, oldest first.
fn devices_of(t: &Tables, user: Uuid) -> Result<Vec<DeviceRecord>, StoreError> {
    let mut devices = Vec::new();
    for id in device_ids_of(t, user)? {
        devices.extend(load_device(t, id)?);
    }
    devices.sort_by_key(|d| (d.created_at_micros, d.id));
    Ok(devices)
}

fn resolve_target(t: &Tables, id: Uuid) -> Result<Option<Uuid>, StoreError> {
    if t.devices.contains_key(id.as_bytes()).map_err(backend)? {
        return Ok(Some(id));
    }
    Ok(devices_of(t, id)?.first().map(|d| d.id))
}

fn create(t: &Tables, new: NewDevice, max_devices: usize) -> Result<(), StoreError> {
    t.check_account(new.device.user_id, new.refresh.generation)?;
    if device_ids_of(t, new.device.user_id)?.len() >= max_devices {
        return Err(StoreError::DeviceLimit(max_devices));
    }
    let mut batch = t.db.batch();
    insert_device(t, &mut batch, &new);
    batch.commit().map_err(backend)
}

/// Adds a new device's rows (device, user index, prekeys, refresh token) to
/// `batch`.
pub(super) fn insert_device(t: &Tables, batch: &mut fjall::OwnedWriteBatch, new: &NewDevice) {
    let device = &new.device;
    batch.insert(
        &t.devices,
        device.id.as_bytes().to_vec(),
        DeviceValue::from_record(device).encode_to_vec(),
    );
    batch.insert(
        &t.user_devices,
        pair(device.user_id.as_bytes(), device.id.as_bytes()),
        Vec::new(),
    );
    let spk = &new.signed_prekey;
    batch.insert(
        &t.signed_prekeys,
        device_key(device.id, spk.key_id),
        SignedPreKeyValue::from_record(spk).encode_to_vec(),
    );
    let first_seq = t.next_seqs(batch, new.one_time_prekeys.len() as u64);
    for (i, otpk) in new.one_time_prekeys.iter().enumerate() {
        let value = OneTimePreKeyValue::from_record(otpk, first_seq + i as u64);
        batch.insert(
            &t.one_time_prekeys,
            device_key(device.id, otpk.key_id),
            value.encode_to_vec(),
        );
    }
    insert_refresh(t, batch, &new.refresh);
}

/// Adds the removal of device `id` of `user` and of everything it owns
/// (keys, mailbox, push token and job, backup row, refresh tokens) to
/// `batch`, and marks it as a deleted sender deleted at `deleted_at`; call
/// [`forget_deleted_device`] after the commit.
pub(super) fn wipe_device(
    t: &Tables,
    batch: &mut fjall::OwnedWriteBatch,
    user: Uuid,
    id: Uuid,
    deleted_at: i64,
) -> Result<(), StoreError> {
    batch.remove(&t.devices, id.as_bytes().to_vec());
    batch.remove(&t.user_devices, pair(user.as_bytes(), id.as_bytes()));
    for key in Tables::keys_with_prefix(&t.signed_prekeys, id.as_bytes())? {
        batch.remove(&t.signed_prekeys, key);
    }
    for key in Tables::keys_with_prefix(&t.one_time_prekeys, id.as_bytes())? {
        batch.remove(&t.one_time_prekeys, key);
    }
    wipe_mailbox(t, batch, id)?;
    t.mark_deleted_sender(batch, id, deleted_at);
    wipe_push(t, batch, id)?;
    wipe_backup(t, batch, id);
    for key in Tables::keys_with_prefix(&t.device_refresh, id.as_bytes())? {
        let hash = key.get(16..).unwrap_or_default();
        if let Some(v) = Tables::get(&t.refresh_tokens, hash)? {
            remove_token(t, batch, hash, &decode::<RefreshValue>("refresh_tokens", &v)?);
        }
        batch.remove(&t.device_refresh, key);
    }
    Ok(())
}

/// After a [`wipe_device`] committed: hides the device's sent messages and
/// drops it from the writer's mailbox index.
pub(super) fn forget_deleted_device(w: &mut Writer, id: Uuid, deleted_at: i64) {
    w.tables.remember_deleted_sender(id, deleted_at);
    w.mailboxes.forget(id);
}

fn delete(w: &mut Writer, user: Uuid, id: Uuid) -> Result<Option<DeviceDeletion>, StoreError> {
    let t = w.tables.clone();
    let owned = load_device(&t, id)?.is_some_and(|d| d.user_id == user);
    let Some(mut account) = t.user(user)?.filter(|_| owned) else {
        return Ok(None);
    };
    account.user_scope_generation = account.user_scope_generation.saturating_add(1);
    let deletion = DeviceDeletion {
        user_scope_generation: account.user_scope_generation,
        at_ms: i64::try_from(now_millis()).unwrap_or(i64::MAX),
    };
    let deleted_at = deletion.at_ms.div_euclid(1000);
    let mut batch = t.db.batch();
    wipe_device(&t, &mut batch, user, id, deleted_at)?;
    t.put_user(&mut batch, &account);
    for revocation in deletion.revocations(user, id) {
        log_revocation(&t, &mut batch, &revocation);
    }
    batch.commit().map_err(backend)?;
    forget_deleted_device(w, id, deleted_at);
    Ok(Some(deletion))
}

fn rename(t: &Tables, user: Uuid, id: Uuid, name: Option<String>) -> Result<Option<DeviceRecord>, StoreError> {
    let Some(mut device) = load_device(t, id)?.filter(|d| d.user_id == user) else {
        return Ok(None);
    };
    device.name = name;
    let mut batch = t.db.batch();
    batch.insert(
        &t.devices,
        id.as_bytes().to_vec(),
        DeviceValue::from_record(&device).encode_to_vec(),
    );
    batch.commit().map_err(backend)?;
    Ok(Some(device))
}

impl Devices for EmbeddedStore {
    fn create_device(&self, new: NewDevice, max_devices: usize) -> StoreFuture<'_, ()> {
        self.write(move |w| {
            let id = new.device.id;
            create(w, new, max_devices)?;
            w.mailboxes.forget(id);
            Ok(())
        })
    }

    fn device(&self, id: Uuid) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.read(move |t| load_device(t, id))
    }

    fn devices_of(&self, user_id: Uuid) -> StoreFuture<'_, Vec<DeviceRecord>> {
        self.read(move |t| devices_of(t, user_id))
    }

    fn resolve_targets(&self, ids: Vec<Uuid>) -> StoreFuture<'_, Vec<Option<Uuid>>> {
        self.read(move |t| ids.into_iter().map(|id| resolve_target(t, id)).collect())
    }

    fn rename_device(&self, user_id: Uuid, id: Uuid, name: Option<String>) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.write(move |t| rename(t, user_id, id, name))
    }

    fn delete_device(&self, user_id: Uuid, id: Uuid) -> StoreFuture<'_, Option<DeviceDeletion>> {
        self.write(move |w| delete(w, user_id, id))
    }

    /// Every write goes through this process's one writer, which sees a
    /// deletion at once: there is nothing to forget.
    fn forget_device(&self, _id: Uuid) {}

    /// Nothing is cached that another process could make stale.
    fn forget_cached_device(&self, _id: Uuid) {}

    /// Nothing is cached that another process could make stale.
    fn trust_device_cache(&self, _trusted: bool) {}
}

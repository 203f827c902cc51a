//! [`Accounts`] on fjall: a user row plus a `usernames` index row, written
//! in one batch after checking the index on the writer thread (with the
//! user's first device in the same batch for a legacy registration).

use super::devices::insert_device;
use super::records::{decode, UserValue};
use super::refresh::insert_refresh;
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Accounts, NewDevice, RefreshRecord, StoreError, StoreFuture, UserRecord};
use prost::Message;

/// Checks that the username is free and adds the user's rows to `batch`.
fn insert_user(t: &Tables, batch: &mut fjall::OwnedWriteBatch, user: &UserRecord) -> Result<(), StoreError> {
    if t.usernames.contains_key(user.username.as_bytes()).map_err(backend)? {
        return Err(StoreError::UsernameTaken);
    }
    batch.insert(
        &t.users,
        user.id.as_bytes().to_vec(),
        UserValue::from_record(user).encode_to_vec(),
    );
    batch.insert(
        &t.usernames,
        user.username.as_bytes().to_vec(),
        user.id.as_bytes().to_vec(),
    );
    Ok(())
}

impl Accounts for EmbeddedStore {
    fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            insert_user(t, &mut batch, &user)?;
            insert_refresh(t, &mut batch, &refresh);
            batch.commit().map_err(backend)
        })
    }

    fn create_user_with_device(&self, user: UserRecord, device: NewDevice) -> StoreFuture<'_, ()> {
        self.write(move |w| {
            let mut batch = w.db.batch();
            insert_user(w, &mut batch, &user)?;
            insert_device(w, &mut batch, &device);
            batch.commit().map_err(backend)?;
            w.mailboxes.forget(device.device.id);
            Ok(())
        })
    }

    fn user_by_name(&self, username: &str) -> StoreFuture<'_, Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |t| {
            let Some(id) = Tables::get(&t.usernames, username.as_bytes())? else {
                return Ok(None);
            };
            let Some(value) = Tables::get(&t.users, &id)? else {
                return Ok(None);
            };
            let id = super::records::uuid("usernames", &id)?;
            Ok(Some(decode::<UserValue>("users", &value)?.into_record(id)))
        })
    }
}

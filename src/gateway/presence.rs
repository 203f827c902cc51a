//! Presence: which sessions a device has open, as its owner shard keeps it
//! (the shard of `placement::device_owner(device)`), so that every event of
//! the device reaches each of them wherever its socket is.

use std::collections::HashMap;

use uuid::Uuid;

use crate::shard::ShardId;

/// One open session, as its device's owner knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// The shard holding the socket.
    pub shard: ShardId,
    /// The session's id on that shard.
    pub id: u64,
}

/// The open sessions of the devices one shard owns.
#[derive(Default)]
pub struct Presence {
    devices: HashMap<Uuid, Vec<SessionRef>>,
}

impl Presence {
    /// Records a session of `device`.
    pub fn join(&mut self, device: Uuid, session: SessionRef) {
        self.devices.entry(device).or_default().push(session);
    }

    /// Forgets a session of `device`.
    pub fn leave(&mut self, device: Uuid, session: SessionRef) {
        if let Some(sessions) = self.devices.get_mut(&device) {
            sessions.retain(|s| *s != session);
            if sessions.is_empty() {
                self.devices.remove(&device);
            }
        }
    }

    /// The sessions of `device`.
    pub fn sessions(&self, device: &Uuid) -> &[SessionRef] {
        self.devices.get(device).map_or(&[], Vec::as_slice)
    }
}

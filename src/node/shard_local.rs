//! [`ShardLocal`]: one shard's own state, touched only on its thread
//! (`!Send`): the shared [`App`], the shard's gateway [`Hub`] and the
//! [`EventBus`] that every device event goes through, the message
//! targets this shard has seen stored ([`KnownDevices`]), and its cached
//! view of the recent token revocations ([`RevocationView`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::app::App;
use super::known_devices::KnownDevices;
use super::revocations::RevocationView;
use crate::auth::tokens::Principal;
use crate::gateway::events::EventBus;
use crate::gateway::hub::Hub;
use crate::limits;
use crate::metrics::Counter;
use crate::shard::shutdown::Shutdown;
use crate::shard::ShardId;

/// See the module documentation.
pub struct ShardLocal {
    /// The shared state.
    pub app: Arc<App>,
    /// This shard's gateway: presence of the devices it owns, sessions of
    /// the sockets it holds.
    pub hub: Rc<Hub>,
    /// Where device events go (messages arrived, prekeys low, disconnect).
    pub events: Rc<dyn EventBus>,
    /// Message targets this shard has seen stored: no legacy resolution.
    pub known_devices: RefCell<KnownDevices>,
    /// This shard's copy of the recent revocations.
    revocations: RevocationView,
}

impl ShardLocal {
    /// A shard's state before it serves.
    pub fn new(app: Arc<App>, hub: Rc<Hub>, events: Rc<dyn EventBus>) -> Self {
        Self {
            app,
            hub,
            events,
            known_devices: RefCell::new(KnownDevices::new(limits::KNOWN_DEVICES_MAX)),
            revocations: RevocationView::default(),
        }
    }

    /// This shard.
    pub fn me(&self) -> ShardId {
        self.hub.me()
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.hub.shards()
    }

    /// This shard's shutdown signal.
    pub fn shutdown(&self) -> &Shutdown {
        &self.hub.shutdown
    }

    /// Whether the access token (or ticket) that named `principal` is
    /// still accepted: since it was issued, its account was not deleted
    /// nor its password changed, its device (if it names one) was not
    /// deleted, and — if it is user-scoped — no device of the account was
    /// deleted (no store read).
    pub fn admits(&self, principal: &Principal) -> bool {
        self.revocations.admits(&self.app.revocations, principal)
    }

    /// Adds `n` to a counter of this shard.
    pub fn count(&self, counter: Counter, n: usize) {
        self.hub.count(counter, n);
    }
}

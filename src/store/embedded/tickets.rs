//! [`Tickets`] of the embedded store: kept in memory, not on disk. A ticket
//! lives 30 seconds and only this process can redeem it, so losing tickets
//! in a restart costs a client one retry and saves a journal write per
//! connection. Consumption takes the entry out under the lock: of two racing
//! handshakes, one wins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::EmbeddedStore;
use crate::limits;
use crate::store::{StoreFuture, TicketHolder, Tickets};

/// The ticket table.
#[derive(Default)]
pub struct TicketTable {
    tickets: Mutex<HashMap<Uuid, (TicketHolder, Instant)>>,
}

impl TicketTable {
    fn insert(&self, ticket: Uuid, holder: TicketHolder, ttl: Duration) {
        let now = Instant::now();
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        if tickets.len() >= limits::TICKETS_SWEEP_AT_COUNT {
            tickets.retain(|_, (_, expires)| *expires > now);
        }
        tickets.insert(ticket, (holder, now + ttl));
    }

    fn take(&self, ticket: &Uuid) -> Option<TicketHolder> {
        let entry = self.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(ticket);
        entry
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(holder, _)| holder)
    }
}

impl Tickets for EmbeddedStore {
    fn create_ticket(&self, ticket: Uuid, holder: TicketHolder, ttl_secs: u64) -> StoreFuture<'_, ()> {
        self.tickets.insert(ticket, holder, Duration::from_secs(ttl_secs));
        Box::pin(async { Ok(()) })
    }

    fn consume_ticket(&self, ticket: Uuid) -> StoreFuture<'_, Option<TicketHolder>> {
        let holder = self.tickets.take(&ticket);
        Box::pin(async move { Ok(holder) })
    }
}

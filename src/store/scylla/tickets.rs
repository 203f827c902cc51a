//! [`Tickets`] on ScyllaDB: a row per ticket with its expiry (and a TTL to
//! collect it); consuming it is a conditional delete (`IF EXISTS`), so of
//! two racing handshakes, on any nodes, exactly one gets the device.

use uuid::Uuid;

use super::statements::Stmt;
use super::{Inner, ScyllaStore};
use crate::store::{StoreError, StoreFuture, Tickets};
use crate::util::time::now_millis;

impl Inner {
    async fn consume_ticket(&self, ticket: Uuid) -> Result<Option<Uuid>, StoreError> {
        let row = self
            .cql
            .first::<(Option<Uuid>, Option<i64>)>(Stmt::SelectTicket, (ticket,))
            .await?;
        let Some((Some(device), Some(expires_ms))) = row else {
            return Ok(None);
        };
        if !self.cql.applied(Stmt::ClaimTicket, (ticket,)).await? {
            return Ok(None);
        }
        let now = i64::try_from(now_millis()).unwrap_or(i64::MAX);
        Ok((expires_ms > now).then_some(device))
    }
}

impl Tickets for ScyllaStore {
    fn create_ticket(&self, ticket: Uuid, device: Uuid, ttl_secs: u64) -> StoreFuture<'_, ()> {
        let ttl_ms = i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_ms = i64::try_from(now_millis()).unwrap_or(i64::MAX).saturating_add(ttl_ms);
        // The row's own TTL only collects it; at least 1 s (0 means none).
        let ttl = i32::try_from(ttl_secs.saturating_add(60)).unwrap_or(i32::MAX);
        self.call(move |s| async move {
            s.cql
                .exec(Stmt::InsertTicket, (ticket, device, expires_ms, ttl))
                .await
                .map(drop)
        })
    }

    fn consume_ticket(&self, ticket: Uuid) -> StoreFuture<'_, Option<Uuid>> {
        self.call(move |s| async move { s.consume_ticket(ticket).await })
    }
}

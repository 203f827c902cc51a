//! [`Tickets`] on ScyllaDB: a row per ticket with its holder (device,
//! account, token generation) and expiry (and a TTL to collect it);
//! consuming it is a conditional delete (`IF EXISTS`), so of two racing
//! handshakes, on any nodes, exactly one gets it. A ticket written by a
//! schema-1 binary names no account and is refused.

use uuid::Uuid;

use super::account_rows::{generation_from_cql, generation_to_cql};
use super::statements::Stmt;
use super::{Inner, ScyllaStore};
use crate::store::{StoreError, StoreFuture, TicketHolder, Tickets};
use crate::util::time::now_millis;

/// A ticket row as read.
type TicketRow = (Option<Uuid>, Option<i64>, Option<Uuid>, Option<i32>);

impl Inner {
    async fn consume_ticket(&self, ticket: Uuid) -> Result<Option<TicketHolder>, StoreError> {
        let row = self.cql.first::<TicketRow>(Stmt::SelectTicket, (ticket,)).await?;
        let Some((Some(device_id), Some(expires_ms), user_id, generation)) = row else {
            return Ok(None);
        };
        if !self.cql.applied(Stmt::ClaimTicket, (ticket,)).await? {
            return Ok(None);
        }
        let now = i64::try_from(now_millis()).unwrap_or(i64::MAX);
        Ok(user_id.filter(|_| expires_ms > now).map(|user_id| TicketHolder {
            device_id,
            user_id,
            generation: generation_from_cql(generation),
        }))
    }
}

impl Tickets for ScyllaStore {
    fn create_ticket(&self, ticket: Uuid, holder: TicketHolder, ttl_secs: u64) -> StoreFuture<'_, ()> {
        let ttl_ms = i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_ms = i64::try_from(now_millis()).unwrap_or(i64::MAX).saturating_add(ttl_ms);
        // The row's own TTL only collects it; at least 1 s (0 means none).
        let ttl = i32::try_from(ttl_secs.saturating_add(60)).unwrap_or(i32::MAX);
        self.call(move |s| async move {
            s.cql
                .exec(
                    Stmt::InsertTicket,
                    (
                        ticket,
                        holder.device_id,
                        expires_ms,
                        holder.user_id,
                        generation_to_cql(holder.generation),
                        ttl,
                    ),
                )
                .await
                .map(drop)
        })
    }

    fn consume_ticket(&self, ticket: Uuid) -> StoreFuture<'_, Option<TicketHolder>> {
        self.call(move |s| async move { s.consume_ticket(ticket).await })
    }
}

//! This relay's node tag: the 8 bits of every mailbox position it hands out
//! that no other relay of the deployment holds at the same time
//! ([`super::positions`]), so two relays appending to one mailbox in one
//! millisecond never take the same position (the second row would overwrite
//! the first).
//!
//! A tag is claimed at start with a lightweight transaction on `node_tags`
//! (`IF NOT EXISTS`, with a TTL), from a random starting tag so that relays
//! starting together rarely contend, and renewed every
//! `SCYLLA_NODE_TAG_RENEW_SECS` (`IF holder = ?`). A renewal that finds the
//! tag held by another relay (this one was cut off for longer than the TTL)
//! claims a new tag and switches the position generator to it; a renewal
//! that fails is retried at the next tick ([`super::upkeep`]). At most 256 relays share one
//! keyspace.

use uuid::Uuid;

use super::cql::Cql;
use super::statements::Stmt;
use super::Inner;
use crate::limits;
use crate::store::StoreError;

/// Why no node tag could be had.
#[derive(Debug, thiserror::Error)]
#[error("every one of the 256 node tags of this keyspace is held by a running relay")]
pub struct NoFreeTag;

fn ttl() -> i32 {
    i32::try_from(limits::SCYLLA_NODE_TAG_TTL_SECS).unwrap_or(i32::MAX)
}

/// Claims a free tag for `holder`.
pub(super) async fn claim(cql: &Cql, holder: Uuid) -> Result<u8, StoreError> {
    let mut start = [0u8; 1];
    let _ = getrandom::fill(&mut start);
    for offset in 0..=u8::MAX {
        let tag = start[0].wrapping_add(offset);
        let claimed = cql
            .applied_or_unknown(Stmt::ClaimNodeTag, (i32::from(tag), holder, ttl()))
            .await?;
        if claimed == Some(true) {
            return Ok(tag);
        }
    }
    Err(StoreError::Backend(Box::new(NoFreeTag)))
}

/// Renews this relay's tag once; claims and switches to a new one if
/// another relay holds it now.
pub(super) async fn renew(inner: &Inner) -> Result<(), StoreError> {
    let tag = inner.positions.tag();
    let renewed = inner
        .cql
        .applied_or_unknown(Stmt::RenewNodeTag, (ttl(), inner.node, i32::from(tag), inner.node))
        .await?;
    if renewed == Some(false) {
        let new = claim(&inner.cql, inner.node).await?;
        tracing::warn!(
            old = tag,
            new,
            "this relay's node tag was taken over; switched to a new one"
        );
        inner.positions.set_tag(new);
    }
    Ok(())
}

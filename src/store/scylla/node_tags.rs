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
//!
//! **Fencing.** A tag is this relay's only while its last *confirmed* claim
//! or renewal lasts ([`TagLease`]): a renewal that failed or whose outcome
//! is unknown confirms nothing. The lease runs on the monotonic clock, which
//! keeps counting while the process is paused (SIGSTOP, a VM freeze), so a
//! relay that comes back from a pause longer than the lease knows it. An
//! append takes positions only while the lease outlasts the append's writes
//! (two request timeouts), and checks again before each write step, so a
//! position taken before a pause is never written after the tag could have
//! moved to another relay ([`Inner::fence`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::cql::Cql;
use super::statements::Stmt;
use super::Inner;
use crate::store::StoreError;

/// Why no node tag could be had.
#[derive(Debug, thiserror::Error)]
#[error("every one of the 256 node tags of this keyspace is held by a running relay")]
pub struct NoFreeTag;

/// Why an append was refused: this relay cannot be sure it still holds the
/// node tag of its positions until the append's writes are done.
#[derive(Debug, thiserror::Error)]
#[error("this relay's node tag lease is not confirmed for long enough to write (renewals failing, or the process was paused)")]
pub struct TagNotHeld;

/// How long this relay holds which tag, as far as the database confirmed:
/// the tag and the end of its lease (ms on this process's monotonic clock),
/// one atomic word.
#[derive(Debug)]
pub(super) struct TagLease {
    origin: Instant,
    /// `held_until_ms << 8 | tag`.
    state: AtomicU64,
    ttl: Duration,
    /// Held by the one renewal running.
    renewing: tokio::sync::Mutex<()>,
}

impl TagLease {
    /// Tags live `ttl` in the database.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            origin: Instant::now(),
            state: AtomicU64::new(0),
            ttl,
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// The tag's time to live, as CQL takes it.
    fn ttl_secs(&self) -> i32 {
        i32::try_from(self.ttl.as_secs()).unwrap_or(i32::MAX).max(1)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX >> 8)
    }

    /// A claim or renewal of `tag` sent at `sent` was applied: the database
    /// keeps it at least `ttl` from then, less an eighth for the clocks'
    /// rates.
    pub(super) fn confirmed(&self, tag: u8, sent: Instant) {
        let kept = u64::try_from((self.ttl - self.ttl / 8).as_millis()).unwrap_or(u64::MAX >> 8);
        let until = self.millis(sent).saturating_add(kept).min(u64::MAX >> 8);
        self.state.store((until << 8) | u64::from(tag), Ordering::Release);
    }

    /// Whether `tag` is this relay's for at least `work` from now.
    pub(super) fn holds(&self, tag: u8, work: Duration) -> bool {
        let state = self.state.load(Ordering::Acquire);
        let until = state >> 8;
        state & 0xff == u64::from(tag) && self.millis(Instant::now() + work) < until
    }
}

/// Claims a free tag for `holder`, confirming it in `lease`.
pub(super) async fn claim(cql: &Cql, holder: Uuid, lease: &TagLease) -> Result<u8, StoreError> {
    let mut start = [0u8; 1];
    let _ = getrandom::fill(&mut start);
    for offset in 0..=u8::MAX {
        let tag = start[0].wrapping_add(offset);
        let sent = Instant::now();
        let claimed = cql
            .applied_or_unknown(Stmt::ClaimNodeTag, (i32::from(tag), holder, lease.ttl_secs()))
            .await?;
        if claimed == Some(true) {
            lease.confirmed(tag, sent);
            return Ok(tag);
        }
    }
    Err(StoreError::Backend(Box::new(NoFreeTag)))
}

/// Renews this relay's tag once; claims and switches to a new one if
/// another relay holds it now. Only an applied renewal extends the lease.
/// Renewals run one at a time (the upkeep's and an append's that found the
/// lease short), so the lease and the positions always name one tag.
pub(super) async fn renew(inner: &Inner) -> Result<(), StoreError> {
    let _one = inner.tag_lease.renewing.lock().await;
    renew_alone(inner).await
}

async fn renew_alone(inner: &Inner) -> Result<(), StoreError> {
    let tag = inner.positions.tag();
    let sent = Instant::now();
    let renewed = inner
        .cql
        .applied_or_unknown(
            Stmt::RenewNodeTag,
            (inner.tag_lease.ttl_secs(), inner.node, i32::from(tag), inner.node),
        )
        .await?;
    match renewed {
        Some(true) => inner.tag_lease.confirmed(tag, sent),
        Some(false) => {
            let new = claim(&inner.cql, inner.node, &inner.tag_lease).await?;
            tracing::warn!(
                old = tag,
                new,
                "this relay's node tag was taken over; switched to a new one"
            );
            inner.positions.set_tag(new);
        }
        None => tracing::warn!(tag, "renewing the node tag timed out; its lease is not extended"),
    }
    Ok(())
}

impl Inner {
    /// The time an append's writes may take: two write steps, each bounded
    /// by the request timeout.
    pub(super) fn write_budget(&self) -> Duration {
        self.options.request_timeout.saturating_mul(2)
    }

    /// Fails unless positions with node tag `tag` can still be written
    /// within `work` before the tag could pass to another relay.
    pub(super) fn fence(&self, tag: u8, work: Duration) -> Result<(), StoreError> {
        if self.tag_lease.holds(tag, work) {
            return Ok(());
        }
        Err(StoreError::Backend(Box::new(TagNotHeld)))
    }

    /// Before positions are taken: the current tag is held long enough for
    /// a whole append, renewing it first if it is not (unless a renewal
    /// that ran meanwhile did).
    pub(super) async fn fence_before_positions(&self) -> Result<(), StoreError> {
        if self.tag_lease.holds(self.positions.tag(), self.write_budget()) {
            return Ok(());
        }
        let one = self.tag_lease.renewing.lock().await;
        if !self.tag_lease.holds(self.positions.tag(), self.write_budget()) {
            renew_alone(self).await?;
        }
        drop(one);
        self.fence(self.positions.tag(), self.write_budget())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a lease holds its tag from a confirmation for its time to live
    /// less an eighth, for that tag only, and work that would outlast it is
    /// refused; once that time passed (a pause), nothing is held.
    #[test]
    fn a_lease_holds_only_its_tag_and_only_while_confirmed() {
        let lease = TagLease::new(Duration::from_millis(800));
        assert!(!lease.holds(0, Duration::ZERO), "nothing confirmed yet");
        lease.confirmed(3, Instant::now());
        assert!(lease.holds(3, Duration::from_millis(600)));
        assert!(
            !lease.holds(3, Duration::from_millis(720)),
            "past 800 ms less an eighth"
        );
        assert!(!lease.holds(4, Duration::ZERO), "another tag");
        std::thread::sleep(Duration::from_millis(700));
        assert!(!lease.holds(3, Duration::ZERO), "confirmed too long ago: a pause");
    }
}

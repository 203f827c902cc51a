//! Mailbox positions (`seq`) on ScyllaDB, and the arithmetic around them.
//!
//! A position is `milliseconds << 20 | node tag << 12 | counter`: it orders
//! by time, this process hands out increasing positions ([`SeqGenerator`]),
//! and the mailbox bucket (the partition) derives from it, so a message id
//! (which carries the position, [`crate::store::message_ids`]) names its
//! row. Positions copied from an embedded store are small counters: they
//! sort before every new one and live in bucket 0.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits;
use crate::util::time::now_millis;

/// Bits below the milliseconds: the node tag and the counter.
const TIME_SHIFT: u32 = 20;
/// Bits of the per-millisecond counter.
const COUNTER_BITS: u32 = 12;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
/// The node tag's mask (8 bits).
const TAG_MASK: u64 = 0xff;

/// The mailbox bucket (partition) of a position.
pub fn bucket_of(seq: u64) -> i64 {
    i64::try_from((seq >> TIME_SHIFT) / limits::SCYLLA_MAILBOX_BUCKET_MS).unwrap_or(i64::MAX)
}

/// The first position of a bucket.
pub fn bucket_start(bucket: i64) -> u64 {
    u64::try_from(bucket)
        .unwrap_or(0)
        .saturating_mul(limits::SCYLLA_MAILBOX_BUCKET_MS)
        .saturating_mul(1 << TIME_SHIFT)
}

/// The bucket that positions made at `millis` fall in.
pub fn bucket_at_millis(millis: u64) -> i64 {
    i64::try_from(millis / limits::SCYLLA_MAILBOX_BUCKET_MS).unwrap_or(i64::MAX)
}

/// The node tag of a position.
pub fn tag_of(seq: u64) -> u8 {
    u8::try_from((seq >> COUNTER_BITS) & TAG_MASK).unwrap_or(0)
}

/// A position as CQL stores it (bigint).
pub fn to_cql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The positions that `millis` milliseconds span.
pub fn span_of_millis(millis: u64) -> u64 {
    millis.saturating_mul(1 << TIME_SHIFT)
}

/// A stored position.
pub fn from_cql(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// Hands out increasing positions. Shared by the process; lock-free.
#[derive(Debug)]
pub struct SeqGenerator {
    last: AtomicU64,
    /// The node tag this process holds ([`super::node_tags`]).
    tag: AtomicU64,
}

impl SeqGenerator {
    /// A generator for this process, which holds node tag `tag`.
    pub fn new(tag: u8) -> Self {
        Self {
            last: AtomicU64::new(0),
            tag: AtomicU64::new(u64::from(tag)),
        }
    }

    /// The node tag in the positions handed out from now on.
    pub fn tag(&self) -> u8 {
        u8::try_from(self.tag.load(Ordering::Acquire) & TAG_MASK).unwrap_or(0)
    }

    /// Hands out positions with node tag `tag` from now on (the process
    /// lost its old one), each from a fresh counter.
    pub fn set_tag(&self, tag: u8) {
        self.tag.store(u64::from(tag), Ordering::Release);
    }

    /// The next position: after every one handed out before, and at least
    /// the current time's.
    pub fn next(&self) -> u64 {
        let tag = self.tag.load(Ordering::Acquire) & TAG_MASK;
        let base = (now_millis() << TIME_SHIFT) | (tag << COUNTER_BITS);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = if base > last { base } else { bump(last, tag) };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// A bound below every position not handed out yet: past the last one
    /// handed out, and at least the current time's (a process that has not
    /// handed out any yet still reads what others wrote before now).
    pub fn horizon(&self) -> u64 {
        let now = now_millis() << TIME_SHIFT;
        self.last.load(Ordering::Acquire).saturating_add(1).max(now)
    }
}

/// One past `last` with node tag `tag`; a full counter, or a tag that
/// changed, moves on to the next millisecond.
fn bump(last: u64, tag: u64) -> u64 {
    if last & COUNTER_MASK == COUNTER_MASK || (last >> COUNTER_BITS) & TAG_MASK != tag {
        (((last >> TIME_SHIFT) + 1) << TIME_SHIFT) | (tag << COUNTER_BITS)
    } else {
        last + 1
    }
}

/// A TTL for a row that matters until `expires_at_secs`: the rest of its
/// life plus a day, clamped (TTLs only collect garbage; reads check expiry).
pub fn ttl_until(expires_at_secs: i64, now_secs: i64) -> i32 {
    let left = expires_at_secs.saturating_sub(now_secs).max(0);
    let ttl = left
        .saturating_add(limits::SCYLLA_TTL_GRACE_SECS)
        .min(limits::SCYLLA_TTL_MAX_SECS);
    i32::try_from(ttl).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: positions increase, carry the time, stay in i64 and in the 62
    /// bits a message id carries; their bucket is the hour they were made.
    #[test]
    fn positions_increase_and_carry_their_bucket() {
        let generator = SeqGenerator::new(1);
        let before = now_millis();
        assert!(
            generator.horizon() >= before << TIME_SHIFT,
            "a process that handed out nothing yet reads up to now"
        );
        let mut last = 0;
        for _ in 0..10_000 {
            let seq = generator.next();
            assert!(seq > last);
            assert!(seq < 1 << 62);
            last = seq;
        }
        assert!(bucket_of(last) >= bucket_at_millis(before));
        assert!(generator.horizon() > last);
        assert!(bucket_start(bucket_of(last)) <= last);
        assert_eq!(bucket_of(5), 0, "copied positions live in bucket 0");
    }

    /// Goal: a full counter carries into the next millisecond, never into
    /// the node tag.
    #[test]
    fn a_full_counter_moves_to_the_next_millisecond() {
        let tag = 0xa5;
        let full = (7 << TIME_SHIFT) | (tag << COUNTER_BITS) | COUNTER_MASK;
        let next = bump(full, tag);
        assert_eq!(next >> TIME_SHIFT, 8);
        assert_eq!((next >> COUNTER_BITS) & TAG_MASK, tag);
    }

    /// Goal: after a tag change no position reuses the old tag's counter
    /// space: the next one is in a later millisecond, with the new tag.
    #[test]
    fn a_new_tag_starts_a_fresh_counter() {
        let generator = SeqGenerator::new(3);
        let old = generator.next();
        generator.set_tag(9);
        let new = generator.next();
        assert!(new > old);
        assert_eq!(generator.tag(), 9);
        assert_eq!((new >> COUNTER_BITS) & TAG_MASK, 9);
        assert_eq!(new & COUNTER_MASK, 0, "a fresh counter under the new tag");
    }

    #[test]
    fn ttls_are_clamped() {
        assert_eq!(ttl_until(0, 100) as i64, limits::SCYLLA_TTL_GRACE_SECS);
        assert_eq!(ttl_until(i64::MAX, 0) as i64, limits::SCYLLA_TTL_MAX_SECS);
    }
}

//! Placement: which shard owns a piece of state. This is the only place the
//! owner hash lives. A device is owned by `hash(device_id) % shards`. The
//! hash is fixed (not randomly seeded) so placement is the same in every
//! process with the same shard count.

use uuid::Uuid;

use super::ShardId;

/// Mixes 64 bits so that ids differing in few bits spread over shards
/// (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fold(bytes: &[u8; 16]) -> u64 {
    let (hi, lo) = bytes.split_at(8);
    let hi = u64::from_le_bytes(hi.try_into().unwrap_or_default());
    let lo = u64::from_le_bytes(lo.try_into().unwrap_or_default());
    mix(hi ^ mix(lo))
}

fn pick(hash: u64, shards: usize) -> ShardId {
    debug_assert!(shards > 0);
    (hash % shards.max(1) as u64) as ShardId
}

/// The shard that owns a device.
pub fn device_owner(device_id: Uuid, shards: usize) -> ShardId {
    pick(fold(device_id.as_bytes()), shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_spread_over_shards() {
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[device_owner(Uuid::now_v7(), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn placement_is_stable() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(device_owner(id, 7), device_owner(id, 7));
        assert_eq!(device_owner(id, 1), 0);
    }
}

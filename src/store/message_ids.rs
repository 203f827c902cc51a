//! Message ids as clients see them, shared by every backend: a UUID v7
//! whose timestamp is the receive time and whose 62 random bits carry the
//! message's mailbox position, so an ack names its row without an index
//! (and a copied mailbox keeps its ids, see [`super::copy`]).

use uuid::Uuid;

/// The message id clients see for mailbox position `seq`: a UUID v7 whose
/// timestamp is the receive time and whose 62 random bits carry `seq`, so an
/// ack names its mailbox row without an index.
pub fn message_id(created_at_ms: u64, seq: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&created_at_ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80 | ((seq >> 56) & 0x3f) as u8;
    b[9..].copy_from_slice(&seq.to_be_bytes()[1..]);
    Uuid::from_bytes(b)
}

/// The mailbox position a message id carries (see [`message_id`]).
pub fn seq_of_message_id(id: &[u8; 16]) -> u64 {
    let mut seq = [0u8; 8];
    seq[0] = id[8] & 0x3f;
    seq[1..].copy_from_slice(&id[9..]);
    u64::from_be_bytes(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_v7_and_carry_their_seq() {
        for seq in [1u64, 255, 1 << 40, (1 << 62) - 1] {
            let id = message_id(1_700_000_000_123, seq);
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(seq_of_message_id(id.as_bytes()), seq);
        }
        assert!(message_id(5, 1) < message_id(5, 2));
    }
}

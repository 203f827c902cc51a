//! Every name the relay nodes of a deployment share in Redis: the pub/sub
//! channels ([`Channel`]) and the keys of the short leases nodes take
//! ([`send_lease`], [`job_lease`]). Nothing else in the crate spells one;
//! each name is what nodes used before this module, so old and new nodes
//! meet on them during a rolling deploy.

use uuid::Uuid;

const DEVICE_PREFIX: &str = "obscura:device:";
const REVOCATIONS: &str = "obscura:revocations";
const NODE_PREFIX: &str = "obscura:node:";
const RESYNC: &str = "obscura:resync";
const DEVICE_CHANGES: &str = "obscura:device-changes";

/// A pub/sub channel. Each carries one kind of [`super::NodeMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `obscura:device:<uuid>`: news of one device. A node listens while it
    /// holds sockets of the device.
    Device(Uuid),
    /// `obscura:revocations`: token revocations. Every node listens.
    Revocations,
    /// `obscura:node:<id as 16 hex digits>`: the answers one node waits
    /// for. That node listens.
    Node(u64),
    /// `obscura:resync`: a node lost publishes. Every node listens.
    Resync,
    /// `obscura:device-changes`: a device changed in a way other nodes may
    /// have cached. Every node listens.
    DeviceChanges,
}

impl Channel {
    /// The channels node `node` listens on for its whole life.
    pub fn node_wide(node: u64) -> [Channel; 4] {
        [
            Channel::Revocations,
            Channel::Node(node),
            Channel::Resync,
            Channel::DeviceChanges,
        ]
    }

    /// The channel's name in Redis.
    pub fn name(&self) -> Vec<u8> {
        match self {
            Channel::Device(device) => format!("{DEVICE_PREFIX}{device}").into_bytes(),
            Channel::Revocations => REVOCATIONS.as_bytes().to_vec(),
            Channel::Node(node) => format!("{NODE_PREFIX}{node:016x}").into_bytes(),
            Channel::Resync => RESYNC.as_bytes().to_vec(),
            Channel::DeviceChanges => DEVICE_CHANGES.as_bytes().to_vec(),
        }
    }

    /// The channel a Redis name is; `None` for a name no node uses.
    pub fn parse(name: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(name).ok()?;
        if let Some(device) = text.strip_prefix(DEVICE_PREFIX) {
            return Uuid::parse_str(device).ok().map(Channel::Device);
        }
        if let Some(node) = text.strip_prefix(NODE_PREFIX) {
            let hex = node.len() == 16 && node.bytes().all(|b| b.is_ascii_hexdigit());
            return hex
                .then(|| u64::from_str_radix(node, 16).ok())
                .flatten()
                .map(Channel::Node);
        }
        match text {
            REVOCATIONS => Some(Channel::Revocations),
            RESYNC => Some(Channel::Resync),
            DEVICE_CHANGES => Some(Channel::DeviceChanges),
            _ => None,
        }
    }
}

/// The lease a send takes on (sending device, `Idempotency-Key`), so a
/// repeat through another node waits for the first try's answer.
pub fn send_lease(device: Uuid, key: Uuid) -> String {
    format!("obscura:send:{device}:{key}")
}

/// The lease of periodic job `job`, so one node of the deployment runs it
/// per period.
pub fn job_lease(job: &str) -> String {
    format!("obscura:job:{job}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every channel reads back as itself, the names are the ones
    /// nodes used before this module (rolling deploys), and a name no node
    /// uses is refused.
    #[test]
    fn channels_round_trip_under_their_old_names() {
        let device = Uuid::now_v7();
        let channels = [
            Channel::Device(device),
            Channel::Revocations,
            Channel::Node(0xab),
            Channel::Resync,
            Channel::DeviceChanges,
        ];
        for channel in channels {
            assert_eq!(Channel::parse(&channel.name()), Some(channel));
        }
        assert_eq!(
            Channel::Device(device).name(),
            format!("obscura:device:{device}").into_bytes()
        );
        assert_eq!(Channel::Node(0xab).name(), b"obscura:node:00000000000000ab");
        assert_eq!(Channel::Revocations.name(), b"obscura:revocations");
        assert_eq!(Channel::Resync.name(), b"obscura:resync");
        for bad in [
            &b"obscura:device:nope"[..],
            b"obscura:node:ab",
            b"obscura:node:+000000000000000",
            b"obscura:other",
            b"\xff",
        ] {
            assert_eq!(Channel::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(send_lease(device, device), format!("obscura:send:{device}:{device}"));
        assert_eq!(job_lease("sweep"), "obscura:job:sweep");
    }
}

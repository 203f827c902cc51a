//! A device's news as it crosses between relay nodes
//! ([`crate::proto::cluster::DeviceNews`]): what the [`super::cluster_bus`]
//! publishes for an event or for new messages, and what the node hands
//! back to the gateway when news arrives ([`Fanout::try_from`]). Both
//! directions match every [`DeviceEvent`] and every [`DeviceSignal`], so a
//! new kind that is not mapped here does not compile.

use bytes::Bytes;
use uuid::Uuid;

use super::events::{Arrival, DeviceEvent};
use super::hub::Fanout;
use crate::proto::cluster::{Arrival as WireArrival, DeviceNews, DeviceSignal};
use crate::store::StoredMessage;

/// Why news from another node was not handed on.
#[derive(Debug, thiserror::Error)]
pub enum BadNews {
    /// A signal this node does not know (from a newer node).
    #[error("unknown device signal {0}")]
    UnknownSignal(i32),
    /// An id that is not 16 bytes.
    #[error("an id that is not 16 bytes")]
    BadId,
}

/// The news of `event`, from node `origin`.
pub fn event_news(origin: u64, event: DeviceEvent) -> DeviceNews {
    let signal = match event {
        // Raised without the messages: the other nodes read the store.
        DeviceEvent::MessagesArrived => {
            return stale_news(origin);
        }
        DeviceEvent::PreKeysLow => DeviceSignal::PrekeysLow,
        DeviceEvent::Disconnect => DeviceSignal::Disconnect,
    };
    DeviceNews {
        origin,
        signal: signal as i32,
        ..DeviceNews::default()
    }
}

/// New messages that are not carried: the sessions read the store.
pub fn stale_news(origin: u64) -> DeviceNews {
    DeviceNews {
        origin,
        stale: true,
        ..DeviceNews::default()
    }
}

/// New messages, carried, in commit order.
pub fn arrivals_news(origin: u64, arrivals: Vec<WireArrival>) -> DeviceNews {
    DeviceNews {
        origin,
        arrivals,
        ..DeviceNews::default()
    }
}

impl From<&Arrival> for WireArrival {
    fn from(a: &Arrival) -> Self {
        let m = &a.message;
        Self {
            seq: m.seq,
            id: Bytes::copy_from_slice(m.id.as_bytes()),
            sender_user: Bytes::copy_from_slice(m.sender_user.as_bytes()),
            sender_device: Bytes::copy_from_slice(m.sender_device.as_bytes()),
            payload: m.payload.clone(),
            created_at_ms: m.created_at_ms,
            prev: a.prev,
            expires_at_secs: a.expires_at_secs,
        }
    }
}

impl TryFrom<WireArrival> for Arrival {
    type Error = BadNews;

    fn try_from(a: WireArrival) -> Result<Self, BadNews> {
        let id = |bytes: &[u8]| Uuid::from_slice(bytes).map_err(|_| BadNews::BadId);
        Ok(Arrival {
            message: StoredMessage {
                seq: a.seq,
                id: id(&a.id)?,
                sender_user: id(&a.sender_user)?,
                sender_device: id(&a.sender_device)?,
                payload: a.payload,
                created_at_ms: a.created_at_ms,
            },
            prev: a.prev,
            expires_at_secs: a.expires_at_secs,
        })
    }
}

impl TryFrom<DeviceNews> for Fanout {
    type Error = BadNews;

    /// What the device's sessions on this node are handed.
    fn try_from(news: DeviceNews) -> Result<Self, BadNews> {
        if news.stale {
            return Ok(Fanout::Stale);
        }
        let signal = DeviceSignal::try_from(news.signal).map_err(|_| BadNews::UnknownSignal(news.signal))?;
        Ok(match signal {
            DeviceSignal::Arrivals => Fanout::Arrivals(
                news.arrivals
                    .into_iter()
                    .map(Arrival::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            DeviceSignal::PrekeysLow => Fanout::Event(DeviceEvent::PreKeysLow),
            DeviceSignal::Disconnect => Fanout::Event(DeviceEvent::Disconnect),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an arrival survives the trip through the wire format, every
    /// event reaches the other side as the same fanout, and malformed news
    /// is refused, never half-read.
    #[test]
    fn news_round_trips() {
        let arrival = Arrival {
            message: StoredMessage {
                seq: 7,
                id: Uuid::now_v7(),
                sender_user: Uuid::now_v7(),
                sender_device: Uuid::now_v7(),
                payload: Bytes::from_static(b"ciphertext"),
                created_at_ms: 5,
            },
            prev: Some(3),
            expires_at_secs: 99,
        };
        let news = arrivals_news(1, vec![(&arrival).into()]);
        let Ok(Fanout::Arrivals(back)) = Fanout::try_from(news) else {
            panic!("not arrivals");
        };
        assert_eq!(back[0].message, arrival.message);
        assert_eq!((back[0].prev, back[0].expires_at_secs), (Some(3), 99));
        for (event, expected) in [
            (DeviceEvent::MessagesArrived, "Stale"),
            (DeviceEvent::PreKeysLow, "Event(PreKeysLow)"),
            (DeviceEvent::Disconnect, "Event(Disconnect)"),
        ] {
            let fanout = Fanout::try_from(event_news(1, event)).unwrap();
            assert_eq!(format!("{fanout:?}"), expected);
        }
        let bad = arrivals_news(1, vec![WireArrival::default()]);
        assert!(matches!(Fanout::try_from(bad), Err(BadNews::BadId)));
        let newer = DeviceNews {
            signal: 8,
            ..DeviceNews::default()
        };
        assert!(matches!(Fanout::try_from(newer), Err(BadNews::UnknownSignal(8))));
    }
}

//! Repeats of one `Idempotency-Key` across relay nodes. On one node the
//! store makes a repeat that arrives while the first send is in flight
//! wait for the first's answer; with several nodes a repeat can land on
//! another node, so a send first takes a lease on its key in Redis
//! ([`send_lease`], [`crate::pubsub::Link::claim`]), and a
//! repeat that finds it taken waits until it is given up (the first send's
//! answer is stored by then, and the repeat gets it from the store) — at
//! most the standard request timeout, after which it goes on: the store's
//! deduplication still keeps its messages from being queued twice.
//! Redis keeps this lease rather than the store because it is held for the
//! length of one request and needs no lightweight transaction.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::app::App;
use crate::limits;
use crate::proto::cluster::send_lease;
use crate::pubsub::{Lease, Link};

/// A held lease; given up when dropped.
pub struct SendClaim {
    held: Option<(Link, Lease)>,
}

impl Drop for SendClaim {
    fn drop(&mut self) {
        if let Some((link, lease)) = self.held.take() {
            link.release(lease);
        }
    }
}

impl App {
    /// Takes the lease of (sending `device`, `key`), waiting while another
    /// node holds it; a node alone holds nothing (its store serializes
    /// repeats).
    pub async fn claim_send(&self, device: Uuid, key: Uuid) -> SendClaim {
        let Some(link) = &self.pubsub else {
            return SendClaim { held: None };
        };
        let name = send_lease(device, key);
        let timeout = self.config.request_timeout();
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            match link.claim(name.clone(), timeout).await {
                Ok(Some(lease)) => {
                    return SendClaim {
                        held: Some((link.clone(), lease)),
                    }
                }
                Ok(None) => monoio::time::sleep(Duration::from_millis(limits::SEND_CLAIM_RETRY_MS)).await,
                // Without Redis, the store's deduplication alone must do.
                Err(_) => break,
            }
        }
        SendClaim { held: None }
    }
}

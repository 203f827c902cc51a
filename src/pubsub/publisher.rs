//! The publishing task: one multiplexed connection that sends the queued
//! publishes in pipelines of up to [`limits::PUBSUB_PIPELINE_MAX`] (one
//! round trip each), and lends itself to [`super::Link::claim`] and
//! `PING`. When a pipeline fails, its publishes are lost: the connection is
//! rebuilt after a backoff, and once it is back this node publishes on the
//! resync channel. An idle connection is pinged every
//! [`limits::PUBSUB_KEEPALIVE_MS`], so a Redis restart is noticed (and the
//! commands that share the connection get a fresh one) without waiting
//! for a publish to fail.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::Shared;
use crate::limits;
use crate::proto::cluster::NodeMessage;

/// Runs until every [`super::Link`] is dropped.
pub(crate) async fn run(
    client: redis::Client,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
    mut backoff: Backoff,
) {
    loop {
        let mut connection = match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "pub/sub publisher cannot connect; retrying");
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        };
        backoff.reset();
        set_up(&shared, Some(connection.clone()));
        tracing::info!("pub/sub publisher connected");
        let open = publish_until_failure(&mut connection, &shared, &mut queue).await;
        set_up(&shared, None);
        if !open {
            return;
        }
        shared.lost.store(true, Ordering::Release);
        tracing::warn!("pub/sub publisher lost its connection; reconnecting");
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

fn set_up(shared: &Shared, connection: Option<MultiplexedConnection>) {
    shared.publisher_up.store(connection.is_some(), Ordering::Release);
    *shared.commands.lock().unwrap_or_else(|p| p.into_inner()) = connection;
}

/// Sends pipelines until one fails (`true`) or the queue closes (`false`).
async fn publish_until_failure(
    connection: &mut MultiplexedConnection,
    shared: &Shared,
    queue: &mut mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
) -> bool {
    let mut batch = Vec::with_capacity(limits::PUBSUB_PIPELINE_MAX);
    loop {
        if shared.lost.swap(false, Ordering::AcqRel) {
            batch.push(NodeMessage::Resync { origin: shared.node }.encode());
        }
        if batch.is_empty() {
            let keepalive = std::time::Duration::from_millis(limits::PUBSUB_KEEPALIVE_MS);
            tokio::select! {
                n = queue.recv_many(&mut batch, limits::PUBSUB_PIPELINE_MAX) => if n == 0 {
                    return false;
                },
                _ = tokio::time::sleep(keepalive) => {
                    if let Err(e) = redis::cmd("PING").query_async::<String>(&mut *connection).await {
                        tracing::warn!(error = %e, "pub/sub keepalive failed");
                        return true;
                    }
                    continue;
                }
            }
        }
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(connection).await {
            tracing::warn!(error = %e, "publishing failed");
            return true;
        }
    }
}

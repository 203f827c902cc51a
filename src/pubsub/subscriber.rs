//! The subscribing task: one dedicated connection listening on the node's
//! own channels (the resync channel among them) and every channel subscribed through
//! [`super::Link`]. It keeps the set of channels itself, so a reconnect
//! subscribes them all again. It calls [`super::Deliver::lost`] before the
//! first connection and whenever one fails, and
//! [`super::Deliver::resync`] after every connection (the first too: what
//! was decided before it is unknown), since messages sent while it was
//! down are gone. While it is down, subscription changes only update the
//! set and are confirmed at once.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::{Control, Deliver, Shared};

/// Runs until every [`super::Link`] is dropped.
pub(crate) async fn run(
    client: redis::Client,
    shared: Arc<Shared>,
    mut channels: HashSet<Vec<u8>>,
    mut control: mpsc::UnboundedReceiver<Control>,
    deliver: Arc<dyn Deliver>,
    mut backoff: Backoff,
) {
    deliver.lost();
    loop {
        let Some((mut sink, mut stream)) = connect(&client, &channels).await else {
            if !wait_down(&mut control, &mut channels, &mut backoff).await {
                return;
            }
            continue;
        };
        backoff.reset();
        shared.subscriber_up.store(true, Ordering::Release);
        tracing::info!(channels = channels.len(), "pub/sub subscriber connected");
        deliver.resync();
        let open = listen(&mut sink, &mut stream, &mut control, &mut channels, deliver.as_ref()).await;
        shared.subscriber_up.store(false, Ordering::Release);
        deliver.lost();
        if !open {
            return;
        }
        tracing::warn!("pub/sub subscriber lost its connection; reconnecting");
        if !wait_down(&mut control, &mut channels, &mut backoff).await {
            return;
        }
    }
}

/// A new connection listening on `channels`.
async fn connect(client: &redis::Client, channels: &HashSet<Vec<u8>>) -> Option<(PubSubSink, PubSubStream)> {
    let pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "pub/sub subscriber cannot connect; retrying");
            return None;
        }
    };
    let (mut sink, stream) = pubsub.split();
    let all: Vec<&[u8]> = channels.iter().map(Vec::as_slice).collect();
    match sink.subscribe(all).await {
        Ok(()) => Some((sink, stream)),
        Err(e) => {
            tracing::warn!(error = %e, "pub/sub subscribe failed; retrying");
            None
        }
    }
}

/// Waits one backoff while keeping up with subscription changes; `false`
/// once the links are all gone.
async fn wait_down(
    control: &mut mpsc::UnboundedReceiver<Control>,
    channels: &mut HashSet<Vec<u8>>,
    backoff: &mut Backoff,
) -> bool {
    let sleep = tokio::time::sleep(backoff.next_wait());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            change = control.recv() => match change {
                Some(change) => record(change, channels),
                None => return false,
            },
        }
    }
}

/// Applies a change to the set only, confirming a subscription at once.
fn record(change: Control, channels: &mut HashSet<Vec<u8>>) {
    match change {
        Control::Subscribe(channel, done) => {
            channels.insert(channel);
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        Control::Unsubscribe(channel) => {
            channels.remove(&channel);
        }
    }
}

/// Forwards messages and applies subscription changes until the
/// connection fails (`true`) or the links are all gone (`false`).
async fn listen(
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    control: &mut mpsc::UnboundedReceiver<Control>,
    channels: &mut HashSet<Vec<u8>>,
    deliver: &dyn Deliver,
) -> bool {
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => deliver.message(message.get_channel_name().as_bytes(), message.get_payload_bytes()),
                None => return true,
            },
            change = control.recv() => match change {
                Some(change) => {
                    if apply(change, sink, channels).await.is_err() {
                        return true;
                    }
                }
                None => return false,
            },
        }
    }
}

/// Applies a change on the connection and to the set.
async fn apply(change: Control, sink: &mut PubSubSink, channels: &mut HashSet<Vec<u8>>) -> redis::RedisResult<()> {
    let result = match &change {
        Control::Subscribe(channel, _) if !channels.contains(channel) => sink.subscribe(channel.as_slice()).await,
        Control::Unsubscribe(channel) if channels.contains(channel) => sink.unsubscribe(channel.as_slice()).await,
        _ => Ok(()),
    };
    record(change, channels);
    result
}

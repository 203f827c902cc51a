//! Back-pressure on bounded queues: a sender that finds a queue full keeps
//! its item and offers it again after [`limits::QUEUE_FULL_RETRY_US`],
//! never dropping it and never blocking a shard ([`offer_until_taken`]);
//! threads that are not shards wait the same way, asleep
//! ([`offer_until_taken_blocking`]). Every bounded queue between threads
//! (the mesh, the store's channels, the worker pools) goes through here.

use std::time::Duration;

use crate::limits;

/// What offering an item to a queue did.
pub enum Offer<T> {
    /// The queue took it.
    Taken,
    /// The queue is full: the item comes back.
    Full(T),
    /// Nobody takes items from the queue any more.
    Closed,
}

/// The queue's receivers are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is closed")]
pub struct QueueClosed;

fn retry_wait() -> Duration {
    Duration::from_micros(limits::QUEUE_FULL_RETRY_US)
}

/// Offers `item` through `offer` until the queue takes it, waiting
/// (asynchronously) while it is full.
pub async fn offer_until_taken<T>(mut item: T, mut offer: impl FnMut(T) -> Offer<T>) -> Result<(), QueueClosed> {
    loop {
        match offer(item) {
            Offer::Taken => return Ok(()),
            Offer::Full(back) => item = back,
            Offer::Closed => return Err(QueueClosed),
        }
        monoio::time::sleep(retry_wait()).await;
    }
}

/// [`offer_until_taken`] for a thread that is not a shard: it sleeps.
pub fn offer_until_taken_blocking<T>(mut item: T, mut offer: impl FnMut(T) -> Offer<T>) -> Result<(), QueueClosed> {
    loop {
        match offer(item) {
            Offer::Taken => return Ok(()),
            Offer::Full(back) => item = back,
            Offer::Closed => return Err(QueueClosed),
        }
        std::thread::sleep(retry_wait());
    }
}

impl<T> From<Result<(), crossbeam_channel::TrySendError<T>>> for Offer<T> {
    fn from(sent: Result<(), crossbeam_channel::TrySendError<T>>) -> Self {
        match sent {
            Ok(()) => Offer::Taken,
            Err(crossbeam_channel::TrySendError::Full(item)) => Offer::Full(item),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Offer::Closed,
        }
    }
}

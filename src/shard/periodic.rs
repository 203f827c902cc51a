//! [`every`]: how a background job runs on a shard — now, then once a
//! period, until the shard shuts down. A job that outlasts its period runs
//! again right after; the wait starts when it ends.

use std::future::Future;
use std::time::Duration;

use super::shutdown::Shutdown;

/// Runs `job` now and then every `period` until `shutdown` starts.
pub async fn every<F, Fut>(period: Duration, shutdown: Shutdown, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        job().await;
        monoio::select! {
            _ = monoio::time::sleep(period) => {},
            _ = shutdown.wait() => return,
        }
    }
}

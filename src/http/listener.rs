//! The accept loop of one shard's listener: accepts until shutdown, caps open
//! connections per shard (further accepts wait for one to close), and runs
//! each connection as a local task.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;

use super::connection;
use super::{HttpLimits, Service};
use crate::limits;
use crate::shard::shutdown::Shutdown;

/// Counts a connection as open while alive.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where and how one listener serves.
pub struct Serving<S> {
    /// Answers requests.
    pub service: Rc<S>,
    /// HTTP bounds.
    pub limits: Rc<HttpLimits>,
    /// The shard's shutdown signal.
    pub shutdown: Shutdown,
    /// Open connections of this listener (read by metrics and the drain).
    pub open: Arc<AtomicUsize>,
    /// Open connections allowed at once.
    pub open_max: usize,
}

/// Accepts connections until shutdown starts.
pub async fn accept_loop<S: Service>(listener: TcpListener, serving: Serving<S>) {
    loop {
        while serving.open.load(Ordering::Relaxed) >= serving.open_max {
            if serving.shutdown.is_started() {
                return;
            }
            monoio::time::sleep(Duration::from_millis(limits::ACCEPT_AT_CAP_RETRY_MS)).await;
        }
        let accepted = monoio::select! {
            accepted = listener.accept() => accepted,
            _ = serving.shutdown.wait() => return,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(limits::ACCEPT_ERROR_RETRY_MS)).await;
                continue;
            }
        };
        serving.open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(serving.open.clone());
        let (service, limits, shutdown) = (
            serving.service.clone(),
            serving.limits.clone(),
            serving.shutdown.clone(),
        );
        monoio::spawn(async move {
            if let Some(upgraded) = connection::serve(stream, peer, service, limits, shutdown).await {
                // A task of its own, holding only the upgraded protocol and
                // the open-connection count.
                monoio::spawn(async move {
                    upgraded.await;
                    drop(guard);
                });
            }
        });
    }
}

//! `GET /readyz`: whether this process can serve. `database` is `ok` when
//! the store is not poisoned and a round trip to its threads completes
//! within `--health-db-timeout-ms`; with `--pubsub-url`, `pubsub` is `ok`
//! when both Redis connections are up and a `PING` answers within
//! `--health-pubsub-timeout-ms`. The body is shaped as BEHAVIOR.md §13
//! (200 when every probe is ok, else 503 with `status: error`).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

use crate::http::Response;
use crate::pubsub::Link;
use crate::store::Store;

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    database: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pubsub: Option<&'static str>,
}

/// What `/readyz` probes.
pub struct Probes {
    /// The store.
    pub store: Arc<dyn Store>,
    /// `--health-db-timeout-ms`.
    pub db_timeout: Duration,
    /// The link to the other nodes, if any.
    pub pubsub: Option<Link>,
    /// `--health-pubsub-timeout-ms`.
    pub pubsub_timeout: Duration,
}

/// Runs the probes and shapes the answer.
pub async fn check(probes: &Probes) -> Response {
    let database_error = database(&probes.store, probes.db_timeout).await;
    let pubsub = match &probes.pubsub {
        Some(link) => Some(pubsub_ok(link, probes.pubsub_timeout).await),
        None => None,
    };
    let ok = database_error.is_none() && pubsub != Some(false);
    let word = |up: bool| if up { "ok" } else { "error" };
    let body = Readiness {
        status: word(ok),
        database: word(database_error.is_none()),
        database_error,
        pubsub: pubsub.map(word),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Response::json(status, &body)
}

/// Whether both connections are up and Redis answers in time.
async fn pubsub_ok(link: &Link, timeout: Duration) -> bool {
    link.is_up() && matches!(monoio::time::timeout(timeout, link.ping()).await, Ok(Ok(())))
}

/// Why the store is not ready, if it is not.
async fn database(store: &Arc<dyn Store>, db_timeout: Duration) -> Option<&'static str> {
    if store.is_poisoned() {
        Some("Database refuses writes after a failed flush")
    } else {
        match monoio::time::timeout(db_timeout, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some("Database unavailable"),
            Err(_) => Some("Database connection timed out"),
        }
    }
}

//! `GET /readyz`: whether this process can serve. `database` is `ok` when
//! the store is not poisoned and a round trip to its threads completes
//! within `--health-db-timeout-ms`; the body is shaped as BEHAVIOR.md §13
//! (200 when every probe is ok, else 503 with `status: error`).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

use crate::http::Response;
use crate::store::Store;

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    database: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_error: Option<&'static str>,
}

/// Runs the probes and shapes the answer.
pub async fn check(store: &Arc<dyn Store>, db_timeout: Duration) -> Response {
    let database_error = if store.is_poisoned() {
        Some("Database refuses writes after a failed flush")
    } else {
        match monoio::time::timeout(db_timeout, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some("Database unavailable"),
            Err(_) => Some("Database connection timed out"),
        }
    };
    let ok = database_error.is_none();
    let body = Readiness {
        status: if ok { "ok" } else { "error" },
        database: if ok { "ok" } else { "error" },
        database_error,
    };
    Response::json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

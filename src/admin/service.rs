//! The management port's [`Service`]: `/livez`, `/readyz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};

use super::readyz::{self, Probes};
use crate::http::{Body, RequestHead, Response, Service};
use crate::limits;
use crate::metrics::Metrics;

/// Answers the management port.
pub struct AdminService {
    /// What `/readyz` probes.
    pub probes: Probes,
    /// Every shard's metrics.
    pub metrics: Arc<Metrics>,
}

impl Service for AdminService {
    fn deadline(&self, _head: &RequestHead) -> Duration {
        self.probes.db_timeout + self.probes.pubsub_timeout + Duration::from_millis(limits::ADMIN_DEADLINE_SLACK_MS)
    }

    async fn call(&self, head: &RequestHead, _body: &mut Body<'_>, _peer: SocketAddr) -> Response {
        let path = head.path.as_str();
        if !matches!(path, "/livez" | "/readyz" | "/metrics") {
            return Response::error(StatusCode::NOT_FOUND, "Not found");
        }
        if head.method != Method::GET && head.method != Method::HEAD {
            return Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .with_header(http::header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        }
        match path {
            "/livez" => Response::empty(StatusCode::OK),
            "/readyz" => readyz::check(&self.probes).await,
            _ => {
                let mut text = self.metrics.render();
                self.probes.store.render_metrics(&mut text);
                Response::bytes(
                    StatusCode::OK,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                    text,
                )
            }
        }
    }
}

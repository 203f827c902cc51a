//! `POST /v1/gateway/ticket` and `GET /v1/gateway?ticket=…` (BEHAVIOR.md
//! §8.1–8.2): a single-use ticket for a device, then the WebSocket upgrade
//! whose session [`crate::gateway::session`] runs on this shard.

use http::StatusCode;
use uuid::Uuid;

use super::error::ApiError;
use super::RequestCtx;
use crate::gateway::{session, upgrade};
use crate::http::Response;

/// `POST /v1/gateway/ticket`.
pub async fn ticket(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let (_, device) = ctx.calling_device()?;
    let ticket = Uuid::new_v4();
    ctx.app
        .store
        .create_ticket(ticket, device, ctx.app.config.ws_ticket_ttl_secs)
        .await?;
    Ok(Response::json(
        StatusCode::CREATED,
        &serde_json::json!({ "ticket": ticket }),
    ))
}

/// The value of `name` in a query string (no percent-decoding: our
/// parameters are UUIDs and tokens).
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /v1/gateway`.
pub async fn connect(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let accept = upgrade::accept_key(&ctx.head.headers).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(ticket) = query_param(ctx.head.query.as_deref(), "ticket") else {
        return Err(ApiError::BadRequest(
            "Failed to deserialize query string: missing field `ticket`".into(),
        ));
    };
    let ticket = Uuid::parse_str(ticket).map_err(|_| ApiError::Unauthorized)?;
    let device = ctx
        .app
        .store
        .consume_ticket(ticket)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let mesh = ctx.mesh.clone();
    Ok(Response::switching_protocols(
        upgrade::switching_headers(accept),
        Box::new(move |stream, leftover| Box::pin(session::run(stream, leftover, device, mesh))),
    ))
}

//! `POST /v1/gateway/ticket` and `GET /v1/gateway?ticket=…` (BEHAVIOR.md
//! §8.1–8.2): a single-use ticket for a device (refused at the upgrade if
//! the token it was issued to has been revoked since), then the WebSocket upgrade
//! whose session [`crate::gateway::session`] runs on this shard. A legacy
//! client connects with `?token=<access token>` instead (§17.2 item 8): the
//! token's device, or the user's primary device, gets a session that sends
//! one envelope per frame. A ticket wins when both are present.

use http::StatusCode;
use uuid::Uuid;

use super::context::RequestCtx;
use super::error::ApiError;
use super::primary_device::primary_device;
use crate::auth::tokens::Principal;
use crate::gateway::delivery::Framing;
use crate::gateway::{session, upgrade};
use crate::http::Response;
use crate::store::TicketHolder;

/// `POST /v1/gateway/ticket`.
pub async fn ticket(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let (user_id, device_id) = RequestCtx::device_principal(principal)?;
    let holder = TicketHolder {
        device_id,
        user_id,
        generation: principal.generation,
    };
    let ticket = Uuid::new_v4();
    ctx.app
        .store
        .create_ticket(ticket, holder, ctx.app.config.ws_ticket_ttl_secs)
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
    let query = ctx.head.query.as_deref();
    let (device, framing) = match (query_param(query, "ticket"), query_param(query, "token")) {
        (Some(ticket), _) => (ticket_device(ctx, ticket).await?, Framing::Batches),
        (None, Some(token)) => (token_device(ctx, token).await?, Framing::SingleEnvelopes),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "Failed to deserialize query string: missing field `ticket`".into(),
            ))
        }
    };
    let (hub, events) = (ctx.local.hub.clone(), ctx.local.events.clone());
    Ok(Response::switching_protocols(
        upgrade::switching_headers(accept),
        Box::new(move |stream, leftover| Box::pin(session::run(stream, leftover, device, framing, hub, events))),
    ))
}

/// The device a ticket was issued for, consuming the ticket (401 otherwise,
/// and when the token it was issued to has been revoked since).
async fn ticket_device(ctx: &RequestCtx<'_>, ticket: &str) -> Result<Uuid, ApiError> {
    let ticket = Uuid::parse_str(ticket).map_err(|_| ApiError::Unauthorized)?;
    let holder = ctx
        .app
        .store
        .consume_ticket(ticket)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let issued_to = Principal {
        user_id: holder.user_id,
        device_id: Some(holder.device_id),
        generation: holder.generation,
        user_scope: 0,
    };
    if !ctx.local.admits(&issued_to) {
        return Err(ApiError::Unauthorized);
    }
    Ok(holder.device_id)
}

/// The device of a legacy socket's access token: its device claim, else the
/// user's primary device (401 when the token is invalid or its device is
/// gone).
async fn token_device(ctx: &RequestCtx<'_>, token: &str) -> Result<Uuid, ApiError> {
    let principal = ctx.verify_access(token)?;
    let device = match principal.device_id {
        Some(device) => ctx.app.store.device(device).await?.map(|d| d.id),
        None => primary_device(ctx.app.store.as_ref(), principal.user_id).await?,
    };
    device.ok_or(ApiError::Unauthorized)
}

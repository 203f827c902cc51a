//! `GET /v1/usernames/{username}`: the user id of an exact username
//! (case-insensitive, as login matches), for any valid access token; 404
//! when there is none, 400 when the path is not a valid username. No prefix
//! search and no listing: the only way to learn an id is to know the name,
//! and the route has its own rate-limit tier
//! (`--rate-limit-lookup-per-second`, `--rate-limit-lookup-burst`) so that
//! walking the namespace is slow.

use http::StatusCode;

use super::context::RequestCtx;
use super::credentials::validate_username;
use super::error::ApiError;
use crate::http::Response;

/// `GET /v1/usernames/{username}`.
pub async fn lookup(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    ctx.principal()?;
    let username = ctx.param.unwrap_or_default();
    validate_username(username)?;
    match ctx.app.store.user_by_name(&username.to_lowercase()).await? {
        Some(user) => Ok(Response::json(
            StatusCode::OK,
            &serde_json::json!({ "userId": user.id }),
        )),
        None => Err(ApiError::NotFound),
    }
}

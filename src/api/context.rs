//! [`RequestCtx`]: one request as a handler sees it — the node's state
//! ([`App`], this shard's [`ShardLocal`]), the request head and path
//! parameter — with the authentication and parsing helpers every handler
//! uses.

use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use super::error::{device_scope_required, ApiError};
use crate::auth::tokens::{bearer_token, Principal};
use crate::http::RequestHead;
use crate::metrics::Counter;
use crate::node::{App, ShardLocal};

/// One request as a handler sees it.
pub struct RequestCtx<'a> {
    /// Shared state.
    pub app: &'a Arc<App>,
    /// This shard's own state.
    pub local: &'a Rc<ShardLocal>,
    /// The request head.
    pub head: &'a RequestHead,
    /// The path parameter, raw.
    pub param: Option<&'a str>,
}

impl RequestCtx<'_> {
    /// The caller named by a valid bearer token (401 otherwise).
    pub fn principal(&self) -> Result<Principal, ApiError> {
        let token = bearer_token(self.head.headers.get(http::header::AUTHORIZATION)).ok_or(ApiError::Unauthorized)?;
        self.verify_access(token)
    }

    /// Whom an access token names, if it is valid and not revoked: its
    /// account was not deleted and its password not changed since it was
    /// issued (401 otherwise; no store read).
    pub fn verify_access(&self, token: &str) -> Result<Principal, ApiError> {
        let principal = self.app.tokens.verify(token).map_err(|_| ApiError::Unauthorized)?;
        if !self.local.admits(&principal) {
            return Err(ApiError::Unauthorized);
        }
        Ok(principal)
    }

    /// The calling device of a device-scoped token (403 for a user token).
    pub fn device_principal(principal: Principal) -> Result<(Uuid, Uuid), ApiError> {
        principal
            .device_id
            .map(|d| (principal.user_id, d))
            .ok_or_else(device_scope_required)
    }

    /// The path parameter as a UUID (400 otherwise).
    pub fn path_uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let raw = self.param.unwrap_or_default();
        super::routes::parse_uuid(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Invalid URL: Cannot parse `{name}` with value `{raw}` to a UUID"
            ))
        })
    }

    /// Adds one to a counter of this shard.
    pub fn count(&self, counter: Counter) {
        self.local.count(counter, 1);
    }

    /// The device of a device-scoped token (403 for a user token).
    pub fn calling_device(&self) -> Result<(Uuid, Uuid), ApiError> {
        Self::device_principal(self.principal()?)
    }
}

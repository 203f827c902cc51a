//! `POST /v1/users`: registration (BEHAVIOR.md §4.2). The username must
//! match `^[a-zA-Z0-9_]{3,50}$` and is stored lower-cased (unique
//! case-insensitively); the password must be at least 12 bytes. The
//! password is hashed on the worker pool before the uniqueness check, as in
//! the reference server, so a 409 costs the same as a 201.
//!
//! A body carrying any of the legacy key fields (`identityKey`,
//! `registrationId`, `signedPreKey`, `oneTimePreKeys`) is a registration of
//! the single-device legacy API (BEHAVIOR.md §17.2): all four are then
//! required and checked as a device creation checks them, and the user and
//! its primary device are created in one transaction, answered with a
//! device-scoped token. A body without them is a v1 registration.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::auth_response::{auth_response, new_refresh};
use super::context::RequestCtx;
use super::credentials::validate;
use super::error::ApiError;
use super::json;
use super::keys_json::{DeviceKeys, DeviceKeysJson, OneTimePreKeyJson, SignedPreKeyJson};
use super::new_device::new_device;
use crate::auth::tokens::Principal;
use crate::http::{Body, Response};
use crate::metrics::Counter;
use crate::store::{StoreError, UserRecord};
use crate::util::time::now_micros;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegistrationRequest {
    username: String,
    password: String,
    identity_key: Option<String>,
    registration_id: Option<i32>,
    signed_pre_key: Option<SignedPreKeyJson>,
    one_time_pre_keys: Option<Vec<OneTimePreKeyJson>>,
}

impl RegistrationRequest {
    /// The legacy key fields: `None` when none is present (a v1
    /// registration), all four when any is (400 naming a missing one).
    fn legacy_keys(&mut self) -> Result<Option<DeviceKeysJson>, ApiError> {
        let any = self.identity_key.is_some()
            || self.registration_id.is_some()
            || self.signed_pre_key.is_some()
            || self.one_time_pre_keys.is_some();
        if !any {
            return Ok(None);
        }
        let missing = |field: &str| ApiError::BadShape(format!("missing field `{field}`"));
        Ok(Some(DeviceKeysJson {
            identity_key: self.identity_key.take().ok_or_else(|| missing("identityKey"))?,
            registration_id: self.registration_id.take().ok_or_else(|| missing("registrationId"))?,
            signed_pre_key: self.signed_pre_key.take().ok_or_else(|| missing("signedPreKey"))?,
            one_time_pre_keys: self.one_time_pre_keys.take().ok_or_else(|| missing("oneTimePreKeys"))?,
        }))
    }
}

/// `POST /v1/users`.
pub async fn register(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let mut req: RegistrationRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let legacy_keys = req.legacy_keys()?;
    validate(&req.username, &req.password)?;
    let first_device = match legacy_keys {
        Some(keys) => {
            let keys = DeviceKeys::decode(&keys)?;
            keys.check(ctx.app.config.pre_keys_max)?;
            Some(keys)
        }
        None => None,
    };
    let password: Arc<str> = req.password.into();
    let password_hash = ctx.app.passwords.hash(password).await.map_err(ApiError::internal)?;
    let user = UserRecord {
        id: Uuid::now_v7(),
        username: req.username.to_lowercase(),
        password_hash,
        created_at_micros: now_micros(),
        legacy: first_device.is_some(),
        token_generation: 0,
        user_scope_generation: 0,
    };
    let owner = Principal {
        user_id: user.id,
        device_id: None,
        generation: 0,
        user_scope: 0,
    };
    let (created, principal, token) = match first_device {
        Some(keys) => {
            let (device, principal, token) = new_device(ctx, keys, owner, None)?;
            (
                ctx.app.store.create_user_with_device(user, device).await,
                principal,
                token,
            )
        }
        None => {
            let (token, record) = new_refresh(ctx, owner, Uuid::new_v4())?;
            (ctx.app.store.create_user(user, record).await, owner, token)
        }
    };
    match created {
        Ok(()) => {}
        Err(StoreError::UsernameTaken) => return Err(ApiError::Conflict("Username already exists".into())),
        Err(e) => return Err(e.into()),
    }
    ctx.count(Counter::Registrations);
    if principal.device_id.is_some() {
        ctx.count(Counter::DevicesCreated);
    }
    Ok(auth_response(ctx, StatusCode::CREATED, principal, token))
}

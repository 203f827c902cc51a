//! `POST /v1/users`: registration (BEHAVIOR.md §4.2). The username must
//! match `^[a-zA-Z0-9_]{3,50}$` and is stored lower-cased (unique
//! case-insensitively); the password must be at least 12 bytes. The
//! password is hashed on the worker pool before the uniqueness check, as in
//! the reference server, so a 409 costs the same as a 201.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;
use super::sessions::{auth_response, new_refresh};
use super::{json, RequestCtx};
use crate::admin::metrics::Counter;
use crate::auth::tokens::Principal;
use crate::http::{Body, Response};
use crate::store::{StoreError, UserRecord};
use crate::util::time::now_micros;

/// Shortest password, UTF-8 bytes.
pub const PASSWORD_BYTES_MIN: usize = 12;

#[derive(Deserialize)]
struct RegistrationRequest {
    username: String,
    password: String,
}

/// Checks username and password in the reference server's order and texts.
pub fn validate(username: &str, password: &str) -> Result<(), ApiError> {
    if username.trim().is_empty() {
        return Err(ApiError::BadRequest("Username cannot be empty".into()));
    }
    let valid_chars = username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(3..=50).contains(&username.len()) || !valid_chars {
        return Err(ApiError::BadRequest(
            "Username must be between 3 and 50 characters and can only contain letters, numbers, and underscores"
                .into(),
        ));
    }
    if password.len() < PASSWORD_BYTES_MIN {
        return Err(ApiError::BadRequest(
            "Password must be at least 12 characters long".into(),
        ));
    }
    Ok(())
}

/// `POST /v1/users`.
pub async fn register(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let req: RegistrationRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    validate(&req.username, &req.password)?;
    let password: Arc<str> = req.password.into();
    let password_hash = ctx.app.passwords.hash(password).await.map_err(ApiError::internal)?;
    let user = UserRecord {
        id: Uuid::now_v7(),
        username: req.username.to_lowercase(),
        password_hash,
        created_at_micros: now_micros(),
    };
    let principal = Principal {
        user_id: user.id,
        device_id: None,
    };
    let (token, record) = new_refresh(ctx, principal, Uuid::new_v4())?;
    match ctx.app.store.create_user(user, record).await {
        Ok(()) => {}
        Err(StoreError::UsernameTaken) => return Err(ApiError::Conflict("Username already exists".into())),
        Err(e) => return Err(e.into()),
    }
    ctx.count(Counter::Registrations);
    Ok(auth_response(ctx, StatusCode::CREATED, principal, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<(), ApiError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn validation_texts() {
        assert!(validate("testuser", "password12345").is_ok());
        assert_eq!(message(validate("", "password12345")), "Username cannot be empty");
        assert_eq!(message(validate("   ", "password12345")), "Username cannot be empty");
        assert!(message(validate(&"a".repeat(51), "password12345")).contains("between 3 and 50"));
        assert!(message(validate("ab", "password12345")).contains("between 3 and 50"));
        assert!(message(validate("a b c", "password12345")).contains("between 3 and 50"));
        assert_eq!(
            message(validate("testuser", "short")),
            "Password must be at least 12 characters long"
        );
        assert!(validate("testuser", "123456789012").is_ok());
        assert!(validate("testuser", "12345678901").is_err());
    }
}

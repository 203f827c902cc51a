//! Usernames and passwords, shared by every route that takes one:
//! registration's rules (BEHAVIOR.md §4.2: `^[a-zA-Z0-9_]{3,50}$`, stored
//! lower-cased; passwords of at least 12 bytes), which the password change
//! and the username lookup apply too, and [`verify_password`], the one
//! password check of login, password change and account deletion.
//!
//! An account that does not exist — never did, or was deleted — is checked
//! against the dummy hash, so it fails exactly as a wrong password does:
//! same answer, same argon2 cost, same code path. Each check is counted
//! (`obscura_password_verifications_total{hash="stored"|"dummy"}`).
//! Passwords are never logged.

use std::sync::Arc;

use super::context::RequestCtx;
use super::error::ApiError;
use crate::limits::{PASSWORD_BYTES_MIN, USERNAME_CHARS_MAX, USERNAME_CHARS_MIN};
use crate::metrics::Counter;
use crate::store::UserRecord;

/// Checks a username in the reference server's order and texts (400).
pub fn validate_username(username: &str) -> Result<(), ApiError> {
    if username.trim().is_empty() {
        return Err(ApiError::BadRequest("Username cannot be empty".into()));
    }
    let valid_chars = username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(USERNAME_CHARS_MIN..=USERNAME_CHARS_MAX).contains(&username.len()) || !valid_chars {
        return Err(ApiError::BadRequest(
            "Username must be between 3 and 50 characters and can only contain letters, numbers, and underscores"
                .into(),
        ));
    }
    Ok(())
}

/// Checks a new password with registration's rule and text (400).
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if password.len() < PASSWORD_BYTES_MIN {
        return Err(ApiError::BadRequest(
            "Password must be at least 12 characters long".into(),
        ));
    }
    Ok(())
}

/// Checks username and password in the reference server's order and texts.
pub fn validate(username: &str, password: &str) -> Result<(), ApiError> {
    validate_username(username)?;
    validate_password(password)
}

/// Checks `password` against `user`'s hash, or against the dummy hash when
/// there is no such account; the account when the password is right.
pub async fn verify_password(
    ctx: &RequestCtx<'_>,
    user: Option<UserRecord>,
    password: String,
) -> Result<Option<UserRecord>, ApiError> {
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    ctx.count(match stored {
        Some(_) => Counter::PasswordChecksStored,
        None => Counter::PasswordChecksDummy,
    });
    let password: Arc<str> = password.into();
    let verified = ctx
        .app
        .passwords
        .verify(password, stored)
        .await
        .map_err(ApiError::internal)?;
    Ok(user.filter(|_| verified))
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
        assert!(validate_username("a%20b").is_err());
        assert!(validate_username("Alice_01").is_ok());
    }
}

//! The Firebase Cloud Messaging HTTP v1 sender (BEHAVIOR.md §11.2): a
//! service-account credential signs an RS256 assertion that the OAuth2
//! token endpoint exchanges for an access token (cached, renewed when less
//! than five minutes remain), and each push is one content-free `data`
//! message to `…/v1/projects/<project>/messages:send`. FCM's answer is
//! mapped to an [`Outcome`] as §11.2 lists. Calls block: they run on the
//! push worker pool, never on a shard.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Outcome;
use crate::util::time::now_secs;

/// The OAuth2 scope of FCM sends.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The JWT-bearer grant type.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of a signed assertion, seconds.
const ASSERTION_TTL_SECS: i64 = 3600;
/// A cached access token is renewed when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Collapse key / id of every wake-up.
const COLLAPSE: &str = "obscura_check";

/// Why FCM could not be set up (a startup error).
#[derive(Debug, thiserror::Error)]
pub enum FcmSetupError {
    /// The credentials file could not be read.
    #[error("reading the FCM credentials file failed: {0}")]
    Read(#[from] std::io::Error),
    /// It is not a service-account JSON.
    #[error("the FCM credentials file is not a service-account JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Its private key is not an RSA PEM key.
    #[error("the FCM credentials file's private key is not an RSA PEM key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
}

/// Why a call to FCM or its token endpoint failed (a transient failure).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("http: {0}")]
    Http(#[from] ureq::Error),
    #[error("token endpoint answered {0}")]
    TokenStatus(u16),
    #[error("signing the assertion failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The fields of a service-account file that we use.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// Where and how to reach FCM.
pub struct FcmSettings<'a> {
    /// Firebase project id.
    pub project: &'a str,
    /// The service-account JSON file.
    pub credentials_file: &'a Path,
    /// Base URL of the FCM API.
    pub api_url: &'a str,
    /// OAuth2 token endpoint unless the credentials name one.
    pub token_url: &'a str,
    /// Message TTL, seconds.
    pub ttl_secs: u64,
    /// Timeout of one HTTP call.
    pub timeout: Duration,
}

/// A configured FCM sender. `Debug` shows no key material.
pub struct FcmClient {
    send_url: String,
    token_url: String,
    email: String,
    key: EncodingKey,
    ttl_secs: u64,
    agent: ureq::Agent,
    access: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for FcmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmClient").field("send_url", &self.send_url).finish()
    }
}

impl FcmClient {
    /// Reads the credentials and prepares the client.
    pub fn new(settings: &FcmSettings<'_>) -> Result<Self, FcmSetupError> {
        let account: ServiceAccount = serde_json::from_slice(&std::fs::read(settings.credentials_file)?)?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                settings.api_url.trim_end_matches('/'),
                settings.project
            ),
            token_url: account.token_uri.unwrap_or_else(|| settings.token_url.to_owned()),
            email: account.client_email,
            key,
            ttl_secs: settings.ttl_secs,
            agent,
            access: Mutex::new(None),
        })
    }

    /// Sends one wake-up to `token` (blocking).
    pub fn send(&self, token: &str) -> Outcome {
        let access = match self.access_token() {
            Ok(access) => access,
            Err(e) => {
                tracing::warn!(error = %e, "FCM access token not obtained");
                return Outcome::Failed;
            }
        };
        let answer = self
            .agent
            .post(&self.send_url)
            .header("authorization", format!("Bearer {access}"))
            .send_json(self.message(token));
        match answer {
            Ok(mut response) => {
                let status = response.status().as_u16();
                if status == 401 {
                    self.forget_access_token();
                }
                let body = response.body_mut().read_to_string().unwrap_or_default();
                classify(status, &body)
            }
            Err(e) => {
                tracing::warn!(error = %e, "FCM send failed");
                Outcome::Failed
            }
        }
    }

    /// The wake-up message of §11.2: data only, no content.
    fn message(&self, token: &str) -> Value {
        json!({"message": {
            "token": token,
            "data": {"action": "check"},
            "android": {"collapseKey": COLLAPSE, "priority": "HIGH", "ttl": format!("{}s", self.ttl_secs)},
            "apns": {
                "headers": {"apns-push-type": "background", "apns-priority": "5", "apns-collapse-id": COLLAPSE},
                "payload": {"aps": {"content-available": 1}}
            }
        }})
    }

    /// The cached access token, renewed when it is about to expire.
    fn access_token(&self) -> Result<String, CallError> {
        let mut cached = self.access.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, expires)) = cached.as_ref() {
            if expires.saturating_duration_since(Instant::now()) > RENEW_BEFORE {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch_access_token()?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    fn forget_access_token(&self) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Exchanges a signed assertion for an access token.
    fn fetch_access_token(&self) -> Result<(String, Duration), CallError> {
        let iat = now_secs();
        let claims = AssertionClaims {
            iss: &self.email,
            scope: SCOPE,
            aud: &self.token_url,
            iat,
            exp: iat + ASSERTION_TTL_SECS,
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)?;
        let mut response = self
            .agent
            .post(&self.token_url)
            .send_form([("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])?;
        if !response.status().is_success() {
            return Err(CallError::TokenStatus(response.status().as_u16()));
        }
        let answer: TokenAnswer = response.body_mut().read_json()?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        Ok((answer.access_token, lifetime))
    }
}

/// Maps FCM's answer to an outcome (BEHAVIOR.md §11.2).
pub fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => return Outcome::Delivered,
        429 => return Outcome::Failed,
        403 | 404 => return Outcome::Unregistered,
        _ => {}
    }
    let Ok(error) = serde_json::from_str::<Value>(body) else {
        return Outcome::Failed;
    };
    let error = &error["error"];
    let status_text = error["status"].as_str().unwrap_or_default();
    let details = error["details"].as_array().map(Vec::as_slice).unwrap_or_default();
    let unregistered_status = matches!(status_text, "NOT_FOUND" | "UNREGISTERED" | "SENDER_ID_MISMATCH");
    let unregistered_detail = details.iter().any(|d| d["errorCode"] == "UNREGISTERED");
    let bad_token = status == 400
        && status_text == "INVALID_ARGUMENT"
        && details.iter().any(|d| {
            d["fieldViolations"]
                .as_array()
                .is_some_and(|v| v.iter().any(|f| f["field"] == "message.token"))
        });
    if unregistered_status || unregistered_detail || bad_token {
        Outcome::Unregistered
    } else {
        Outcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_as_the_spec_lists() {
        assert_eq!(classify(200, ""), Outcome::Delivered);
        assert_eq!(classify(429, ""), Outcome::Failed);
        assert_eq!(classify(404, ""), Outcome::Unregistered);
        assert_eq!(classify(403, "garbage"), Outcome::Unregistered);
        assert_eq!(classify(500, "garbage"), Outcome::Failed);
        assert_eq!(
            classify(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#),
            Outcome::Failed
        );
        assert_eq!(
            classify(400, r#"{"error":{"status":"UNREGISTERED"}}"#),
            Outcome::Unregistered
        );
        assert_eq!(
            classify(500, r#"{"error":{"status":"SENDER_ID_MISMATCH"}}"#),
            Outcome::Unregistered
        );
        assert_eq!(
            classify(
                400,
                r#"{"error":{"status":"X","details":[{"errorCode":"UNREGISTERED"}]}}"#
            ),
            Outcome::Unregistered
        );
        let bad_token =
            r#"{"error":{"status":"INVALID_ARGUMENT","details":[{"fieldViolations":[{"field":"message.token"}]}]}}"#;
        assert_eq!(classify(400, bad_token), Outcome::Unregistered);
        assert_eq!(classify(500, bad_token), Outcome::Failed);
        let other_field =
            r#"{"error":{"status":"INVALID_ARGUMENT","details":[{"fieldViolations":[{"field":"message.data"}]}]}}"#;
        assert_eq!(classify(400, other_field), Outcome::Failed);
    }
}

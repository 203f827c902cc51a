//! Wake-up pushes (BEHAVIOR.md §11.2). The store keeps the jobs (scheduled
//! by message appends and prekey fetches, cancelled by acks and sessions);
//! [`worker`] leases due jobs on shard 0 and hands each to the [`Provider`]
//! on the push worker pool, since provider calls block; [`fcm`] is the one
//! real provider. Without FCM configured, pushes are logged and counted.

pub mod fcm;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use self::fcm::{FcmClient, FcmSettings, FcmSetupError};
use crate::config::Config;

/// What a provider said about one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: the job is done.
    Delivered,
    /// The token is dead: the job is done and the token is deleted.
    Unregistered,
    /// Anything else (quota, 5xx, network): retried when the lease ends.
    Failed,
}

/// Where pushes go.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Nowhere: each push is logged and counts as delivered.
    LogOnly,
    /// Firebase Cloud Messaging.
    Fcm(Arc<FcmClient>),
}

impl Provider {
    /// FCM when both its options are set, else log-only. A configured but
    /// unusable credentials file is an error.
    pub fn from_config(config: &Config) -> Result<Self, FcmSetupError> {
        let (Some(project), Some(credentials_file)) = (&config.fcm_project_id, &config.fcm_credentials_file) else {
            return Ok(Self::LogOnly);
        };
        let client = FcmClient::new(&FcmSettings {
            project,
            credentials_file,
            api_url: &config.fcm_api_url,
            token_url: &config.fcm_token_url,
            ttl_secs: config.fcm_ttl_secs,
            timeout: Duration::from_secs(config.fcm_timeout_secs),
        })?;
        Ok(Self::Fcm(Arc::new(client)))
    }

    /// Sends one wake-up (blocking). The token is never logged.
    pub fn send(&self, device: Uuid, token: &str) -> Outcome {
        match self {
            Self::LogOnly => {
                tracing::info!(%device, "wake-up push (no provider configured: logged only)");
                Outcome::Delivered
            }
            Self::Fcm(client) => client.send(token),
        }
    }
}

//! Taking a device's prekey bundle (BEHAVIOR.md §6.4), shared by
//! `GET /v1/users/{userId}` and the legacy `GET /v1/keys/{userId}`: the
//! store consumes one one-time prekey per fetch, and a device left below
//! `--messaging-pre-key-refill-threshold` is told (PreKeysLow) and gets a
//! wake-up push scheduled.

use uuid::Uuid;

use super::context::RequestCtx;
use super::error::ApiError;
use crate::gateway::events::DeviceEvent;
use crate::store::Bundle;
use crate::util::time::{millis_after, now_millis};

/// Takes one bundle of `device` (one store transaction consumes its
/// one-time prekey), raising PreKeysLow when the fetch leaves the device
/// below the threshold.
pub async fn take_bundle(ctx: &RequestCtx<'_>, device: Uuid) -> Result<Option<Bundle>, ApiError> {
    let bundle = ctx.app.store.take_bundle(device).await?;
    if let Some(b) = &bundle {
        if b.remaining < ctx.app.config.pre_key_refill_threshold {
            ctx.local.events.raise(device, DeviceEvent::PreKeysLow);
            schedule_wake_up(ctx, device);
        }
    }
    Ok(bundle)
}

/// A prekey-low event schedules a wake-up push (§11.2), in the background.
fn schedule_wake_up(ctx: &RequestCtx<'_>, device: Uuid) {
    let store = ctx.app.store.clone();
    let due = millis_after(now_millis(), ctx.app.config.notifications_push_delay_secs);
    monoio::spawn(async move {
        if let Err(e) = store.schedule_push(device, due).await {
            tracing::warn!(error = %e, "scheduling a push job failed");
        }
    });
}

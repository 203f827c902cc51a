//! What creating a device writes (BEHAVIOR.md §5.1): the device record
//! with its decoded keys, and the device-scoped principal and refresh token
//! it is answered with. Shared by device creation and the legacy
//! registration, which creates the user's first device.

use uuid::Uuid;

use super::auth_response::new_refresh;
use super::context::RequestCtx;
use super::error::ApiError;
use super::keys_json::DeviceKeys;
use crate::auth::refresh::RefreshToken;
use crate::auth::tokens::Principal;
use crate::store::{DeviceRecord, NewDevice};
use crate::util::time::now_micros;

/// A new device of `owner`'s account with `keys`, its device-scoped
/// principal and refresh token (at the owner's token generation).
pub fn new_device(
    ctx: &RequestCtx<'_>,
    keys: DeviceKeys,
    owner: Principal,
    name: Option<String>,
) -> Result<(NewDevice, Principal, RefreshToken), ApiError> {
    let user_id = owner.user_id;
    let device = DeviceRecord {
        id: Uuid::now_v7(),
        user_id,
        name,
        created_at_micros: now_micros(),
        identity_key: keys.identity_key,
        registration_id: keys.registration_id,
    };
    let scoped = Principal {
        device_id: Some(device.id),
        ..owner
    };
    let (token, refresh) = new_refresh(ctx, scoped, Uuid::new_v4())?;
    let new = NewDevice {
        device,
        signed_prekey: keys.signed_prekey,
        one_time_prekeys: keys.one_time_prekeys,
        refresh,
    };
    Ok((new, scoped, token))
}

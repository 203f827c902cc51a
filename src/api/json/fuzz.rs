//! Fuzzing every JSON body the API reads (registration, login, refresh and
//! logout, device creation and rename, key uploads, push tokens; the legacy
//! routes use the same types) and the checks that follow the decoding where
//! they need no store, plus the route table over arbitrary paths. Bodies are
//! arbitrary bytes, arbitrary JSON, and near-valid bodies of each type. The
//! decoder always gives a value or a 400, never panics, and holds at most a
//! few times the body's size (itself bounded by `--http-body-bytes-max`).

use http::Method;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::decode;
use crate::api::account::{DeletionRequest, PasswordChangeRequest};
use crate::api::credentials::validate;
use crate::api::devices::{CreateDeviceRequest, RenameRequest};
use crate::api::key_upload::UploadRequest;
use crate::api::keys_json::{DeviceKeys, DeviceKeysJson};
use crate::api::push_tokens::PushTokenRequest;
use crate::api::routes::{parse_uuid, resolve, Resolved, ROUTE_LABELS, UNMATCHED_LABEL};
use crate::api::sessions::{LoginRequest, RefreshRequest};
use crate::api::users::RegistrationRequest;
use crate::util::fuzz_harness::{config, measure};

/// Every field name of every body, so generated objects hit real fields.
const FIELDS: [&str; 14] = [
    "username",
    "password",
    "deviceId",
    "refreshToken",
    "name",
    "identityKey",
    "registrationId",
    "signedPreKey",
    "oneTimePreKeys",
    "keyId",
    "publicKey",
    "signature",
    "token",
    "extra",
];

/// Strings a field may hold: keys, signatures, uuids, names, noise.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "B[Q-Za-f][A-Za-z0-9+/]{42}",
        "[A-Za-z0-9+/]{85}[AQgw]==",
        "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
        "[a-zA-Z0-9_]{0,60}",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A body of the right shape with fields dropped or replaced.
fn near_valid(template: Value) -> impl Strategy<Value = Value> {
    let Value::Object(fields) = template else {
        return Just(template).boxed();
    };
    let names: Vec<String> = fields.keys().cloned().collect();
    let edits = prop::collection::vec((prop::sample::select(names), prop::option::of(json_value())), 0..3);
    edits
        .prop_map(move |edits| {
            let mut body: Map<String, Value> = fields.clone();
            for (name, value) in edits {
                match value {
                    Some(v) => body.insert(name, v),
                    None => body.remove(&name),
                };
            }
            Value::Object(body)
        })
        .boxed()
}

fn device_keys() -> Value {
    json!({
        "identityKey": format!("BQ{}", "A".repeat(42)),
        "registrationId": 7,
        "signedPreKey": {"keyId": 1, "publicKey": format!("BQ{}", "A".repeat(42)), "signature": format!("{}A==", "A".repeat(85))},
        "oneTimePreKeys": [{"keyId": 1, "publicKey": format!("BQ{}", "A".repeat(42))}],
    })
}

fn push_token_and_keys() -> Value {
    let mut body = device_keys();
    body["token"] = json!("fcm-token");
    body
}

fn legacy_registration() -> Value {
    let mut body = device_keys();
    body["username"] = json!("alice");
    body["password"] = json!("password12345");
    body
}

/// Bytes of a body: noise, any JSON, or a near-valid body, possibly cut.
fn body_bytes(template: Value) -> impl Strategy<Value = Vec<u8>> {
    let json = prop_oneof![json_value(), near_valid(template)].prop_map(|v| v.to_string().into_bytes());
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        4 => json.clone(),
        1 => (json, any::<prop::sample::Index>()).prop_map(|(bytes, cut)| bytes[..cut.index(bytes.len() + 1)].to_vec()),
    ]
}

/// Decodes `bytes` as `T`, then runs `check` on the value; a 400 or a value,
/// within four times the body's size.
fn decodes_or_400<T: DeserializeOwned>(bytes: &[u8], check: impl FnOnce(T) -> u16) -> Result<(), TestCaseError> {
    let (status, usage) = measure(|| match decode::<T>(bytes) {
        Ok(value) => check(value),
        Err(e) => e.status().as_u16(),
    });
    prop_assert!(
        status == 200 || status == 400,
        "{status} for {:?}",
        String::from_utf8_lossy(bytes)
    );
    prop_assert!(
        usage.peak_bytes <= 4 * bytes.len() + 4096,
        "{usage:?} for {} bytes",
        bytes.len()
    );
    Ok(())
}

fn accepted<T>(_: T) -> u16 {
    200
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_json_registration(bytes in body_bytes(legacy_registration())) {
        decodes_or_400::<RegistrationRequest>(&bytes, accepted)?;
        decodes_or_400::<Value>(&bytes, |v| match (v["username"].as_str(), v["password"].as_str()) {
            (Some(u), Some(p)) => validate(u, p).map_or_else(|e| e.status().as_u16(), |()| 200),
            _ => 200,
        })?;
    }

    #[test]
    fn fuzz_json_sessions(bytes in body_bytes(json!({"username": "alice", "password": "password12345", "deviceId": "0192e0b4-0000-7000-8000-000000000001", "refreshToken": "x"}))) {
        decodes_or_400::<LoginRequest>(&bytes, accepted)?;
        decodes_or_400::<RefreshRequest>(&bytes, accepted)?;
    }

    #[test]
    fn fuzz_json_devices(bytes in body_bytes(device_keys())) {
        decodes_or_400::<CreateDeviceRequest>(&bytes, accepted)?;
        decodes_or_400::<RenameRequest>(&bytes, accepted)?;
        decodes_or_400::<DeviceKeysJson>(&bytes, |keys| match DeviceKeys::decode(&keys).and_then(|k| k.check(100)) {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        })?;
    }

    #[test]
    fn fuzz_json_keys_and_push_tokens(bytes in body_bytes(push_token_and_keys())) {
        decodes_or_400::<UploadRequest>(&bytes, accepted)?;
        decodes_or_400::<PushTokenRequest>(&bytes, accepted)?;
    }

    #[test]
    fn fuzz_json_account(bytes in body_bytes(json!({"currentPassword": "password12345", "newPassword": "password123456", "password": "password12345"}))) {
        decodes_or_400::<PasswordChangeRequest>(&bytes, accepted)?;
        decodes_or_400::<DeletionRequest>(&bytes, accepted)?;
    }

    /// Any path routes to a route, a 405 or a 404; a route's label exists;
    /// UUID parsing of any path segment never panics.
    #[test]
    fn fuzz_route_table(
        method in prop::sample::select(vec![Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS]),
        path in prop_oneof!["(/[a-z0-9.{}%-]{0,12}){0,5}", "/v1/(users|devices|keys|attachments|backup|gateway|sessions|messages|push-tokens)(/[ -~]{0,40}){0,2}", any::<String>()],
    ) {
        match resolve(&method, &path) {
            Resolved::Route(route, param) => {
                prop_assert!(route.index() < UNMATCHED_LABEL && ROUTE_LABELS.len() > route.index());
                if let Some(param) = param {
                    prop_assert!(!param.is_empty());
                    let _ = parse_uuid(&param);
                }
            }
            Resolved::MethodNotAllowed(allow, _) => prop_assert!(!allow.is_empty()),
            Resolved::NotFound => {}
        }
    }
}

//! Helpers for the data-plane tests (BEHAVIOR §6-§8): users with devices (`Member`), key-upload
//! bodies, `POST /v1/messages` with protobuf bodies, bundle fetches, and `queued_for`, which
//! reads a device's whole queue through a fresh socket without any fixed wait.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{Auth, Client, Resp};
use super::gateway::Gateway;
use super::keys::{b64, otpks, DeviceKeys, SignOver};
use super::server::TestServer;
use super::wire::{self, Envelope, FailedSubmission, Submission};
use super::{random_uuid, TestResult};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The flags every data-plane server gets: four shards so that sender, target, socket and
/// ticket land on different shards.
pub const SHARDS: [&str; 2] = ["--shards", "4"];

/// `SHARDS` followed by `extra`.
pub fn flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = SHARDS.to_vec();
    v.extend_from_slice(extra);
    v
}

/// A data-plane server: `--shards 4` plus `extra`.
pub fn server_with(extra: &[&str]) -> Res<TestServer> {
    TestServer::start_with(&flags(extra))
}

/// One device of one user, with both of the user's tokens.
#[derive(Clone, Debug)]
pub struct Member {
    /// The user-scoped session from registration.
    pub user: Auth,
    /// The device-scoped session from device creation.
    pub device: Auth,
    /// The device id, canonical text.
    pub device_id: String,
    /// The device id, raw bytes.
    pub id: [u8; 16],
    /// The user id, raw bytes.
    pub user_bytes: [u8; 16],
    /// The seed of the device's key material (`DeviceKeys::new(seed)`).
    pub seed: u8,
}

impl Member {
    /// The device token.
    pub fn token(&self) -> &str {
        &self.device.token
    }

    pub fn user_id(&self) -> &str {
        &self.user.user_id
    }
}

pub fn uuid_bytes(s: &str) -> Res<[u8; 16]> {
    Ok(*uuid::Uuid::parse_str(s)?.as_bytes())
}

/// Registers `username` and creates one device with `n_otpk` OTPKs (ids 1..=n, key seed 1).
pub fn member(client: &Client, username: &str, n_otpk: usize) -> Res<Member> {
    let user = client.register_ok(username)?;
    add_device(client, &user, 1, n_otpk)
}

/// Creates another device for `user` with key seed `seed` and `n_otpk` OTPKs (ids 1..=n).
pub fn add_device(client: &Client, user: &Auth, seed: u8, n_otpk: usize) -> Res<Member> {
    let body = DeviceKeys::new(seed).request(n_otpk);
    let resp = client.create_device(&user.token, &body)?;
    let device = Auth::from_json(&resp.expect_json(201)?)?;
    let device_id = device.device_id.clone().ok_or("device creation returned no deviceId")?;
    Ok(Member {
        user: user.clone(),
        id: uuid_bytes(&device_id)?,
        user_bytes: uuid_bytes(&user.user_id)?,
        device,
        device_id,
        seed,
    })
}

// ---- keys ----

/// A key-upload body (`POST /v1/devices/keys`) for the key material of `seed`: the SPK with id
/// `spk_id` signed by that identity, OTPKs `first..first+n`, and the identity key with
/// `registrationId` only when `registration_id` is given.
pub fn upload_body(seed: u8, registration_id: Option<i32>, spk_id: i32, first: i32, n: usize) -> Value {
    let mut keys = DeviceKeys::new(seed);
    keys.spk_key_id = spk_id;
    let mut body = keys.request(0);
    body["oneTimePreKeys"] = otpks(first, n);
    match registration_id {
        Some(r) => body["registrationId"] = json!(r),
        None => {
            if let Some(obj) = body.as_object_mut() {
                obj.remove("identityKey");
                obj.remove("registrationId");
            }
        }
    }
    body
}

/// The SPK signature of `seed` (over the 33-byte form), base64.
pub fn spk_signature(seed: u8) -> String {
    b64(&DeviceKeys::new(seed).sign_spk(SignOver::Prefixed33))
}

pub fn upload_keys(client: &Client, token: &str, body: &Value) -> Res<Resp> {
    client.post("/v1/devices/keys").bearer(token).json(body).send()
}

/// Uploads and asserts 200 with an empty body.
pub fn upload_keys_ok(client: &Client, token: &str, body: &Value) -> TestResult {
    let resp = upload_keys(client, token, body)?;
    assert_eq!(resp.status, 200, "key upload failed: {resp:?}");
    assert!(resp.body.is_empty(), "key upload answered a body: {resp:?}");
    Ok(())
}

pub fn fetch_bundles(client: &Client, token: &str, user_id: &str) -> Res<Resp> {
    client.get(&format!("/v1/users/{user_id}")).bearer(token).send()
}

/// Fetches and asserts 200 with a JSON array; returns the bundles.
pub fn fetch_bundles_ok(client: &Client, token: &str, user_id: &str) -> Res<Vec<Value>> {
    let v = fetch_bundles(client, token, user_id)?.expect_json(200)?;
    Ok(v.as_array()
        .ok_or_else(|| format!("bundles are not an array: {v}"))?
        .clone())
}

/// The one bundle of `device_id` in `bundles`.
pub fn bundle_of<'a>(bundles: &'a [Value], device_id: &str) -> Res<&'a Value> {
    let found: Vec<&Value> = bundles
        .iter()
        .filter(|b| b["deviceId"].as_str() == Some(device_id))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(format!("expected exactly one bundle for {device_id}: {bundles:?}").into()),
    }
}

/// The OTPK key id of a bundle, `None` for `oneTimePreKey: null` (which must be present).
pub fn otpk_id(bundle: &Value) -> Res<Option<i64>> {
    match bundle.get("oneTimePreKey") {
        Some(Value::Null) => Ok(None),
        Some(k) => Ok(Some(k["keyId"].as_i64().ok_or_else(|| format!("no keyId in {k}"))?)),
        None => Err(format!("bundle lacks the oneTimePreKey field: {bundle}").into()),
    }
}

// ---- messages ----

/// `POST /v1/messages` with `body` and `Idempotency-Key: key`.
pub fn post_messages(client: &Client, token: &str, key: &str, body: Vec<u8>) -> Res<Resp> {
    client
        .post("/v1/messages")
        .bearer(token)
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
}

/// Sends `subs` with a fresh Idempotency-Key.
pub fn send(client: &Client, token: &str, subs: &[Submission]) -> Res<Resp> {
    post_messages(client, token, &random_uuid(), wire::encode_send_request(subs))
}

/// Sends `subs`, asserts 200 and returns the decoded failures.
pub fn send_ok(client: &Client, token: &str, subs: &[Submission]) -> Res<Vec<FailedSubmission>> {
    let resp = send(client, token, subs)?;
    decode_200(&resp)
}

/// Sends `subs` and asserts 200 with a zero-byte body (every submission accepted).
pub fn send_all(client: &Client, token: &str, subs: &[Submission]) -> TestResult {
    let resp = send(client, token, subs)?;
    assert_eq!(resp.status, 200, "send failed: {resp:?}");
    assert!(
        resp.body.is_empty(),
        "full success must be a zero-byte body, got {:?}",
        wire::decode_send_response(&resp.body)
    );
    Ok(())
}

/// Sends one message with text `text` to `to`.
pub fn send_text(client: &Client, token: &str, to: &[u8; 16], text: &str) -> TestResult {
    send_all(client, token, &[Submission::to(to, text.as_bytes())])
}

/// Asserts a 200 answer of `POST /v1/messages` and decodes its `SendMessageResponse`.
pub fn decode_200(resp: &Resp) -> Res<Vec<FailedSubmission>> {
    assert_eq!(resp.status, 200, "send failed: {resp:?}");
    let ct = resp.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/x-protobuf") || ct.starts_with("application/octet-stream"),
        "a 200 of POST /v1/messages should be protobuf, got content-type {ct:?}"
    );
    Ok(wire::decode_send_response(&resp.body)?)
}

/// The payloads of `envelopes` as text.
pub fn texts(envelopes: &[Envelope]) -> Vec<String> {
    envelopes.iter().map(Envelope::text).collect()
}

/// Prefix of the marker messages `queued_for` sends.
pub const SENTINEL: &str = "sentinel:";

/// Everything still queued for `m`, in delivery order, read through a fresh socket without a
/// fixed wait: the device sends itself a sentinel, and since delivery is in order, everything
/// before the sentinel is the backlog. Only the sentinel is acked; sentinels of earlier calls
/// are skipped. The socket is closed before returning.
pub fn queued_for(server: &TestServer, m: &Member) -> Res<Vec<Envelope>> {
    let client = server.client();
    let mut gw = Gateway::connect(server, m.token())?;
    let mark = format!("{SENTINEL}{}", random_uuid());
    send_text(&client, m.token(), &m.id, &mark)?;
    let mut before = Vec::new();
    loop {
        let env = gw.collect_envelopes(1, Duration::from_secs(10), false)?;
        let env = env.into_iter().next().ok_or("no envelope")?;
        if env.message == mark.as_bytes() {
            gw.ack_envelopes(std::slice::from_ref(&env))?;
            break;
        }
        if env.text().starts_with(SENTINEL) {
            gw.ack_envelopes(std::slice::from_ref(&env))?;
            continue;
        }
        before.push(env);
    }
    gw.close()?;
    Ok(before)
}

/// Waits up to `within` for `m`'s queue to become empty (polling with `queued_for`); fails with
/// what is still queued.
pub fn wait_queue_empty(server: &TestServer, m: &Member, within: Duration) -> TestResult {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = queued_for(server, m)?;
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{} messages still queued after {within:?}: {:?}",
                left.len(),
                texts(&left)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! The single-device legacy API served beside v1 (BEHAVIOR §17.2, with the rules where
//! they differ): a `POST /v1/users` body with key fields is a legacy registration that creates
//! the user and its primary device in one step (device-scoped token), a legacy account's login
//! without `deviceId` is bound to that device, `POST /v1/keys` uploads to the token's (or the
//! primary) device, `GET /v1/keys/{userId}` answers one bundle object without `deviceId`, a
//! `Submission` whose field 2 names a user reaches the user's primary device, and
//! `GET /v1/gateway?token=<jwt>` runs a session that sends every envelope alone in
//! `WebSocketFrame` field 10 (never the v1 field 13), so unmodified legacy clients read it.
//! Legacy and v1 clients talk to each other through one server.
//!
//! A legacy account is kept in a `data::Member` whose `user` and `device` are both the
//! registration's (device-scoped) session, so the data-plane helpers work on it unchanged.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::data::{
    self, add_device, member, post_messages, queued_for, send_all, send_ok, send_text, texts, upload_body, uuid_bytes,
    Member,
};
use crate::common::gateway::{ticket, Event, Gateway, Handshake};
use crate::common::keys::{b64, b64_key, otpk_public, DeviceKeys};
use crate::common::raw::{request_bytes, RawConn};
use crate::common::server::JWT_SECRET;
use crate::common::wire::{self, error_code, Envelope, FailedSubmission, FramePayload, Submission};
use crate::common::{jwt, now_secs, random_uuid, uuid_version, Auth, Client, Resp, TestResult, TestServer, PASSWORD};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const NO_DEVICE: &str = "No device to upload keys to; create one with POST /v1/devices";
const WAIT: Duration = Duration::from_secs(5);

/// The four key fields whose presence makes a registration legacy.
const KEY_FIELDS: [&str; 4] = ["identityKey", "registrationId", "signedPreKey", "oneTimePreKeys"];

const DEVICE_SCOPE: &str = "Device-scoped token required";

// ---- accounts ----

/// A legacy registration body: `username`, `PASSWORD` and the valid key material of `seed`
/// with `n_otpk` OTPKs (ids 1..=n).
fn legacy_body(username: &str, seed: u8, n_otpk: usize) -> Value {
    let mut body = DeviceKeys::new(seed).request(n_otpk);
    body["username"] = json!(username);
    body["password"] = json!(PASSWORD);
    body
}

fn register_body(client: &Client, body: &Value) -> Res<Resp> {
    client.post("/v1/users").json(body).send()
}

/// Registers `username` the legacy way, asserting 201 with a device-scoped `AuthResponse`.
fn register_legacy(client: &Client, username: &str, seed: u8, n_otpk: usize) -> Res<Member> {
    let resp = register_body(client, &legacy_body(username, seed, n_otpk))?;
    let auth = Auth::from_json(&resp.expect_json(201)?)?;
    let device_id = auth
        .device_id
        .clone()
        .ok_or_else(|| format!("a legacy registration must answer a deviceId: {resp:?}"))?;
    Ok(Member {
        user: auth.clone(),
        id: uuid_bytes(&device_id)?,
        user_bytes: uuid_bytes(&auth.user_id)?,
        device: auth,
        device_id,
        seed,
    })
}

/// A token like the legacy server's: only `sub` and `exp` (valid here as a user-scoped token).
fn sub_only_token(user_id: &str) -> String {
    jwt::token(JWT_SECRET, user_id, None, now_secs() + 600)
}

// ---- keys ----

fn post_keys(client: &Client, token: &str, body: &Value) -> Res<Resp> {
    client.post("/v1/keys").bearer(token).json(body).send()
}

/// `POST /v1/keys`, asserting 200 with an empty body.
fn post_keys_ok(client: &Client, token: &str, body: &Value) -> TestResult {
    let resp = post_keys(client, token, body)?;
    assert_eq!(resp.status, 200, "legacy key upload failed: {resp:?}");
    assert!(resp.body.is_empty(), "legacy key upload answered a body: {resp:?}");
    Ok(())
}

fn fetch_legacy(client: &Client, token: &str, user_id: &str) -> Res<Resp> {
    client.get(&format!("/v1/keys/{user_id}")).bearer(token).send()
}

/// `GET /v1/keys/{userId}`, asserting 200 with a JSON object.
fn fetch_legacy_ok(client: &Client, token: &str, user_id: &str) -> Res<Value> {
    let v = fetch_legacy(client, token, user_id)?.expect_json(200)?;
    assert!(v.is_object(), "a legacy bundle is one object, not {v}");
    Ok(v)
}

/// Checks a legacy bundle of the keys of `seed` (SPK id `spk_id`, registration id `reg_id`):
/// exactly `registrationId`, `identityKey`, `signedPreKey` and `oneTimePreKey` (which may be
/// absent or null once the pool is empty), never `deviceId`. Returns the OTPK id.
fn check_legacy_bundle(b: &Value, seed: u8, spk_id: i32, reg_id: i32) -> Res<Option<i64>> {
    let obj = b.as_object().ok_or_else(|| format!("bundle is not an object: {b}"))?;
    assert!(obj.get("deviceId").is_none(), "a legacy bundle has no deviceId: {b}");
    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    fields.retain(|f| *f != "oneTimePreKey");
    fields.sort_unstable();
    assert_eq!(fields, vec!["identityKey", "registrationId", "signedPreKey"], "{b}");
    let mut keys = DeviceKeys::new(seed);
    keys.spk_key_id = spk_id;
    assert_eq!(b["registrationId"], json!(reg_id), "{b}");
    assert_eq!(b["identityKey"], json!(b64(&keys.identity_key())), "{b}");
    assert_eq!(
        b["signedPreKey"],
        json!({"keyId": spk_id, "publicKey": b64(&keys.spk_public), "signature": data::spk_signature(seed)}),
        "{b}"
    );
    match obj.get("oneTimePreKey") {
        None | Some(Value::Null) => Ok(None),
        Some(k) => {
            let o = k
                .as_object()
                .ok_or_else(|| format!("oneTimePreKey is not an object: {k}"))?;
            assert_eq!(o.len(), 2, "{k}");
            assert_eq!(o.get("publicKey"), Some(&json!(otpk_public())), "{k}");
            Ok(Some(k["keyId"].as_i64().ok_or_else(|| format!("no keyId in {k}"))?))
        }
    }
}

// ---- the legacy socket ----

/// The upgrade headers of a valid WebSocket handshake (for raw requests).
const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// A raw upgrade request `GET <path>`, answered as a plain HTTP response.
fn raw_upgrade(server: &TestServer, path: &str) -> Res<Resp> {
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", path, &UPGRADE, None))?;
    conn.read_response()
}

/// Asserts that a handshake on `path` is refused with 401 (this server's JSON error body): a
/// WebSocket client must not be upgraded, and the raw answer is the 401.
fn expect_401_handshake(server: &TestServer, path: &str) -> TestResult {
    match Gateway::handshake_path(server.main_port, path)? {
        Handshake::Upgraded(_) => return Err(format!("{path}: upgraded, expected 401").into()),
        Handshake::Refused(status, body) => {
            assert_eq!(status, 401, "{path}: {:?}", String::from_utf8_lossy(&body));
        }
    }
    raw_upgrade(server, path)?.expect_error_text(401, "Unauthorized")
}

fn open_path(server: &TestServer, path: &str) -> Res<Gateway> {
    match Gateway::handshake_path(server.main_port, path)? {
        Handshake::Upgraded(g) => Ok(*g),
        Handshake::Refused(status, body) => {
            Err(format!("{path}: refused with {status}: {:?}", String::from_utf8_lossy(&body)).into())
        }
    }
}

/// Opens the legacy socket `GET /v1/gateway?token=<token>`.
fn open_legacy(server: &TestServer, token: &str) -> Res<Gateway> {
    open_path(server, &format!("/v1/gateway?token={token}"))
}

/// The next binary message as raw bytes (pings and pongs skipped), read past the suite's
/// decoder so that the exact bytes a legacy decoder would see can be checked.
fn next_binary(gw: &mut Gateway, timeout: Duration) -> Res<Vec<u8>> {
    gw.ws.get_mut().set_read_timeout(Some(timeout))?;
    loop {
        match gw.ws.read()? {
            tungstenite::Message::Binary(b) => return Ok(b.to_vec()),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => return Err(format!("expected a binary frame, got {other:?}").into()),
        }
    }
}

/// Reads `n` envelopes from a legacy socket: each must come alone in a field-10 frame; an
/// `EnvelopeBatch` (field 13) or anything else is a failure. `PreKeyStatus` frames are recorded
/// in `gw.statuses` and skipped. With `ack`, each envelope is acked as it arrives.
fn collect_legacy(gw: &mut Gateway, n: usize, timeout: Duration, ack: bool) -> Res<Vec<Envelope>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("only {} of {n} envelopes arrived within {timeout:?}", out.len()).into());
        }
        match gw.next_event(left)? {
            None | Some(Event::Ping(_) | Event::Pong(_) | Event::Frame(FramePayload::PreKeyStatus { .. })) => {}
            Some(Event::Frame(FramePayload::LegacyEnvelope(e))) => {
                if ack {
                    gw.ack_envelopes(std::slice::from_ref(&e))?;
                }
                out.push(e);
            }
            Some(other) => {
                return Err(format!(
                    "legacy socket: unexpected {other:?} after {} of {n} envelopes",
                    out.len()
                )
                .into())
            }
        }
    }
    Ok(out)
}

const MARKER: &str = "marker:";

/// Everything still queued for the legacy account `m`, read through a fresh `?token=` socket
/// without a fixed wait: `m` sends itself a marker addressed to its own *user* id, and since
/// delivery is in order everything before it is the backlog. Only markers are acked.
fn legacy_queued(server: &TestServer, m: &Member) -> Res<Vec<Envelope>> {
    let client = server.client();
    let mut gw = open_legacy(server, m.token())?;
    let mark = format!("{MARKER}{}", random_uuid());
    send_text(&client, m.token(), &m.user_bytes, &mark)?;
    let mut before = Vec::new();
    loop {
        let env = collect_legacy(&mut gw, 1, WAIT, false)?
            .into_iter()
            .next()
            .ok_or("no envelope")?;
        if env.text().starts_with(MARKER) {
            gw.ack_envelopes(std::slice::from_ref(&env))?;
            if env.message == mark.as_bytes() {
                break;
            }
            continue;
        }
        before.push(env);
    }
    gw.close()?;
    Ok(before)
}

fn assert_from(env: &Envelope, sender: &Member, text: &str) {
    assert_eq!(env.text(), text, "{env:?}");
    assert_eq!(
        env.sender_id, sender.user_bytes,
        "sender_id must be the sending user: {env:?}"
    );
    assert_eq!(
        env.sender_device_id, sender.id,
        "sender_device_id must be the sending device: {env:?}"
    );
    assert_eq!(env.uuid().map(|u| u.get_version_num()), Some(7), "{env:?}");
}

// ---- 1. end to end ----

#[test]
fn legacy_clients_exchange_messages_over_the_token_socket() -> TestResult {
    // Goal: §17.2 items 2, 5, 6, 8 end to end — two legacy accounts: bob fetches alice's bundle
    // with `GET /v1/keys/{aliceUserId}` and sends to alice's USER id with an Idempotency-Key (a
    // retry with the same key queues nothing more); alice's `?token=` socket gets the welcome
    // status and then the envelope as exactly one field-10 frame (the bytes a legacy decoder
    // reads); a message arriving while connected comes the same way; an acked message is gone
    // on reconnect, an unacked one comes again, and once acked is gone too. Method: raw frame
    // bytes for the first socket, then `legacy_queued` (marker to self) for the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 5)?;
    let bob = register_legacy(&client, "bob", 2, 5)?;

    let bundle = fetch_legacy_ok(&client, bob.token(), alice.user_id())?;
    let otpk = check_legacy_bundle(&bundle, 1, 1, 4242)?;
    assert!(matches!(otpk, Some(1..=5)), "{bundle}");

    let key = random_uuid();
    let request = wire::encode_send_request(&[Submission::to(&alice.user_bytes, b"hello alice")]);
    for attempt in 0..2 {
        let resp = post_messages(&client, bob.token(), &key, request.clone())?;
        assert!(data::decode_200(&resp)?.is_empty(), "attempt {attempt}: {resp:?}");
        assert!(resp.body.is_empty(), "full success is a zero-byte body: {resp:?}");
    }

    let mut gw = open_legacy(&server, alice.token())?;
    // 4 OTPKs left (< 20): the welcome status `62 04 08 04 10 14` comes first.
    assert_eq!(next_binary(&mut gw, WAIT)?, vec![0x62, 0x04, 0x08, 0x04, 0x10, 0x14]);
    let frame = next_binary(&mut gw, WAIT)?;
    assert_eq!(frame.first(), Some(&0x52), "field 10, length-delimited: {frame:02x?}");
    let FramePayload::LegacyEnvelope(first) = wire::decode_frame(&frame)? else {
        return Err(format!("not a field-10 envelope frame: {frame:02x?}").into());
    };
    assert_eq!(
        wire::encode_frame(&FramePayload::LegacyEnvelope(first.clone())),
        frame,
        "the frame is one envelope and nothing else"
    );
    assert_from(&first, &bob, "hello alice");

    // Live delivery on the open socket, also one envelope per field-10 frame.
    send_text(&client, bob.token(), &alice.user_bytes, "second")?;
    let second = collect_legacy(&mut gw, 1, WAIT, false)?;
    assert_from(&second[0], &bob, "second");
    gw.ack_envelopes(std::slice::from_ref(&first))?;
    gw.close()?;

    assert_eq!(
        texts(&legacy_queued(&server, &alice)?),
        vec!["second"],
        "the acked message is gone, the unacked one comes again (and the retry queued nothing)"
    );
    let mut gw = open_legacy(&server, alice.token())?;
    assert_eq!(texts(&collect_legacy(&mut gw, 1, WAIT, true)?), vec!["second"]);
    gw.close()?;
    assert!(legacy_queued(&server, &alice)?.is_empty(), "acked on the second socket");
    Ok(())
}

#[test]
fn legacy_and_v1_clients_talk_to_each_other() -> TestResult {
    // Goal: §17.2 items 4, 5, 8 across the two APIs — a v1 client (registered the v1 way, device
    // from POST /v1/devices, ticket socket) sees the legacy account as one device in
    // `GET /v1/users/{id}` (an array with deviceId = the registration's device), sends to that
    // DEVICE id and the legacy socket receives it as a field-10 envelope; the legacy account
    // sends to the v1 device id and the v1 socket receives an EnvelopeBatch (field 13) with
    // sender_device_id set. Method: both sockets open while sending.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 2)?;
    let carol = member(&client, "carol", 0)?;
    let mut carol_gw = Gateway::connect(&server, carol.token())?;
    let mut alice_gw = open_legacy(&server, alice.token())?;

    let bundles = data::fetch_bundles_ok(&client, carol.token(), alice.user_id())?;
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let b = data::bundle_of(&bundles, &alice.device_id)?;
    assert_eq!(b["identityKey"], json!(b64(&DeviceKeys::new(1).identity_key())), "{b}");
    assert_eq!(b["registrationId"], json!(4242), "{b}");

    send_text(&client, carol.token(), &alice.id, "from v1")?;
    let got = collect_legacy(&mut alice_gw, 1, WAIT, true)?;
    assert_from(&got[0], &carol, "from v1");

    send_text(&client, alice.token(), &carol.id, "from legacy")?;
    // `collect_envelopes` fails on a field-10 frame: this must be a field-13 batch.
    let got = carol_gw.collect_envelopes(1, WAIT, true)?;
    assert_from(&got[0], &alice, "from legacy");
    assert_eq!(carol_gw.batch_sizes.len(), 1, "one EnvelopeBatch frame");
    alice_gw.close()?;
    assert!(legacy_queued(&server, &alice)?.is_empty());
    Ok(())
}

// ---- 2. registration ----

#[test]
fn legacy_registration_creates_the_user_and_its_primary_device() -> TestResult {
    // Goal: §17.2 item 2 — a body with the four key fields answers 201 with token,
    // refreshToken, expiresAt and deviceId (a UUID v7), the token carries that device_id, the
    // account lists exactly that device (no name) and its bundle holds the uploaded keys; a
    // body without key fields stays v1: no deviceId, a user-scoped token, no devices. Method:
    // one registration of each kind.
    let server = TestServer::start()?;
    let client = server.client();
    let resp = register_body(&client, &legacy_body("alice", 1, 3))?;
    let body = resp.expect_json(201)?;
    let mut fields: Vec<&str> = body
        .as_object()
        .ok_or("not an object")?
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["deviceId", "expiresAt", "refreshToken", "token"], "{body}");
    let alice = Auth::from_json(&body)?;
    let device_id = alice.device_id.clone().ok_or("no deviceId")?;
    assert_eq!(uuid_version(&device_id), Some(7), "{device_id}");
    assert_eq!(uuid_version(&alice.user_id), Some(7), "{}", alice.user_id);
    assert_ne!(device_id, alice.user_id);
    let claims = jwt::claims(&alice.token)?;
    assert_eq!(claims["device_id"], json!(device_id), "{claims}");
    assert_eq!(claims["exp"], json!(alice.expires_at), "{claims}");

    let devices = client.list_devices_ok(&alice.token)?;
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["deviceId"], json!(device_id));
    assert_eq!(devices[0]["name"], Value::Null);
    // The device token works on device routes at once.
    ticket(&client, &alice.token)?;
    let bundles = data::fetch_bundles_ok(&client, &alice.token, &alice.user_id)?;
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0]["deviceId"], json!(device_id));
    assert_eq!(
        bundles[0]["identityKey"],
        json!(b64(&DeviceKeys::new(1).identity_key()))
    );
    assert!(matches!(data::otpk_id(&bundles[0])?, Some(1..=3)), "{bundles:?}");

    let resp = client.register("bob", PASSWORD)?;
    let body = resp.expect_json(201)?;
    assert!(
        body.get("deviceId").is_none(),
        "a v1 registration has no deviceId: {body}"
    );
    let bob = Auth::from_json(&body)?;
    assert!(jwt::claims(&bob.token)?.get("device_id").is_none());
    assert!(client.list_devices_ok(&bob.token)?.is_empty());
    client
        .post("/v1/gateway/ticket")
        .bearer(&bob.token)
        .send()?
        .expect_error_text(403, DEVICE_SCOPE)?;
    Ok(())
}

#[test]
fn legacy_registration_needs_all_four_key_fields() -> TestResult {
    // Goal: the registration rule — any one key field makes the body legacy, and then
    // a missing one of the four is 400 naming it (issue 12; 422 before); nothing is created (the name stays free).
    // Method: the body without each field in turn, and bodies with only one key field.
    let server = TestServer::start()?;
    let client = server.client();
    let full = legacy_body("alice", 1, 1);
    for field in KEY_FIELDS {
        let mut body = full.clone();
        body.as_object_mut().map(|o| o.remove(field));
        let text = register_body(&client, &body)?.expect_error(400)?;
        assert!(text.contains(field), "missing {field}: {text}");
    }
    for field in KEY_FIELDS {
        let body = json!({"username": "alice", "password": PASSWORD, field: full[field].clone()});
        let resp = register_body(&client, &body)?;
        assert_eq!(resp.status, 400, "only {field}: {resp:?}");
        resp.expect_error(400)?;
    }
    client.login("alice", PASSWORD, None)?.expect_error(401)?;
    register_legacy(&client, "alice", 1, 1)?;
    Ok(())
}

/// The bad key bodies of `legacy_registration_rejects_bad_keys_like_device_creation`, with the
/// text each must get (with `--messaging-pre-keys-max 5`).
fn bad_key_bodies() -> Vec<(&'static str, Value, &'static str)> {
    let keys = DeviceKeys::new(1);
    let with = |n: usize, edit: &dyn Fn(&mut Value)| {
        let mut b = keys.request(n);
        edit(&mut b);
        b
    };
    let len32 = "Invalid key length: 32 (expected 33 bytes with 0x05 prefix)";
    let prefix = "Invalid key prefix (expected 0x05)";
    vec![
        (
            "identity length",
            with(0, &|b| b["identityKey"] = json!(b64_key(32, 5))),
            len32,
        ),
        (
            "identity prefix",
            with(0, &|b| b["identityKey"] = json!(b64_key(33, 4))),
            prefix,
        ),
        (
            "spk prefix",
            with(0, &|b| b["signedPreKey"]["publicKey"] = json!(b64_key(33, 4))),
            prefix,
        ),
        (
            "signature length",
            with(0, &|b| b["signedPreKey"]["signature"] = json!(b64(&[1u8; 63]))),
            "Invalid signature length: 63 (expected 64)",
        ),
        (
            "zero signature",
            with(0, &|b| b["signedPreKey"]["signature"] = json!(b64(&[0u8; 64]))),
            "Invalid signature",
        ),
        (
            "foreign signature",
            with(0, &|b| b["signedPreKey"]["signature"] = json!(data::spk_signature(2))),
            "Invalid signature",
        ),
        (
            "duplicate ids",
            with(0, &|b| {
                b["oneTimePreKeys"] = json!([
                    {"keyId": 3, "publicKey": otpk_public()},
                    {"keyId": 4, "publicKey": otpk_public()},
                    {"keyId": 3, "publicKey": b64_key(32, 5)},
                ])
            }),
            "Duplicate prekey ID: 3",
        ),
        (
            "otpk length",
            with(2, &|b| b["oneTimePreKeys"][1]["publicKey"] = json!(b64_key(32, 5))),
            len32,
        ),
        ("too many prekeys", keys.request(6), "Batch too large. Limit is 5"),
        (
            "too many and a bad signature",
            keys.request_with_signature(6, &[3u8; 64]),
            "Invalid signature",
        ),
    ]
}

#[test]
fn legacy_registration_rejects_bad_keys_like_device_creation() -> TestResult {
    // Goal: the rule that a legacy registration is validated like a device creation —
    // a bad identity key, SPK key, signature encoding, a signature that does not verify,
    // duplicate prekey ids and too many prekeys each get 400 with exactly the text
    // POST /v1/devices gives for the same keys; no rejected registration creates anything (the
    // name registers fine afterwards, the v1 user used for the comparison has no device).
    // Method: each bad body sent to POST /v1/devices and, with username and password, to
    // POST /v1/users; `--messaging-pre-keys-max 5`.
    let server = TestServer::start_with(&["--messaging-pre-keys-max", "5"])?;
    let client = server.client();
    let v1 = client.register_ok("v1_user")?;
    for (what, keys, expected) in bad_key_bodies() {
        let device_text = client.create_device(&v1.token, &keys)?.expect_error(400)?;
        assert_eq!(device_text, expected, "{what}: POST /v1/devices");
        let mut body = keys.clone();
        body["username"] = json!("rejected");
        body["password"] = json!(PASSWORD);
        let resp = register_body(&client, &body)?;
        assert_eq!(resp.status, 400, "{what}: {resp:?}");
        resp.expect_error_text(400, &device_text)?;
    }
    assert!(client.list_devices_ok(&v1.token)?.is_empty());
    client.login("rejected", PASSWORD, None)?.expect_error(401)?;
    let ok = register_legacy(&client, "rejected", 1, 5)?;
    assert_eq!(client.list_devices_ok(ok.token())?.len(), 1);
    Ok(())
}

#[test]
fn legacy_registration_keeps_the_account_rules() -> TestResult {
    // Goal: §17.1 "unchanged: password/username rules" and the 409 rule — with valid
    // keys, a bad username or short password is 400 with the v1 texts; a taken name (any case,
    // held by a legacy or a v1 account) is 409 `Username already exists` and creates neither
    // user nor device: the holder still logs in to its own single device with its own keys,
    // and the v1 holder still has no device. Method: registrations against two holders.
    let server = TestServer::start()?;
    let client = server.client();
    let pattern = "Username must be between 3 and 50 characters and can only contain letters, numbers, and underscores";
    for (name, password, text) in [
        ("ab", PASSWORD, pattern),
        ("bad-name", PASSWORD, pattern),
        ("", PASSWORD, "Username cannot be empty"),
        ("shorty", "too_short", "Password must be at least 12 characters long"),
    ] {
        let mut body = legacy_body(name, 1, 1);
        body["password"] = json!(password);
        register_body(&client, &body)?.expect_error_text(400, text)?;
        client.register(name, password)?.expect_error_text(400, text)?;
    }

    let holder = register_legacy(&client, "taken", 3, 1)?;
    let v1 = client.register_ok("v1_taken")?;
    for name in ["taken", "TAKEN", "v1_taken", "V1_Taken"] {
        register_body(&client, &legacy_body(name, 4, 2))?.expect_error_text(409, "Username already exists")?;
    }
    client
        .register("Taken", PASSWORD)?
        .expect_error_text(409, "Username already exists")?;

    assert!(
        client.list_devices_ok(&v1.token)?.is_empty(),
        "the v1 holder got a device"
    );
    let login = client.login_ok("taken", None)?;
    assert_eq!(login.user_id, holder.user_id());
    assert_eq!(login.device_id.as_deref(), Some(holder.device_id.as_str()));
    let devices = client.list_devices_ok(&login.token)?;
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["deviceId"], json!(holder.device_id));
    let bundle = fetch_legacy_ok(&client, &v1.token, holder.user_id())?;
    assert_eq!(
        check_legacy_bundle(&bundle, 3, 1, 4242)?,
        Some(1),
        "the holder's own keys"
    );
    let login = client.login_ok("v1_taken", None)?;
    assert_eq!(login.user_id, v1.user_id);
    assert!(login.device_id.is_none());
    Ok(())
}

// ---- 3. login ----

#[test]
fn legacy_login_is_bound_to_the_primary_device() -> TestResult {
    // Goal: §17.2 item 3 — a legacy account's login without deviceId answers that device's
    // deviceId and a token with its device_id claim that works on device routes; refreshing
    // (the login's or the registration's refresh token) keeps the binding; a second device
    // created later does not move it, and an explicit deviceId still picks that device. A v1
    // account's login without deviceId stays user-scoped (403 on POST /v1/gateway/ticket), also
    // after a refresh. Method: logins, refreshes and ticket requests.
    let server = TestServer::start()?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let bound = |auth: &Auth, what: &str| -> TestResult {
        assert_eq!(auth.user_id, alice.user_id(), "{what}");
        assert_eq!(auth.device_id.as_deref(), Some(alice.device_id.as_str()), "{what}");
        let claims = jwt::claims(&auth.token)?;
        assert_eq!(claims["device_id"], json!(alice.device_id), "{what}: {claims}");
        ticket(&client, &auth.token)?;
        Ok(())
    };
    let login = client.login_ok("ALICE", None)?;
    bound(&login, "login")?;
    let refreshed = Auth::from_json(&client.refresh(&login.refresh_token)?.expect_json(200)?)?;
    bound(&refreshed, "refresh of the login")?;
    let refreshed = Auth::from_json(&client.refresh(&alice.device.refresh_token)?.expect_json(200)?)?;
    bound(&refreshed, "refresh of the registration")?;

    let second = client.create_device_ok(&login.token, Some("tablet"))?;
    let second_id = second.device_id.clone().ok_or("no deviceId")?;
    bound(&client.login_ok("alice", None)?, "login after a second device")?;
    let explicit = client.login_ok("alice", Some(&second_id))?;
    assert_eq!(explicit.device_id.as_deref(), Some(second_id.as_str()));

    let bob = member(&client, "bob", 0)?;
    let login = client.login_ok("bob", None)?;
    let refreshed = Auth::from_json(&client.refresh(&login.refresh_token)?.expect_json(200)?)?;
    for auth in [&login, &refreshed] {
        assert!(auth.device_id.is_none(), "{auth:?}");
        assert!(jwt::claims(&auth.token)?.get("device_id").is_none());
        client
            .post("/v1/gateway/ticket")
            .bearer(&auth.token)
            .send()?
            .expect_error_text(403, DEVICE_SCOPE)?;
    }
    assert_eq!(
        client.login_ok("bob", Some(&bob.device_id))?.device_id,
        Some(bob.device_id)
    );
    Ok(())
}

// ---- 4. POST /v1/keys ----

#[test]
fn legacy_key_upload_refills_the_primary_device() -> TestResult {
    // Goal: §17.2 item 7 — `POST /v1/keys` takes the body of POST /v1/devices/keys with its
    // rules: a refill must raise the SPK id (400 with the same text otherwise), identityKey
    // needs registrationId; the device token uploads to its device, and a token with only
    // `sub` and `exp` (as legacy tokens were) uploads to the primary device; a user without
    // devices gets 400 (the legacy contract has no 403 here); no token is 401. Method: uploads, then bundles (v1 array, to see which
    // device changed).
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 1)?;
    let bob = register_legacy(&client, "bob", 2, 0)?;

    post_keys_ok(&client, alice.token(), &upload_body(1, None, 2, 10, 1))?;
    post_keys(&client, alice.token(), &upload_body(1, None, 2, 11, 1))?
        .expect_error_text(400, "Signed Pre-Key ID 2 must be greater than current ID 2")?;
    post_keys(&client, alice.token(), &upload_body(1, None, 1, 11, 1))?
        .expect_error_text(400, "Signed Pre-Key ID 1 must be greater than current ID 2")?;
    let mut no_reg = upload_body(1, Some(1), 3, 11, 0);
    no_reg.as_object_mut().map(|o| o.remove("registrationId"));
    post_keys(&client, alice.token(), &no_reg)?
        .expect_error_text(400, "registrationId is required when identityKey is provided")?;
    let mut zero_sig = upload_body(1, None, 3, 11, 0);
    zero_sig["signedPreKey"]["signature"] = json!(b64(&[0u8; 64]));
    post_keys(&client, alice.token(), &zero_sig)?.expect_error_text(400, "Invalid signature")?;
    let bundle = fetch_legacy_ok(&client, bob.token(), alice.user_id())?;
    let mut handed = vec![check_legacy_bundle(&bundle, 1, 2, 4242)?];

    let legacy_token = sub_only_token(alice.user_id());
    assert!(jwt::claims(&legacy_token)?.get("device_id").is_none());
    post_keys_ok(&client, &legacy_token, &upload_body(1, None, 3, 20, 1))?;
    post_keys(&client, &legacy_token, &upload_body(1, None, 3, 21, 1))?
        .expect_error_text(400, "Signed Pre-Key ID 3 must be greater than current ID 3")?;
    let bundles = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let b = data::bundle_of(&bundles, &alice.device_id)?;
    assert_eq!(b["signedPreKey"]["keyId"], json!(3));
    handed.push(data::otpk_id(b)?);
    // The OTPKs of both accepted uploads went to that device: all fetches hand out exactly the
    // registration's key 1 and the uploaded 10 and 20, then nothing.
    loop {
        let id = check_legacy_bundle(&fetch_legacy_ok(&client, bob.token(), alice.user_id())?, 1, 3, 4242)?;
        handed.push(id);
        if id.is_none() || handed.len() > 4 {
            break;
        }
    }
    handed.sort_unstable();
    assert_eq!(handed, vec![None, Some(1), Some(10), Some(20)]);

    let lonely = client.register_ok("lonely")?;
    post_keys(&client, &lonely.token, &upload_body(1, Some(1), 1, 1, 0))?.expect_error_text(400, NO_DEVICE)?;
    let resp = client.post("/v1/keys").json(&upload_body(1, None, 9, 30, 0)).send()?;
    resp.expect_error_text(401, "Unauthorized")?;
    Ok(())
}

#[test]
fn legacy_takeover_wipes_the_queue_and_closes_the_token_socket() -> TestResult {
    // Goal: §17.2 item 7 with §6.3 takeover — a `POST /v1/keys` with a new identity key, made
    // with a `sub`+`exp` token (so on the primary device), answers 200, closes the open
    // `?token=` socket of the account, wipes its pending messages, and the legacy bundle shows
    // the new identity, registration id, SPK and only the new OTPKs; another account's socket
    // stays open; the old device token still works. Method: a message delivered unacked on the
    // socket before the takeover.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 3)?;
    let bob = register_legacy(&client, "bob", 2, 0)?;
    send_text(&client, bob.token(), &alice.user_bytes, "wiped")?;
    let mut alice_gw = open_legacy(&server, alice.token())?;
    assert_eq!(texts(&collect_legacy(&mut alice_gw, 1, WAIT, false)?), vec!["wiped"]);
    let mut bob_gw = open_legacy(&server, bob.token())?;

    post_keys_ok(
        &client,
        &sub_only_token(alice.user_id()),
        &upload_body(3, Some(77), 1, 100, 2),
    )?;
    assert!(
        alice_gw.wait_closed(WAIT)?,
        "the taken-over device's legacy socket must be closed"
    );
    bob_gw.expect_pong(b"still open", WAIT)?;

    assert!(
        legacy_queued(&server, &alice)?.is_empty(),
        "takeover must wipe the queue"
    );
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let bundle = fetch_legacy_ok(&client, bob.token(), alice.user_id())?;
        got.insert(check_legacy_bundle(&bundle, 3, 1, 77)?);
    }
    assert_eq!(
        got,
        [Some(100), Some(101), None].into_iter().collect(),
        "old OTPKs are gone"
    );
    Ok(())
}

// ---- 5. GET /v1/keys/{userId} ----

#[test]
fn legacy_bundle_fetch_consumes_one_prekey_per_fetch() -> TestResult {
    // Goal: §17.2 item 6 — `GET /v1/keys/{userId}` answers the primary device's bundle as one
    // object without deviceId, to any valid token (a legacy device token, a v1 user-scoped
    // token, a `sub`+`exp` token); each fetch consumes exactly one OTPK: with 3 keys three
    // fetches give ids {1,2,3} and the fourth has no key; the fetches raise PreKeyLow, so the
    // account's open legacy socket receives a PreKeyStatus ending at count 0. Method: four
    // fetches with different tokens while the socket is open (debounce 50 ms).
    let server = data::server_with(&["--ws-prekey-debounce-interval-ms", "50"])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 3)?;
    let bob = register_legacy(&client, "bob", 2, 0)?;
    let carol = client.register_ok("carol")?;
    let mut gw = open_legacy(&server, alice.token())?;
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 3,
            threshold: 20
        })
    );

    let crafted = sub_only_token(bob.user_id());
    let mut ids = Vec::new();
    for token in [bob.token(), carol.token.as_str(), crafted.as_str(), bob.token()] {
        let resp = fetch_legacy(&client, token, alice.user_id())?;
        assert!(!resp.text().contains("deviceId"), "{resp:?}");
        ids.push(check_legacy_bundle(&resp.expect_json(200)?, 1, 1, 4242)?);
    }
    let handed: BTreeSet<Option<i64>> = ids[..3].iter().copied().collect();
    assert_eq!(handed, [Some(1), Some(2), Some(3)].into_iter().collect(), "{ids:?}");
    assert_eq!(ids[3], None, "the pool is empty after three fetches");

    let deadline = Instant::now() + WAIT;
    while gw.statuses.last() != Some(&(0, 20)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || gw.next_frame(left)?.is_none() {
            return Err(format!("no PreKeyStatus with count 0; saw {:?}", gw.statuses).into());
        }
    }
    Ok(())
}

#[test]
fn legacy_bundle_fetch_errors_and_v1_targets() -> TestResult {
    // Goal: §17.2 items 4 and 6 — a v1 user's bundle is its device's (the oldest with keys), as
    // one object without deviceId; an unknown user and a user without devices are 404 `Not
    // found`; a malformed id is 400 `Invalid URL: Cannot parse…`; no token or an expired one is
    // 401. Method: one fetch per case with a legacy device token.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = register_legacy(&client, "bob", 2, 0)?;
    let dave = member(&client, "dave", 1)?;
    add_device(&client, &dave.user, 7, 1)?;
    let lonely = client.register_ok("lonely")?;

    let bundle = fetch_legacy_ok(&client, bob.token(), dave.user_id())?;
    assert_eq!(
        check_legacy_bundle(&bundle, 1, 1, 4242)?,
        Some(1),
        "dave's first device"
    );
    let bundle = fetch_legacy_ok(&client, bob.token(), dave.user_id())?;
    assert_eq!(
        check_legacy_bundle(&bundle, 1, 1, 4242)?,
        None,
        "still the first device"
    );

    fetch_legacy(&client, bob.token(), &random_uuid())?.expect_error_text(404, "Not found")?;
    fetch_legacy(&client, bob.token(), &lonely.user_id)?.expect_error_text(404, "Not found")?;
    let text = fetch_legacy(&client, bob.token(), "not-a-uuid")?.expect_error(400)?;
    assert!(text.starts_with("Invalid URL: Cannot parse"), "{text}");
    let resp = client.get(&format!("/v1/keys/{}", dave.user_id())).send()?;
    resp.expect_error_text(401, "Unauthorized")?;
    let expired = jwt::token(JWT_SECRET, bob.user_id(), Some(&bob.device_id), now_secs() - 150);
    fetch_legacy(&client, &expired, dave.user_id())?.expect_error_text(401, "Unauthorized")?;
    Ok(())
}

// ---- 6. messaging ----

#[test]
fn submission_targets_resolve_to_devices_then_users() -> TestResult {
    // Goal: §17.2 item 5 — a submission whose field 2 is neither a device nor a user, or a user
    // without devices, fails with code 1 (`INVALID_DEVICE`, `Device not found`), the rest of the
    // request is delivered; a device id reaches that device even when it is not its user's
    // primary one; a user id reaches the primary (oldest) device only; a legacy account reaches
    // itself through its user id. Method: one request from a legacy sender with all the cases,
    // then the queues.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let bob = register_legacy(&client, "bob", 2, 0)?;
    let carol1 = member(&client, "carol", 0)?;
    let carol2 = add_device(&client, &carol1.user, 2, 0)?;
    let lonely = client.register_ok("lonely")?;

    let unknown = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"nobody");
    let deviceless = Submission::to(&uuid_bytes(&lonely.user_id)?, b"no device");
    let failed = send_ok(
        &client,
        bob.token(),
        &[
            unknown.clone(),
            Submission::to(&alice.user_bytes, b"to alice"),
            Submission::to(&carol2.id, b"to carol's second device"),
            deviceless.clone(),
            Submission::to(&carol1.user_bytes, b"to carol"),
            Submission::to(&bob.user_bytes, b"to myself"),
        ],
    )?;
    let invalid = |s: &Submission| FailedSubmission {
        submission_id: s.submission_id.clone(),
        error_code: error_code::INVALID_DEVICE,
        error_message: "Device not found".into(),
    };
    assert_eq!(failed, vec![invalid(&unknown), invalid(&deviceless)]);
    assert_eq!(texts(&legacy_queued(&server, &alice)?), vec!["to alice"]);
    assert_eq!(texts(&queued_for(&server, &carol2)?), vec!["to carol's second device"]);
    assert_eq!(texts(&queued_for(&server, &carol1)?), vec!["to carol"]);
    assert_eq!(texts(&legacy_queued(&server, &bob)?), vec!["to myself"]);
    Ok(())
}

#[test]
fn retried_submission_to_a_user_id_is_queued_once() -> TestResult {
    // Goal: §17.2 item 10 — dedup stays per (sender device, submission id, target device): a
    // submission to a user id retried with the same submission id under a new Idempotency-Key
    // is accepted (200, empty) but queued once; the same submission id sent to that user's
    // device id names the same target device and is dropped too; another sender's equal
    // submission id is a different message. Method: four requests, then the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let bob = register_legacy(&client, "bob", 2, 0)?;
    let carol = member(&client, "carol", 0)?;
    let sid = *uuid::Uuid::new_v4().as_bytes();
    send_all(
        &client,
        bob.token(),
        &[Submission::new(&sid, &alice.user_bytes, b"once")],
    )?;
    send_all(
        &client,
        bob.token(),
        &[Submission::new(&sid, &alice.user_bytes, b"retry")],
    )?;
    send_all(
        &client,
        bob.token(),
        &[Submission::new(&sid, &alice.id, b"by device id")],
    )?;
    send_all(
        &client,
        carol.token(),
        &[Submission::new(&sid, &alice.user_bytes, b"from carol")],
    )?;
    assert_eq!(texts(&legacy_queued(&server, &alice)?), vec!["once", "from carol"]);
    Ok(())
}

#[test]
fn one_request_to_a_user_and_its_device_keeps_its_order() -> TestResult {
    // (Found a bug in 5d4f60e, where user-addressed submissions were appended in a second pass
    // behind the device-addressed ones; targets are now resolved before the append.)
    //
    // Goal: §8.5 "in order per device" and the v1 rules this server keeps for one request (the
    // messages of a request keep their order, delivery.rs; of two equal submission ids to one
    // target the first is kept, messages.rs) also when one request names the same device by
    // its user id and by its device id. Method: [user id, device id, user id] in one request,
    // read on the legacy socket; then [user id "first", device id "second"] with one
    // submission id.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let carol = member(&client, "carol", 0)?;
    send_all(
        &client,
        carol.token(),
        &[
            Submission::to(&alice.user_bytes, b"m1"),
            Submission::to(&alice.id, b"m2"),
            Submission::to(&alice.user_bytes, b"m3"),
        ],
    )?;
    let mut gw = open_legacy(&server, alice.token())?;
    let got = collect_legacy(&mut gw, 3, WAIT, true)?;
    gw.close()?;
    let ids: Vec<Vec<u8>> = got.iter().map(|e| e.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "envelopes come in id (mailbox) order");

    let sid = *uuid::Uuid::new_v4().as_bytes();
    send_all(
        &client,
        carol.token(),
        &[
            Submission::new(&sid, &alice.user_bytes, b"first"),
            Submission::new(&sid, &alice.id, b"second"),
        ],
    )?;
    let kept = legacy_queued(&server, &alice)?;
    assert_eq!(
        (texts(&got), texts(&kept)),
        (
            vec!["m1".to_string(), "m2".into(), "m3".into()],
            vec!["first".to_string()]
        ),
        "request order, and the first of two duplicates, must be kept"
    );
    Ok(())
}

// ---- 7. gateway ----

#[test]
fn token_socket_refuses_invalid_tokens_and_deleted_devices() -> TestResult {
    // Goal: §17.2 item 8 — `?token=` with garbage, an empty token, an expired token or one
    // signed with another secret is 401 (this server's JSON body) and never upgraded; so is
    // the still-unexpired token of a deleted device (legacy account or v1 device), a
    // `sub`+`exp` token of a user whose devices are all gone, and a v1 user token without
    // devices. Method: raw upgrade requests.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let dave = member(&client, "dave", 0)?;
    let lonely = client.register_ok("lonely")?;
    let exp = now_secs() + 600;
    let expired = jwt::token(JWT_SECRET, alice.user_id(), Some(&alice.device_id), now_secs() - 150);
    let foreign = jwt::token("another-secret", alice.user_id(), Some(&alice.device_id), exp);
    for token in ["garbage", "", expired.as_str(), foreign.as_str(), lonely.token.as_str()] {
        expect_401_handshake(&server, &format!("/v1/gateway?token={token}"))?;
    }
    // Control: the same upgrade request with a good token is upgraded.
    open_legacy(&server, alice.token())?.close()?;

    assert_eq!(client.delete_device(&dave.user.token, &dave.device_id)?.status, 200);
    expect_401_handshake(&server, &format!("/v1/gateway?token={}", dave.token()))?;
    assert_eq!(client.delete_device(alice.token(), &alice.device_id)?.status, 200);
    expect_401_handshake(&server, &format!("/v1/gateway?token={}", alice.token()))?;
    let sub_only = sub_only_token(alice.user_id());
    expect_401_handshake(&server, &format!("/v1/gateway?token={sub_only}"))?;
    // A user token from after the deletion (one from before is revoked with it: issue 19).
    let after = client.login_ok("alice", None)?;
    expect_401_handshake(&server, &format!("/v1/gateway?token={}", after.token))?;
    fetch_legacy(&client, &after.token, alice.user_id())?.expect_error_text(404, "Not found")?;
    Ok(())
}

#[test]
fn a_ticket_wins_over_a_token() -> TestResult {
    // Goal: §17.2 item 8 "prefer ticket" and "?ticket= still gives EnvelopeBatch frames" —
    // with both a v1 device's ticket and a legacy account's token (in either order) the socket
    // is the ticket's device's, in EnvelopeBatch (field 13) frames; an unknown ticket next to
    // a good token is 401; a legacy account's own device connected with a ticket gets batches
    // too. Method: messages queued for each device before connecting.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = register_legacy(&client, "alice", 1, 0)?;
    let carol = member(&client, "carol", 0)?;
    send_all(
        &client,
        alice.token(),
        &[
            Submission::to(&carol.id, b"for carol"),
            Submission::to(&carol.id, b"again"),
        ],
    )?;
    send_text(&client, carol.token(), &alice.user_bytes, "for alice")?;

    let both = [
        format!(
            "/v1/gateway?ticket={}&token={}",
            ticket(&client, carol.token())?,
            alice.token()
        ),
        format!(
            "/v1/gateway?token={}&ticket={}",
            alice.token(),
            ticket(&client, carol.token())?
        ),
    ];
    for path in &both {
        let mut gw = open_path(&server, path)?;
        let got = gw.collect_envelopes(2, WAIT, false)?;
        assert_eq!(texts(&got), vec!["for carol", "again"], "{path}");
        assert_eq!(gw.batch_sizes.len(), 1, "{path}: one EnvelopeBatch for both");
        gw.close()?;
    }
    expect_401_handshake(
        &server,
        &format!("/v1/gateway?ticket={}&token={}", random_uuid(), alice.token()),
    )?;

    let mut gw = Gateway::connect(&server, alice.token())?;
    assert_eq!(texts(&gw.collect_envelopes(1, WAIT, false)?), vec!["for alice"]);
    assert_eq!(gw.batch_sizes.len(), 1);
    Ok(())
}

#[test]
fn token_socket_sends_the_welcome_status_when_prekeys_are_low() -> TestResult {
    // Goal: §17.2 item 8 "the PreKeyStatus welcome frame is identical" with §8.4 — a legacy
    // account with 3 OTPKs gets `PreKeyStatus {3, 20}` (bytes `62 04 08 03 10 14`) as the very
    // first frame of its `?token=` socket; one with 20 (= threshold) gets none: its first frame
    // is the field-10 envelope of a message sent after connecting. Method: two accounts.
    let server = data::server_with(&[])?;
    let client = server.client();
    let low = register_legacy(&client, "low", 1, 3)?;
    let full = register_legacy(&client, "full", 2, 20)?;

    let mut gw = open_legacy(&server, low.token())?;
    assert_eq!(next_binary(&mut gw, WAIT)?, vec![0x62, 0x04, 0x08, 0x03, 0x10, 0x14]);

    let mut gw = open_legacy(&server, full.token())?;
    send_text(&client, low.token(), &full.user_bytes, "first")?;
    match gw.next_frame(WAIT)? {
        Some(FramePayload::LegacyEnvelope(e)) => assert_from(&e, &low, "first"),
        other => return Err(format!("expected the envelope as first frame, got {other:?}").into()),
    }
    assert!(gw.statuses.is_empty(), "{:?}", gw.statuses);
    Ok(())
}

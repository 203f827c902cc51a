//! Key validation at device creation (BEHAVIOR §5.1 steps 1-4, §6.1-6.2, TEST-CASES D37-D38,
//! S171-S172, S174): duplicate OTPK ids, key and signature encodings with their exact messages,
//! the order of those checks, XEdDSA signature verification over both message forms and both
//! Edwards sign bits, the OTPK batch limit, and that a rejected creation leaves no device.

use serde_json::{json, Value};

use crate::common::keys::{b64, b64_key, otpks, valid_device_request, DeviceKeys, SignOver};
use crate::common::{Client, TestResult, TestServer};

const BAD_LENGTH_32: &str = "Invalid key length: 32 (expected 33 bytes with 0x05 prefix)";
const BAD_PREFIX: &str = "Invalid key prefix (expected 0x05)";

/// Asserts a creation is rejected with 400 and exactly `text`, and that no device was created.
fn rejects(client: &Client, token: &str, body: &Value, text: &str) -> TestResult {
    client.create_device(token, body)?.expect_error_text(400, text)?;
    assert!(
        client.list_devices_ok(token)?.is_empty(),
        "a rejected creation left a device ({text})"
    );
    Ok(())
}

#[test]
fn signature_over_either_message_form_is_accepted() -> TestResult {
    // Goal: D37-D38, §6.2 step 4 — an SPK signature over the 33-byte prefixed key and one over
    // the 32-byte raw key are both accepted. Method: one device each.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("alice")?;
    let keys = DeviceKeys::new(9);
    client
        .create_device(&user.token, &keys.request_signed_over(0, SignOver::Prefixed33))?
        .expect_json(201)?;
    client
        .create_device(&user.token, &keys.request_signed_over(0, SignOver::Raw32))?
        .expect_json(201)?;
    Ok(())
}

#[test]
fn identity_keys_of_both_edwards_signs_are_accepted() -> TestResult {
    // Goal: S174, §6.2 step 3 — the Montgomery form loses the Edwards sign, so the verifier must
    // try both; keys of either sign verify, over both message forms. Method: pick one identity
    // key of each sign and create a device with each.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("bob")?;
    for bit in [0u8, 1] {
        let keys = DeviceKeys::with_edwards_sign(bit);
        for over in [SignOver::Prefixed33, SignOver::Raw32] {
            let resp = client.create_device(&user.token, &keys.request_signed_over(0, over))?;
            assert_eq!(resp.status, 201, "sign bit {bit}, {over:?}: {resp:?}");
        }
    }
    Ok(())
}

#[test]
fn xeddsa_sign_bit_in_the_signature_is_ignored() -> TestResult {
    // Goal: §6.2 step 2 — the top bit of the signature's last byte carries the XEdDSA sign and
    // is cleared before verification, so a valid signature with that bit set still verifies.
    // Method: set bit 255 of a valid signature.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("carol")?;
    let keys = DeviceKeys::new(3);
    let mut sig = keys.sign_spk(SignOver::Prefixed33);
    sig[63] |= 0x80;
    client
        .create_device(&user.token, &keys.request_with_signature(0, &sig))?
        .expect_json(201)?;
    Ok(())
}

#[test]
fn bad_signatures_are_rejected() -> TestResult {
    // Goal: §5.1 step 4 — a signature that does not verify is 400 `Invalid signature` and rolls
    // the device back. Method: zero bytes, a flipped bit, a signature by another key, a
    // signature over another message, and a valid signature paired with another SPK.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("dave")?;
    let keys = DeviceKeys::new(4);
    let good = keys.sign_spk(SignOver::Prefixed33);

    rejects(
        &client,
        &user.token,
        &keys.request_with_signature(0, &[0u8; 64]),
        "Invalid signature",
    )?;
    let mut flipped = good;
    flipped[5] ^= 0x01;
    rejects(
        &client,
        &user.token,
        &keys.request_with_signature(0, &flipped),
        "Invalid signature",
    )?;
    let stranger = DeviceKeys::new(5).sign_spk(SignOver::Prefixed33);
    rejects(
        &client,
        &user.token,
        &keys.request_with_signature(0, &stranger),
        "Invalid signature",
    )?;
    let mut other_spk = DeviceKeys::new(4);
    other_spk.spk_public = DeviceKeys::new(6).spk_public;
    rejects(
        &client,
        &user.token,
        &other_spk.request_with_signature(0, &good),
        "Invalid signature",
    )?;
    // The right signature with another identity key.
    let mut body = keys.request(0);
    body["identityKey"] = json!(b64(&DeviceKeys::new(7).identity_key()));
    rejects(&client, &user.token, &body, "Invalid signature")?;
    // A non-canonical s (≥ ℓ) must not verify: add ℓ to s.
    let mut high_s = good;
    add_group_order(&mut high_s[32..]);
    if high_s[63] & 0x80 == 0 {
        rejects(
            &client,
            &user.token,
            &keys.request_with_signature(0, &high_s),
            "Invalid signature",
        )?;
    }
    Ok(())
}

/// Adds ℓ = 2^252 + 27742317777372353535851937790883648493 to a little-endian 32-byte scalar.
fn add_group_order(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = *b as u16 + l as u16 + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
}

/// `body` with the value at `path` (object keys, or array indexes as digits) replaced by `v`.
fn with_field(body: &Value, path: &[&str], v: Value) -> Value {
    let mut body = body.clone();
    let mut slot = &mut body;
    for p in path {
        slot = if let Ok(i) = p.parse::<usize>() {
            &mut slot[i]
        } else {
            &mut slot[*p]
        };
    }
    *slot = v;
    body
}

#[test]
fn key_encoding_errors_have_the_documented_messages() -> TestResult {
    // Goal: §6.1 — wrong length, wrong prefix and bad base64 are 400 with the fixed texts (the
    // decoder's text for base64, not pinned here), for the identity key, the SPK and OTPKs.
    // Method: one field broken per request.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("erin")?;
    let keys = DeviceKeys::new(8);
    let valid = keys.request(2);

    for field in [
        &["identityKey"][..],
        &["signedPreKey", "publicKey"],
        &["oneTimePreKeys", "1", "publicKey"],
    ] {
        let set = |v: Value| with_field(&valid, field, v);
        rejects(&client, &user.token, &set(json!(b64_key(32, 0x05))), BAD_LENGTH_32)?;
        let len34 = "Invalid key length: 34 (expected 33 bytes with 0x05 prefix)";
        rejects(&client, &user.token, &set(json!(b64_key(34, 0x05))), len34)?;
        let len0 = "Invalid key length: 0 (expected 33 bytes with 0x05 prefix)";
        rejects(&client, &user.token, &set(json!("")), len0)?;
        rejects(&client, &user.token, &set(json!(b64_key(33, 0x04))), BAD_PREFIX)?;
        rejects(&client, &user.token, &set(json!(b64_key(33, 0x00))), BAD_PREFIX)?;

        // Base64 that the standard padded alphabet rejects: symbols, whitespace, bad padding,
        // the URL-safe alphabet. (33 bytes encode to 44 symbols without padding, so padding and
        // trailing-bit cases are exercised on the signature, in the next test.)
        let std_text = b64(&keys.identity_key());
        let with_space = format!("{} {}", &std_text[..20], &std_text[20..]);
        let extra_pad = format!("{std_text}=");
        for bad in [
            "!!!!",
            "not base64 at all",
            with_space.as_str(),
            extra_pad.as_str(),
            "BQ=",
            "====",
        ] {
            let resp = client.create_device(&user.token, &set(json!(bad)))?;
            let text = resp.expect_error(400)?;
            assert!(!text.is_empty(), "{field:?} = {bad:?}: empty error text");
        }
        // 0x05 then 0xfb…: its standard encoding has both `+` and `/`, so the URL-safe form
        // differs, and a decoder lenient about the alphabet would accept it as a valid key.
        let mut fb = [0xfbu8; 33];
        fb[0] = 0x05;
        let url_safe = b64(&fb).replace('+', "-").replace('/', "_");
        assert!(url_safe.contains('-') && url_safe.contains('_'));
        client
            .create_device(&user.token, &set(json!(url_safe)))?
            .expect_error(400)?;
    }
    assert!(client.list_devices_ok(&user.token)?.is_empty());
    // The untouched body is fine (the control).
    client.create_device(&user.token, &valid)?.expect_json(201)?;
    Ok(())
}

#[test]
fn signature_encoding_errors_are_rejected() -> TestResult {
    // Goal: §6.1 — signatures of the wrong length are 400 `Invalid signature length: <n>
    // (expected 64)`, and non-canonical base64 of a right-length signature is 400 as well.
    // Method: one bad signature per request.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("eric")?;
    let keys = DeviceKeys::new(8);
    let valid = keys.request(0);
    let set = |v: Value| with_field(&valid, &["signedPreKey", "signature"], v);

    for len in [63usize, 65, 0, 32] {
        let text = format!("Invalid signature length: {len} (expected 64)");
        rejects(&client, &user.token, &set(json!(b64(&vec![1u8; len]))), &text)?;
    }
    client
        .create_device(&user.token, &set(json!("%%%")))?
        .expect_error(400)?;

    // A 64-byte signature encodes to 86 symbols plus `==`; the last symbol carries 4 unused
    // bits. Without padding, or with those bits set, the encoding is not canonical standard
    // base64 and must be rejected even though a lenient decoder would get the right bytes.
    let sig_text = b64(&keys.sign_spk(SignOver::Prefixed33));
    assert!(sig_text.ends_with("=="));
    let unpadded = sig_text.trim_end_matches('=').to_string();
    let mut noncanonical = sig_text.clone();
    let idx = noncanonical.len() - 3;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet
        .iter()
        .position(|&a| a == noncanonical.as_bytes()[idx])
        .ok_or("not base64")?;
    assert_eq!(pos & 0b1111, 0, "canonical encoding has zero trailing bits");
    noncanonical.replace_range(idx..idx + 1, &(alphabet[pos | 0b1111] as char).to_string());
    let one_pad = format!("{unpadded}=");
    for bad in [unpadded.as_str(), noncanonical.as_str(), one_pad.as_str()] {
        let resp = client.create_device(&user.token, &set(json!(bad)))?;
        assert_eq!(resp.status, 400, "signature {bad:?}: {resp:?}");
        resp.expect_error(400)?;
    }
    assert!(client.list_devices_ok(&user.token)?.is_empty());
    client.create_device(&user.token, &valid)?.expect_json(201)?;
    Ok(())
}

#[test]
fn validation_order_is_duplicates_then_fields_in_order() -> TestResult {
    // Goal: §5.1 steps 1-2 — duplicate OTPK ids are reported before any key is decoded, then
    // identityKey, SPK public key, SPK signature and OTPKs in array order. Method: bodies with
    // several defects at once; the first in that order must be the one reported.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("frank")?;
    let keys = DeviceKeys::new(10);

    let mut body = keys.request(0);
    body["oneTimePreKeys"] = json!([
        {"keyId": 7, "publicKey": b64_key(33, 0x05)},
        {"keyId": 7, "publicKey": b64_key(33, 0x05)},
    ]);
    body["identityKey"] = json!(b64_key(32, 0x05));
    rejects(&client, &user.token, &body, "Duplicate prekey ID: 7")?;

    let mut body = keys.request(0);
    body["identityKey"] = json!(b64_key(33, 0x04));
    body["signedPreKey"]["publicKey"] = json!(b64_key(32, 0x05));
    body["signedPreKey"]["signature"] = json!(b64(&[0u8; 10]));
    rejects(&client, &user.token, &body, BAD_PREFIX)?;

    let mut body = keys.request(0);
    body["signedPreKey"]["publicKey"] = json!(b64_key(32, 0x05));
    body["signedPreKey"]["signature"] = json!(b64(&[0u8; 10]));
    rejects(&client, &user.token, &body, BAD_LENGTH_32)?;

    let mut body = keys.request(2);
    body["signedPreKey"]["signature"] = json!(b64(&[0u8; 10]));
    body["oneTimePreKeys"][0]["publicKey"] = json!(b64_key(33, 0x04));
    rejects(
        &client,
        &user.token,
        &body,
        "Invalid signature length: 10 (expected 64)",
    )?;

    let mut body = keys.request(3);
    body["oneTimePreKeys"][1]["publicKey"] = json!(b64_key(33, 0x04));
    body["oneTimePreKeys"][2]["publicKey"] = json!(b64_key(32, 0x05));
    rejects(&client, &user.token, &body, BAD_PREFIX)?;

    // Decoding errors come before the signature check.
    let mut body = keys.request_with_signature(1, &[0u8; 64]);
    body["oneTimePreKeys"][0]["publicKey"] = json!(b64_key(32, 0x05));
    rejects(&client, &user.token, &body, BAD_LENGTH_32)?;
    Ok(())
}

#[test]
fn duplicate_prekey_ids_are_rejected() -> TestResult {
    // Goal: S172, §5.1 step 1 — `Duplicate prekey ID: <id>` names the repeated id, even when
    // the repeats are not adjacent; an empty list and distinct ids are fine. Method: several
    // lists.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("grace")?;
    let keys = DeviceKeys::new(11);
    let otpk = |id: i32| json!({"keyId": id, "publicKey": b64_key(33, 0x05)});

    let mut body = keys.request(0);
    body["oneTimePreKeys"] = json!([otpk(1), otpk(2), otpk(3), otpk(2)]);
    rejects(&client, &user.token, &body, "Duplicate prekey ID: 2")?;
    body["oneTimePreKeys"] = json!([otpk(-5), otpk(-5)]);
    rejects(&client, &user.token, &body, "Duplicate prekey ID: -5")?;
    body["oneTimePreKeys"] = json!([otpk(0), otpk(2147483647), otpk(-2147483648)]);
    client.create_device(&user.token, &body)?.expect_json(201)?;
    body["oneTimePreKeys"] = json!([]);
    client.create_device(&user.token, &body)?.expect_json(201)?;
    Ok(())
}

#[test]
fn prekey_batch_limit_follows_the_flag() -> TestResult {
    // Goal: §5.1 step 4 — more OTPKs than `--messaging-pre-keys-max` is 400 `Batch too large.
    // Limit is <N>`; exactly N is fine; the signature is checked first. Method: limit 5; upload
    // 5, 6, and 6 with a bad signature.
    let server = TestServer::start_with(&["--messaging-pre-keys-max", "5"])?;
    let client = server.client();
    let user = client.register_ok("heidi")?;
    let keys = DeviceKeys::new(12);
    rejects(&client, &user.token, &keys.request(6), "Batch too large. Limit is 5")?;
    rejects(
        &client,
        &user.token,
        &keys.request_with_signature(6, &[3u8; 64]),
        "Invalid signature",
    )?;
    client.create_device(&user.token, &keys.request(5))?.expect_json(201)?;
    Ok(())
}

#[test]
fn default_prekey_batch_limit_is_100() -> TestResult {
    // Goal: §14.4 default — 100 OTPKs are accepted, 101 are not. Method: two uploads.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("ivan")?;
    let keys = DeviceKeys::new(13);
    rejects(
        &client,
        &user.token,
        &keys.request(101),
        "Batch too large. Limit is 100",
    )?;
    client
        .create_device(&user.token, &keys.request(100))?
        .expect_json(201)?;
    Ok(())
}

#[test]
fn body_shape_errors_are_400() -> TestResult {
    // Goal: §3.2, issue 12 — valid JSON of the wrong shape is 400 (the reference's 422): a missing required field, a wrong JSON
    // type, an integer outside i32; optional extras are ignored and registrationId may be any
    // i32 including negative. Method: one defect per request, then the accepted variants.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("judy")?;
    let valid = valid_device_request(1);

    let without = |field: &str| {
        let mut b = valid.clone();
        b.as_object_mut().map(|o| o.remove(field));
        b
    };
    for field in ["identityKey", "registrationId", "signedPreKey", "oneTimePreKeys"] {
        client.create_device(&user.token, &without(field))?.expect_error(400)?;
    }
    let mut spk_missing_sig = valid.clone();
    spk_missing_sig["signedPreKey"]
        .as_object_mut()
        .map(|o| o.remove("signature"));
    client.create_device(&user.token, &spk_missing_sig)?.expect_error(400)?;

    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("registrationId string", Box::new(|b| b["registrationId"] = json!("1"))),
        (
            "registrationId > i32",
            Box::new(|b| b["registrationId"] = json!(2147483648u64)),
        ),
        (
            "registrationId fraction",
            Box::new(|b| b["registrationId"] = json!(1.5)),
        ),
        ("identityKey number", Box::new(|b| b["identityKey"] = json!(5))),
        ("signedPreKey array", Box::new(|b| b["signedPreKey"] = json!([]))),
        (
            "spk keyId > i32",
            Box::new(|b| b["signedPreKey"]["keyId"] = json!(4294967296u64)),
        ),
        ("oneTimePreKeys object", Box::new(|b| b["oneTimePreKeys"] = json!({}))),
        (
            "otpk keyId string",
            Box::new(|b| b["oneTimePreKeys"][0]["keyId"] = json!("1")),
        ),
        ("name number", Box::new(|b| b["name"] = json!(12))),
        ("identityKey null", Box::new(|b| b["identityKey"] = Value::Null)),
    ];
    for (what, mutate) in mutations {
        let mut b = valid.clone();
        mutate(&mut b);
        let resp = client.create_device(&user.token, &b)?;
        assert_eq!(resp.status, 400, "{what}: {resp:?}");
        resp.expect_error(400)?;
    }
    client.create_device(&user.token, &json!([]))?.expect_error(400)?;
    client.create_device(&user.token, &json!("device"))?.expect_error(400)?;
    assert!(client.list_devices_ok(&user.token)?.is_empty());

    let mut extras = valid.clone();
    extras["pushToken"] = json!("ignored");
    extras["signedPreKey"]["extra"] = json!(true);
    extras["name"] = Value::Null;
    extras["registrationId"] = json!(-2147483648i64);
    let created = client.create_device(&user.token, &extras)?.expect_json(201)?;
    let id = created["deviceId"].as_str().ok_or("no deviceId")?;
    assert_eq!(
        client.get_device(&user.token, id)?.expect_json(200)?["name"],
        Value::Null
    );
    Ok(())
}

#[test]
fn otpk_key_ids_and_lists_may_be_large_or_empty() -> TestResult {
    // Goal: §5.1 — OTPK ids only need to be distinct i32s and no monotonic SPK-id rule applies
    // at creation. Method: negative SPK id, OTPK ids around i32 limits.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("kate")?;
    let mut keys = DeviceKeys::new(14);
    keys.spk_key_id = -1;
    let mut body = keys.request(0);
    body["oneTimePreKeys"] = otpks(2147483600, 40);
    client.create_device(&user.token, &body)?.expect_json(201)?;
    keys.spk_key_id = 0;
    client.create_device(&user.token, &keys.request(0))?.expect_json(201)?;
    Ok(())
}

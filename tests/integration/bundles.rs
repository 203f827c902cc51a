//! `GET /v1/users/{userId}` — prekey bundles (BEHAVIOR §6.4; TEST-CASES D46-D48): one bundle
//! per device of the target user with exactly the documented fields, one OTPK consumed per
//! device per fetch and never handed out twice (also under concurrent fetches),
//! `oneTimePreKey: null` once the pool is empty, 404 for unknown users and users without
//! devices, 400 for malformed ids, and lenient UUID forms in the path.

use std::collections::BTreeSet;
use std::sync::Barrier;

use serde_json::{json, Value};

use crate::common::data::{self, add_device, member};
use crate::common::keys::{b64, otpk_public, DeviceKeys, SignOver};
use crate::common::{random_uuid, TestResult};

/// Checks the exact shape of a `PreKeyBundleResponse` for a device made from `seed`.
fn check_bundle(b: &Value, device_id: &str, seed: u8) -> TestResult {
    let obj = b.as_object().ok_or_else(|| format!("bundle is not an object: {b}"))?;
    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "deviceId",
            "identityKey",
            "oneTimePreKey",
            "registrationId",
            "signedPreKey"
        ],
        "{b}"
    );
    let keys = DeviceKeys::new(seed);
    assert_eq!(b["deviceId"], json!(device_id));
    assert_eq!(b["registrationId"], json!(keys.registration_id));
    assert_eq!(b["identityKey"], json!(b64(&keys.identity_key())));
    assert_eq!(
        b["signedPreKey"],
        json!({"keyId": keys.spk_key_id, "publicKey": b64(&keys.spk_public), "signature": data::spk_signature(seed)})
    );
    match &b["oneTimePreKey"] {
        Value::Null => {}
        k => {
            let o = k
                .as_object()
                .ok_or_else(|| format!("oneTimePreKey is not an object: {k}"))?;
            assert_eq!(o.len(), 2, "{k}");
            assert!(o.get("keyId").is_some_and(Value::is_i64), "{k}");
            assert_eq!(o.get("publicKey"), Some(&json!(otpk_public())), "{k}");
        }
    }
    Ok(())
}

#[test]
fn bundles_of_a_user_with_two_devices() -> TestResult {
    // Goal: D46-D47 — a user token gets 403; a device token (of another user, or of the same
    // user) gets 200 with exactly one bundle per device, in the documented shape, each fetch
    // consuming one OTPK of each device (the caller's own device included). Method: bob with
    // two devices (2 and 1 OTPKs), fetched three times.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 2)?;
    let bob2 = add_device(&client, &bob.user, 7, 1)?;
    let alice = member(&client, "alice", 0)?;

    data::fetch_bundles(&client, &bob.user.token, bob.user_id())?
        .expect_error_text(403, "Device-scoped token required")?;

    let first = data::fetch_bundles_ok(&client, alice.token(), bob.user_id())?;
    assert_eq!(first.len(), 2, "{first:?}");
    check_bundle(data::bundle_of(&first, &bob.device_id)?, &bob.device_id, 1)?;
    check_bundle(data::bundle_of(&first, &bob2.device_id)?, &bob2.device_id, 7)?;
    assert_eq!(data::otpk_id(data::bundle_of(&first, &bob2.device_id)?)?, Some(1));

    // The owner's own device fetches too, and consumes its own key.
    let second = data::fetch_bundles_ok(&client, bob.token(), bob.user_id())?;
    assert_eq!(second.len(), 2);
    assert_eq!(data::otpk_id(data::bundle_of(&second, &bob2.device_id)?)?, None);
    let third = data::fetch_bundles_ok(&client, bob2.token(), bob.user_id())?;
    let ids: BTreeSet<Option<i64>> = [&first, &second, &third]
        .iter()
        .map(|b| data::bundle_of(b, &bob.device_id).and_then(data::otpk_id))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        ids,
        [Some(1), Some(2), None].into_iter().collect(),
        "device 1's two keys, then null"
    );
    let raw = data::fetch_bundles(&client, alice.token(), bob.user_id())?;
    assert!(
        raw.text().contains("\"oneTimePreKey\":null"),
        "an empty pool must be rendered as an explicit null: {raw:?}"
    );
    Ok(())
}

#[test]
fn unknown_users_and_users_without_devices_are_404() -> TestResult {
    // Goal: D48, §6.4 — a random unknown user id and a user with no devices answer 404
    // `Not found` (never `200 []`); a user whose only device was deleted too; a malformed id
    // is 400 `Invalid URL: Cannot parse…`. Method: each case with a device token.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let lonely = client.register_ok("lonely")?;
    data::fetch_bundles(&client, alice.token(), &random_uuid())?.expect_error_text(404, "Not found")?;
    data::fetch_bundles(&client, alice.token(), &lonely.user_id)?.expect_error_text(404, "Not found")?;

    let gone = member(&client, "gone", 1)?;
    let resp = client.delete_device(&gone.user.token, &gone.device_id)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    data::fetch_bundles(&client, alice.token(), gone.user_id())?.expect_error_text(404, "Not found")?;

    let text = data::fetch_bundles(&client, alice.token(), "not-a-uuid")?.expect_error(400)?;
    assert!(text.starts_with("Invalid URL: Cannot parse"), "{text}");
    Ok(())
}

#[test]
fn user_id_in_the_path_is_parsed_leniently() -> TestResult {
    // Goal: §3.2 — path UUIDs in simple, braced, URN and upper-case forms name the same user.
    // Method: fetch bob's bundles under each form.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 0)?;
    let alice = member(&client, "alice", 0)?;
    let id = bob.user_id().to_string();
    for form in [
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.to_uppercase(),
    ] {
        let b = data::fetch_bundles_ok(&client, alice.token(), &form)?;
        assert_eq!(b.len(), 1, "{form}: {b:?}");
        assert_eq!(b[0]["deviceId"].as_str(), Some(bob.device_id.as_str()), "{form}");
    }
    Ok(())
}

#[test]
fn concurrent_fetches_never_share_a_prekey() -> TestResult {
    // Goal: §6.4 "concurrent fetches never hand out the same OTPK" — ten fetches at once on a
    // device with ten OTPKs get ten different key ids (exactly 1-10), and the eleventh gets
    // `oneTimePreKey: null`. Method: ten threads behind a barrier, sharing one fetcher device.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 10)?;
    let fetcher = member(&client, "fetcher", 0)?;
    let barrier = Barrier::new(10);
    let results: Vec<Result<Option<i64>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let f = &fetcher;
                let client = server.client();
                let barrier = &barrier;
                let user = bob.user_id().to_string();
                s.spawn(move || -> Result<Option<i64>, String> {
                    barrier.wait();
                    let b = data::fetch_bundles_ok(&client, f.token(), &user).map_err(|e| e.to_string())?;
                    let one = b.first().ok_or("empty array")?;
                    data::otpk_id(one).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("fetch thread panicked".into())))
            .collect()
    });
    let ids: Vec<Option<i64>> = results.into_iter().collect::<Result<_, _>>()?;
    let distinct: BTreeSet<Option<i64>> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 10, "a prekey was handed out twice: {ids:?}");
    assert_eq!(distinct, (1..=10).map(Some).collect(), "{ids:?}");
    let b = data::fetch_bundles_ok(&client, fetcher.token(), bob.user_id())?;
    assert_eq!(
        data::otpk_id(&b[0])?,
        None,
        "the eleventh fetch must find the pool empty"
    );
    Ok(())
}

#[test]
fn bundles_return_signatures_exactly_as_uploaded() -> TestResult {
    // Goal: D37-D38 through the data plane and §6.1 "keys are returned exactly as stored" —
    // devices whose SPK signature was made over the 33-byte form, over the 32-byte raw form, and
    // one with the XEdDSA sign bit set are all served, each bundle carrying its own signature
    // byte for byte. Method: three devices of one user, one fetch.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = client.register_ok("bob")?;
    let alice = member(&client, "alice", 0)?;
    let keys = DeviceKeys::new(5);
    let mut flagged = keys.sign_spk(SignOver::Prefixed33);
    flagged[63] |= 0x80;
    let signatures = [
        keys.sign_spk(SignOver::Prefixed33),
        keys.sign_spk(SignOver::Raw32),
        flagged,
    ];
    let mut ids = Vec::new();
    for sig in &signatures {
        let resp = client.create_device(&bob.token, &keys.request_with_signature(1, sig))?;
        let id = resp.expect_json(201)?["deviceId"]
            .as_str()
            .ok_or("no deviceId")?
            .to_string();
        ids.push(id);
    }
    let b = data::fetch_bundles_ok(&client, alice.token(), &bob.user_id)?;
    assert_eq!(b.len(), 3, "{b:?}");
    for (id, sig) in ids.iter().zip(&signatures) {
        let bundle = data::bundle_of(&b, id)?;
        assert_eq!(bundle["signedPreKey"]["signature"], json!(b64(sig)), "{bundle}");
        assert_eq!(bundle["identityKey"], json!(b64(&keys.identity_key())));
        assert_eq!(data::otpk_id(bundle)?, Some(1));
    }
    Ok(())
}

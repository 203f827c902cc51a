//! `POST /v1/devices/keys` — refill and takeover (BEHAVIOR §6.3; TEST-CASES D39-D42, D44, D45):
//! the validation order and texts, the monotonic SPK id of a refill, the OTPK pool cap with
//! oldest-first pruning, silently skipped duplicate OTPK ids, and the takeover that replaces
//! the keys, wipes the device's queue and closes its sockets. Stored state is observed through
//! bundle fetches (`GET /v1/users/{id}`), the gateway's `PreKeyStatus` and the device's queue.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::data::{self, member, queued_for, send_text, upload_body, upload_keys, upload_keys_ok};
use crate::common::gateway::Gateway;
use crate::common::keys::{b64, b64_key, curve_public, otpks, DeviceKeys};
use crate::common::wire::FramePayload;
use crate::common::{Auth, TestResult};

#[test]
fn refill_must_raise_the_signed_prekey_id() -> TestResult {
    // Goal: D40-D42 — a refill with SPK id 11 (device created with 1) is 200; then 10 is 400
    // `Signed Pre-Key ID 10 must be greater than current ID 11`, and so is an equal id; on
    // another device a refill with id 10 replaces SPK 1 (the bundle shows keyId 10 and the next
    // refill is compared with 10). Method: a sequence of refills and bundle fetches.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let fetcher = member(&client, "fetcher", 0)?;

    upload_keys_ok(&client, alice.token(), &upload_body(1, None, 11, 1, 0))?;
    upload_keys(&client, alice.token(), &upload_body(1, None, 10, 1, 0))?
        .expect_error_text(400, "Signed Pre-Key ID 10 must be greater than current ID 11")?;
    upload_keys(&client, alice.token(), &upload_body(1, None, 11, 1, 0))?
        .expect_error_text(400, "Signed Pre-Key ID 11 must be greater than current ID 11")?;
    let b = data::fetch_bundles_ok(&client, fetcher.token(), alice.user_id())?;
    assert_eq!(b[0]["signedPreKey"]["keyId"], json!(11), "{b:?}");

    // D42 on a second device of the same user.
    let second = data::add_device(&client, &alice.user, 1, 0)?;
    upload_keys_ok(&client, second.token(), &upload_body(1, None, 10, 1, 0))?;
    let b = data::fetch_bundles_ok(&client, fetcher.token(), alice.user_id())?;
    let spk = &data::bundle_of(&b, &second.device_id)?["signedPreKey"];
    let keys = DeviceKeys::new(1);
    assert_eq!(spk["keyId"], json!(10), "{b:?}");
    assert_eq!(spk["publicKey"], json!(b64(&keys.spk_public)));
    assert_eq!(spk["signature"], json!(data::spk_signature(1)));
    upload_keys(&client, second.token(), &upload_body(1, None, 5, 1, 0))?
        .expect_error_text(400, "Signed Pre-Key ID 5 must be greater than current ID 10")?;
    Ok(())
}

#[test]
fn refill_signature_is_checked_against_the_stored_identity() -> TestResult {
    // Goal: D45, §6.3 step 5 — without `identityKey` the SPK signature is verified against the
    // stored identity key: 64 zero bytes → 400 `Invalid signature`, and so is a valid signature
    // made by another identity; with a *new* identityKey the signature must verify against
    // the new key. A rejected upload changes nothing. Method: three bad uploads, then a bundle.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 1)?;
    let fetcher = member(&client, "fetcher", 0)?;

    let mut zeros = upload_body(1, None, 2, 10, 1);
    zeros["signedPreKey"]["signature"] = json!(b64(&[0u8; 64]));
    upload_keys(&client, alice.token(), &zeros)?.expect_error_text(400, "Invalid signature")?;

    // SPK signed by identity 2 (the SPK public key of seed 1 is signed by seed 2 here).
    let mut foreign = upload_body(1, None, 2, 10, 1);
    foreign["signedPreKey"]["signature"] = json!(data::spk_signature(2));
    upload_keys(&client, alice.token(), &foreign)?.expect_error_text(400, "Invalid signature")?;

    // New identity (seed 2), signature still by the old identity (seed 1).
    let mut takeover = upload_body(2, Some(7), 2, 10, 1);
    takeover["signedPreKey"]["publicKey"] = json!(b64(&DeviceKeys::new(1).spk_public));
    takeover["signedPreKey"]["signature"] = json!(data::spk_signature(1));
    upload_keys(&client, alice.token(), &takeover)?.expect_error_text(400, "Invalid signature")?;

    let b = data::fetch_bundles_ok(&client, fetcher.token(), alice.user_id())?;
    assert_eq!(b[0]["signedPreKey"]["keyId"], json!(1), "{b:?}");
    assert_eq!(b[0]["identityKey"], json!(b64(&DeviceKeys::new(1).identity_key())));
    assert_eq!(
        data::otpk_id(&b[0])?,
        Some(1),
        "the rejected uploads added no OTPK: {b:?}"
    );
    Ok(())
}

#[test]
fn upload_validation_has_the_documented_order_and_texts() -> TestResult {
    // Goal: §6.3 steps 2-4 and the batch rule — identityKey without registrationId, duplicate
    // OTPK ids, bad key encodings (identity, SPK, signature, OTPK) and too many OTPKs are each
    // 400 with their text, in the documented order. Method: one bad body per rule, plus bodies
    // with two faults to see which wins.
    let server = data::server_with(&["--messaging-pre-keys-max", "5"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    let reject = |body: &serde_json::Value, text: &str| -> TestResult {
        upload_keys(&client, t, body)?.expect_error_text(400, text)?;
        Ok(())
    };

    let mut no_reg = upload_body(1, Some(1), 2, 1, 0);
    if let Some(o) = no_reg.as_object_mut() {
        o.remove("registrationId");
    }
    reject(&no_reg, "registrationId is required when identityKey is provided")?;
    // registrationId: null is the same as absent.
    no_reg["registrationId"] = serde_json::Value::Null;
    reject(&no_reg, "registrationId is required when identityKey is provided")?;
    // ...and it wins over a duplicate id.
    no_reg["registrationId"] = serde_json::Value::Null;
    no_reg["oneTimePreKeys"] =
        json!([{"keyId": 5, "publicKey": b64_key(33, 5)}, {"keyId": 5, "publicKey": b64_key(33, 5)}]);
    reject(&no_reg, "registrationId is required when identityKey is provided")?;

    let mut dup = upload_body(1, None, 2, 1, 0);
    dup["oneTimePreKeys"] = json!([
        {"keyId": 5, "publicKey": b64_key(32, 5)},
        {"keyId": 6, "publicKey": b64_key(33, 5)},
        {"keyId": 5, "publicKey": b64_key(33, 5)},
    ]);
    reject(&dup, "Duplicate prekey ID: 5")?;

    let mut bad_identity = upload_body(1, Some(1), 2, 1, 0);
    bad_identity["identityKey"] = json!(b64_key(32, 5));
    bad_identity["signedPreKey"]["publicKey"] = json!(b64_key(33, 4));
    reject(
        &bad_identity,
        "Invalid key length: 32 (expected 33 bytes with 0x05 prefix)",
    )?;

    let mut bad_spk = upload_body(1, None, 2, 1, 0);
    bad_spk["signedPreKey"]["publicKey"] = json!(b64_key(33, 4));
    bad_spk["signedPreKey"]["signature"] = json!(b64(&[1u8; 63]));
    reject(&bad_spk, "Invalid key prefix (expected 0x05)")?;

    let mut bad_sig = upload_body(1, None, 2, 1, 0);
    bad_sig["signedPreKey"]["signature"] = json!(b64(&[1u8; 63]));
    reject(&bad_sig, "Invalid signature length: 63 (expected 64)")?;

    let mut bad_otpk = upload_body(1, None, 2, 1, 2);
    bad_otpk["oneTimePreKeys"][1]["publicKey"] = json!(b64_key(34, 5));
    reject(&bad_otpk, "Invalid key length: 34 (expected 33 bytes with 0x05 prefix)")?;

    reject(&upload_body(1, None, 2, 1, 6), "Batch too large. Limit is 5")?;
    upload_keys_ok(&client, t, &upload_body(1, None, 2, 1, 5))?;
    Ok(())
}

#[test]
fn refill_prunes_the_oldest_prekeys_above_the_cap() -> TestResult {
    // Goal: D39 — with `--messaging-pre-keys-max 50`, a device holding 40 OTPKs (ids 0-39) that
    // uploads 20 more (ids 40-59) with SPK id 2 ends with exactly 50: all 20 new ones and 30 of
    // the old ones (the oldest are pruned). Method: the welcome PreKeyStatus reports the count
    // (threshold raised to 1000 so it is always sent); then 50 bundle fetches hand out exactly
    // those keys and a 51st has `oneTimePreKey: null`.
    let server = data::server_with(&[
        "--messaging-pre-keys-max",
        "50",
        "--messaging-pre-key-refill-threshold",
        "1000",
    ])?;
    let client = server.client();
    let user = client.register_ok("alice")?;
    let mut body = DeviceKeys::new(1).request(0);
    body["oneTimePreKeys"] = otpks(0, 40);
    let dev = Auth::from_json(&client.create_device(&user.token, &body)?.expect_json(201)?)?;
    let fetcher = member(&client, "fetcher", 0)?;

    let mut refill = upload_body(1, None, 2, 40, 20);
    refill["oneTimePreKeys"] = otpks(40, 20);
    upload_keys_ok(&client, &dev.token, &refill)?;

    let mut gw = Gateway::connect(&server, &dev.token)?;
    let first = gw.next_frame(Duration::from_secs(5))?;
    assert_eq!(
        first,
        Some(FramePayload::PreKeyStatus {
            count: 50,
            threshold: 1000
        }),
        "the welcome status should report the pruned pool"
    );
    gw.close()?;

    let mut ids = BTreeSet::new();
    for _ in 0..50 {
        let b = data::fetch_bundles_ok(&client, fetcher.token(), &user.user_id)?;
        let id = data::otpk_id(&b[0])?.ok_or_else(|| format!("pool ran dry early after {} keys", ids.len()))?;
        assert!(ids.insert(id), "prekey {id} handed out twice");
    }
    let b = data::fetch_bundles_ok(&client, fetcher.token(), &user.user_id)?;
    assert_eq!(data::otpk_id(&b[0])?, None, "more than 50 keys were kept");
    let new: BTreeSet<i64> = (40..60).collect();
    assert!(new.is_subset(&ids), "every newly uploaded key must survive: {ids:?}");
    assert_eq!(ids.iter().filter(|id| **id < 40).count(), 30, "{ids:?}");
    Ok(())
}

#[test]
fn refill_skips_prekey_ids_that_already_exist() -> TestResult {
    // Goal: §6.3 refill — an OTPK whose keyId is already stored is silently skipped (the stored
    // public key is kept); new ids are added. Method: device with OTPKs 1-3, refill with id 2
    // (other key) and id 4, then fetch all keys.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 3)?;
    let fetcher = member(&client, "fetcher", 0)?;
    let mut other_key = vec![0x05u8; 33];
    other_key[1..].fill(0x07);
    let other_b64 = b64(&other_key);
    let mut refill = upload_body(1, None, 2, 1, 0);
    refill["oneTimePreKeys"] = json!([
        {"keyId": 2, "publicKey": other_b64},
        {"keyId": 4, "publicKey": other_b64},
    ]);
    upload_keys_ok(&client, alice.token(), &refill)?;

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..4 {
        let b = data::fetch_bundles_ok(&client, fetcher.token(), alice.user_id())?;
        let k = &b[0]["oneTimePreKey"];
        let id = k["keyId"].as_i64().ok_or_else(|| format!("no OTPK in {b:?}"))?;
        seen.insert(id, k["publicKey"].as_str().unwrap_or_default().to_string());
    }
    let original = b64_key(33, 0x05);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(seen[&2], original, "the stored key of id 2 must be kept");
    assert_eq!(seen[&4], other_b64);
    let b = data::fetch_bundles_ok(&client, fetcher.token(), alice.user_id())?;
    assert_eq!(data::otpk_id(&b[0])?, None);
    Ok(())
}

#[test]
fn refill_with_the_same_identity_key_keeps_the_registration_id() -> TestResult {
    // Goal: §6.3 — an identityKey equal to the stored one makes the upload a refill: the
    // monotonic SPK rule applies, the registrationId sent is ignored, and the queue is kept.
    // Method: queue a message, refill with the same identity and registrationId 999, then check
    // the bundle and the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    send_text(&client, bob.token(), &alice.id, "kept")?;

    upload_keys(&client, alice.token(), &upload_body(1, Some(999), 1, 1, 0))?
        .expect_error_text(400, "Signed Pre-Key ID 1 must be greater than current ID 1")?;
    upload_keys_ok(&client, alice.token(), &upload_body(1, Some(999), 3, 1, 2))?;
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(b[0]["registrationId"], json!(4242), "{b:?}");
    assert_eq!(b[0]["signedPreKey"]["keyId"], json!(3));
    assert_eq!(data::texts(&queued_for(&server, &alice)?), vec!["kept"]);
    Ok(())
}

#[test]
fn takeover_replaces_keys_wipes_the_queue_and_closes_sockets() -> TestResult {
    // Goal: D44 and the takeover line — with a message queued (and delivered, unacked,
    // on an open socket), uploading a different identity key with registrationId 456 and SPK
    // id 2 answers 200; the open socket is closed; afterwards the queue is empty, the bundle
    // shows the new identity, registration id, SPK and only the new OTPKs; messages the device
    // had sent to others stay queued; another device's socket stays open; the old device
    // token still works. A second takeover may use a lower SPK id. Method: as described.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = member(&client, "bob", 0)?;
    send_text(&client, bob.token(), &alice.id, "wiped")?;
    send_text(&client, alice.token(), &bob.id, "sent before the takeover")?;

    let mut alice_gw = Gateway::connect(&server, alice.token())?;
    let got = alice_gw.collect_envelopes(1, Duration::from_secs(5), false)?;
    assert_eq!(data::texts(&got), vec!["wiped"]);
    let mut bob_gw = Gateway::connect(&server, bob.token())?;
    let got = bob_gw.collect_envelopes(1, Duration::from_secs(5), false)?;
    assert_eq!(data::texts(&got), vec!["sent before the takeover"]);

    upload_keys_ok(&client, alice.token(), &upload_body(2, Some(456), 2, 100, 2))?;
    assert!(
        alice_gw.wait_closed(Duration::from_secs(5))?,
        "the taken-over device's socket must be closed"
    );
    bob_gw.expect_pong(b"still here", Duration::from_secs(5))?;

    assert!(queued_for(&server, &alice)?.is_empty(), "takeover must wipe the queue");
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    let keys = DeviceKeys::new(2);
    assert_eq!(b[0]["identityKey"], json!(b64(&keys.identity_key())), "{b:?}");
    assert_eq!(b[0]["identityKey"], json!(b64(&curve_public(&keys.identity))));
    assert_eq!(b[0]["registrationId"], json!(456));
    assert_eq!(b[0]["signedPreKey"]["keyId"], json!(2));
    assert_eq!(b[0]["signedPreKey"]["publicKey"], json!(b64(&keys.spk_public)));
    assert_eq!(b[0]["signedPreKey"]["signature"], json!(data::spk_signature(2)));
    let first = data::otpk_id(&b[0])?;
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    let second = data::otpk_id(&b[0])?;
    let got: BTreeSet<Option<i64>> = [first, second].into_iter().collect();
    assert_eq!(
        got,
        [Some(100), Some(101)].into_iter().collect(),
        "old OTPKs must be gone"
    );
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(data::otpk_id(&b[0])?, None);

    // Messages alice sent are untouched: bob's fresh socket still gets it (unacked above).
    bob_gw.close()?;
    assert_eq!(
        data::texts(&queued_for(&server, &bob)?),
        vec!["sent before the takeover"]
    );

    // Another takeover (seed 3) with a lower SPK id is fine.
    upload_keys_ok(&client, alice.token(), &upload_body(3, Some(457), 1, 1, 0))?;
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(b[0]["signedPreKey"]["keyId"], json!(1));
    assert_eq!(b[0]["registrationId"], json!(457));
    Ok(())
}

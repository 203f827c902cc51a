//! `POST /v1/messages` (BEHAVIOR §7, §18.1-18.2; TEST-CASES F55-F63, F65): per-submission
//! failures with their codes, texts, echoed ids and order; the batch limit (413); bad protobuf
//! (400); the `Idempotency-Key` (required, any UUID form, scoped to the sending device, replayed
//! before the body is decoded, errors not cached, TTL, racing repeats); and deduplication per
//! (sender device, submission id, target device). What was stored is observed through the
//! target's queue (`queued_for`).

use std::sync::Barrier;
use std::time::Duration;

use crate::common::data::{self, add_device, member, post_messages, queued_for, send, send_all, send_ok, texts};
use crate::common::gateway::Gateway;
use crate::common::raw::{request_bytes, RawConn};
use crate::common::wire::{self, error_code, FailedSubmission, Submission};
use crate::common::{random_uuid, TestResult};

fn failed(id: &[u8], code: i32, text: &str) -> FailedSubmission {
    FailedSubmission {
        submission_id: id.to_vec(),
        error_code: code,
        error_message: text.to_string(),
    }
}

#[test]
fn unknown_target_device_is_a_reported_failure() -> TestResult {
    // Goal: F55 — a submission to an unknown device → 200 with exactly one failure: the
    // 16-byte submission id echoed, `ERROR_CODE_INVALID_DEVICE`, `Device not found`. Method:
    // one submission to a random device id.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let s = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"lost");
    let f = send_ok(&client, alice.token(), std::slice::from_ref(&s))?;
    assert_eq!(
        f,
        vec![failed(&s.submission_id, error_code::INVALID_DEVICE, "Device not found")]
    );
    Ok(())
}

#[test]
fn only_the_unknown_target_of_a_batch_fails() -> TestResult {
    // Goal: F58, F65 — in a batch of three whose middle target is unknown, only the middle one
    // fails and both valid targets get their message; in a 50-submission batch with one
    // unknown target there is exactly one failure. Method: two receivers, then their queues.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let carol = member(&client, "carol", 0)?;
    let middle = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"nobody");
    let f = send_ok(
        &client,
        alice.token(),
        &[
            Submission::to(&bob.id, b"to bob"),
            middle.clone(),
            Submission::to(&carol.id, b"to carol"),
        ],
    )?;
    assert_eq!(
        f,
        vec![failed(
            &middle.submission_id,
            error_code::INVALID_DEVICE,
            "Device not found"
        )]
    );
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["to bob"]);
    assert_eq!(texts(&queued_for(&server, &carol)?), vec!["to carol"]);

    let mut batch: Vec<Submission> = (0..50)
        .map(|i| Submission::to(&bob.id, format!("b{i}").as_bytes()))
        .collect();
    batch[31] = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"nobody");
    let f = send_ok(&client, alice.token(), &batch)?;
    assert_eq!(
        f,
        vec![failed(
            &batch[31].submission_id,
            error_code::INVALID_DEVICE,
            "Device not found"
        )]
    );
    let got = texts(&queued_for(&server, &bob)?);
    let mut expected = vec!["to bob".to_string()];
    expected.extend((0..50).filter(|i| *i != 31).map(|i| format!("b{i}")));
    assert_eq!(got, expected);
    Ok(())
}

#[test]
fn malformed_submissions_are_reported_in_pass_order() -> TestResult {
    // Goal: F61-F63, §7.2 — a 3-byte device_id is `MALFORMED_DEVICE_ID` / `Invalid device_id
    // UUID bytes (expected 16)`; a 3-byte submission_id is `MALFORMED_SUBMISSION_ID` /
    // `Invalid submission_id UUID bytes (expected 16)`; an empty message is `MESSAGE_MISSING` /
    // `Missing message payload`; the first failing rule of a submission decides; all pass-1
    // failures (in request order) precede the pass-2 ones (unknown devices); raw ids are echoed
    // as sent; the valid submission is stored. Method: one request mixing all cases.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let unknown_first = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"x");
    let bad_sub = Submission::new(&[1, 2, 3], &[9, 9, 9], b"");
    let bad_dev = Submission::new(uuid::Uuid::new_v4().as_bytes(), &[4, 5, 6], b"");
    let no_msg = Submission::new(uuid::Uuid::new_v4().as_bytes(), &bob.id, b"");
    let no_sub_id = Submission::new(&[], &bob.id, b"x");
    let good = Submission::to(&bob.id, b"good");
    let unknown_last = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"y");
    let f = send_ok(
        &client,
        alice.token(),
        &[
            unknown_first.clone(),
            bad_sub.clone(),
            bad_dev.clone(),
            no_msg.clone(),
            good,
            no_sub_id,
            unknown_last.clone(),
        ],
    )?;
    let sub_text = "Invalid submission_id UUID bytes (expected 16)";
    assert_eq!(
        f,
        vec![
            failed(&[1, 2, 3], error_code::MALFORMED_SUBMISSION_ID, sub_text),
            failed(
                &bad_dev.submission_id,
                error_code::MALFORMED_DEVICE_ID,
                "Invalid device_id UUID bytes (expected 16)"
            ),
            failed(
                &no_msg.submission_id,
                error_code::MESSAGE_MISSING,
                "Missing message payload"
            ),
            failed(&[], error_code::MALFORMED_SUBMISSION_ID, sub_text),
            failed(
                &unknown_first.submission_id,
                error_code::INVALID_DEVICE,
                "Device not found"
            ),
            failed(
                &unknown_last.submission_id,
                error_code::INVALID_DEVICE,
                "Device not found"
            ),
        ]
    );
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["good"]);
    Ok(())
}

#[test]
fn empty_requests_and_bad_protobuf() -> TestResult {
    // Goal: §7.1 step 5, issue 12 — a request without a submission (no body, or a body with
    // only unknown fields) is 400, as the contract requires a body (deliberately overriding
    // TEST-CASES F59, where the reference answers 200), yet an answer stored under its key
    // still wins (§7.1 step 4); `00 01 02` and a truncated
    // message are 400 `Invalid SendMessageRequest protobuf: …`; unknown fields are ignored;
    // the Content-Type is not checked. Method: each body in turn.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    for empty in [vec![], vec![0x38, 0x01]] {
        let text = post_messages(&client, alice.token(), &random_uuid(), empty.clone())?.expect_error(400)?;
        assert_eq!(text, "SendMessageRequest holds no submission", "{empty:02x?}");
    }
    let key = random_uuid();
    let stored = wire::encode_send_request(&[Submission::to(&bob.id, b"stored")]);
    let first = post_messages(&client, alice.token(), &key, stored)?;
    assert_eq!(first.status, 200, "{first:?}");
    let replay = post_messages(&client, alice.token(), &key, vec![])?;
    assert_eq!((replay.status, &replay.body), (200, &first.body), "{replay:?}");

    for bad in [vec![0u8, 1, 2], vec![0x0A, 0x05, 0x01], vec![0x0A, 0x02, 0x0A, 0x10]] {
        let text = post_messages(&client, alice.token(), &random_uuid(), bad.clone())?.expect_error(400)?;
        assert!(
            text.starts_with("Invalid SendMessageRequest protobuf"),
            "{bad:02x?}: {text}"
        );
    }

    // An unknown field (number 7, varint) before the submission, and an unknown field in it.
    let mut body = vec![0x38, 0x01];
    let mut sub = Submission::to(&bob.id, b"with unknown fields").encode();
    sub.extend_from_slice(&[0x48, 0x05]);
    body.push(0x0A);
    body.push(sub.len() as u8);
    body.extend_from_slice(&sub);
    let resp = client
        .post("/v1/messages")
        .bearer(alice.token())
        .header("Idempotency-Key", &random_uuid())
        .header("Content-Type", "application/json")
        .body(body)
        .send()?;
    assert!(data::decode_200(&resp)?.is_empty(), "{resp:?}");
    // No Content-Type at all.
    let resp = client
        .post("/v1/messages")
        .bearer(alice.token())
        .header("Idempotency-Key", &random_uuid())
        .body(wire::encode_send_request(&[Submission::to(
            &bob.id,
            b"no content type",
        )]))
        .send()?;
    assert!(data::decode_200(&resp)?.is_empty(), "{resp:?}");
    assert_eq!(
        texts(&queued_for(&server, &bob)?),
        vec!["stored", "with unknown fields", "no content type"]
    );
    Ok(())
}

#[test]
fn batch_limit_follows_the_flag() -> TestResult {
    // Goal: F60, §7.1 step 6 — with `--messaging-send-batch-limit 5`, six submissions → 413
    // `Payload too large` and nothing is stored; exactly five → 200. Method: both requests,
    // then the queue.
    let server = data::server_with(&["--messaging-send-batch-limit", "5"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let six: Vec<Submission> = (0..6)
        .map(|i| Submission::to(&bob.id, format!("six{i}").as_bytes()))
        .collect();
    send(&client, alice.token(), &six)?.expect_error_text(413, "Payload too large")?;
    send_all(&client, alice.token(), &six[..5])?;
    assert_eq!(texts(&queued_for(&server, &bob)?).len(), 5);
    Ok(())
}

#[test]
fn default_batch_limit_is_100_and_bodies_are_capped_at_2_mib() -> TestResult {
    // Goal: §14.4 default and §3.6 — 100 submissions are accepted, 101 are 413; a body above
    // 2 MiB is 413 while a message of 1.5 MiB is accepted. Method: the four requests.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let subs: Vec<Submission> = (0..101)
        .map(|i| Submission::to(&bob.id, format!("{i}").as_bytes()))
        .collect();
    send(&client, alice.token(), &subs)?.expect_error_text(413, "Payload too large")?;
    send_all(&client, alice.token(), &subs[..100])?;

    // A declared body of 2 MiB + 1 is refused from the head (sent raw: the server may stop
    // reading, so no body is sent).
    let mut conn = RawConn::connect(server.main_port)?;
    let bearer = format!("Bearer {}", alice.token());
    let key = random_uuid();
    let len = (2 * 1024 * 1024 + 1).to_string();
    conn.send(&request_bytes(
        "POST",
        "/v1/messages",
        &[
            ("Authorization", &bearer),
            ("Idempotency-Key", &key),
            ("Content-Length", &len),
        ],
        None,
    ))?;
    conn.read_response()?.expect_error(413)?;
    send_all(
        &client,
        alice.token(),
        &[Submission::to(&bob.id, &vec![8u8; 1536 * 1024])],
    )?;
    Ok(())
}

#[test]
fn idempotency_key_is_required_and_must_be_a_uuid() -> TestResult {
    // Goal: §7.1 step 3 — no header → 400 `Missing idempotency-key header`; a non-UUID →
    // 400 starting `Invalid idempotency-key`; any textual UUID form (simple, braced, URN, upper
    // case) is accepted; the key is normalised, so the simple form of an earlier hyphenated key
    // replays that request. Method: each form; then the replay check through the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let body = || wire::encode_send_request(&[Submission::to(&bob.id, b"k")]);
    client
        .post("/v1/messages")
        .bearer(alice.token())
        .body(body())
        .send()?
        .expect_error_text(400, "Missing idempotency-key header")?;
    for bad in ["not-a-uuid", "1234", "g0000000-0000-0000-0000-000000000000"] {
        let text = post_messages(&client, alice.token(), bad, body())?.expect_error(400)?;
        assert!(text.starts_with("Invalid idempotency-key"), "{bad}: {text}");
    }
    for form in [
        random_uuid().replace('-', ""),
        format!("{{{}}}", random_uuid()),
        format!("urn:uuid:{}", random_uuid()),
        random_uuid().to_uppercase(),
    ] {
        let resp = post_messages(&client, alice.token(), &form, body())?;
        assert!(data::decode_200(&resp)?.is_empty(), "{form}: {resp:?}");
    }
    assert_eq!(texts(&queued_for(&server, &bob)?).len(), 4);

    let key = random_uuid();
    let first = post_messages(
        &client,
        alice.token(),
        &key,
        wire::encode_send_request(&[Submission::to(&bob.id, b"first")]),
    )?;
    let second = post_messages(
        &client,
        alice.token(),
        &key.replace('-', "").to_uppercase(),
        wire::encode_send_request(&[Submission::to(&bob.id, b"second")]),
    )?;
    assert_eq!((first.status, second.status), (200, 200));
    let got = texts(&queued_for(&server, &bob)?);
    assert!(got.contains(&"first".to_string()), "{got:?}");
    assert!(
        !got.contains(&"second".to_string()),
        "the same key in another form must replay: {got:?}"
    );
    Ok(())
}

#[test]
fn repeated_key_replays_the_first_answer() -> TestResult {
    // Goal: F57, §7.1 step 4 — the same request twice with the same key → both 200 with
    // byte-identical bodies and only one message queued; a third request with the same key and
    // a different (even undecodable) body gets the same answer, decoded or not, and stores
    // nothing. Method: a body with one valid and one failing submission (so the answer is not
    // empty), then the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    let lost = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"x");
    let body = wire::encode_send_request(&[Submission::to(&bob.id, b"once"), lost.clone()]);
    let first = post_messages(&client, alice.token(), &key, body.clone())?;
    let again = post_messages(&client, alice.token(), &key, body)?;
    assert_eq!(
        data::decode_200(&first)?,
        vec![failed(
            &lost.submission_id,
            error_code::INVALID_DEVICE,
            "Device not found"
        )]
    );
    assert_eq!(again.status, 200);
    assert_eq!(first.body, again.body, "a replay must be byte-identical");

    let other = wire::encode_send_request(&[Submission::to(&bob.id, b"other body")]);
    let third = post_messages(&client, alice.token(), &key, other)?;
    assert_eq!((third.status, &third.body), (200, &first.body));
    let garbage = post_messages(&client, alice.token(), &key, vec![0, 1, 2])?;
    assert_eq!(
        (garbage.status, &garbage.body),
        (200, &first.body),
        "the cache is read before decoding"
    );
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["once"]);
    Ok(())
}

#[test]
fn failed_requests_are_not_cached() -> TestResult {
    // Goal: §7.1 step 8 — only 200 outcomes are cached: after a 400 (bad protobuf) and a 413
    // (batch limit) with key K, a valid request with K is processed. Method: the three
    // requests, then the queue.
    let server = data::server_with(&["--messaging-send-batch-limit", "2"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    post_messages(&client, alice.token(), &key, vec![0, 1, 2])?.expect_error(400)?;
    let three: Vec<Submission> = (0..3).map(|_| Submission::to(&bob.id, b"three")).collect();
    post_messages(&client, alice.token(), &key, wire::encode_send_request(&three))?.expect_error(413)?;
    let resp = post_messages(
        &client,
        alice.token(),
        &key,
        wire::encode_send_request(&[Submission::to(&bob.id, b"third time")]),
    )?;
    assert!(data::decode_200(&resp)?.is_empty());
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["third time"]);
    Ok(())
}

#[test]
fn idempotency_key_is_scoped_to_the_sending_device() -> TestResult {
    // Goal: the deliberate difference of this server — the key belongs to the sending device:
    // two devices (of different users, and two devices of one user) using the same key are
    // both processed. Method: three senders, one key, three different messages to bob.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let alice2 = add_device(&client, &alice.user, 2, 0)?;
    let carol = member(&client, "carol", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    for (who, text) in [
        (&alice, "from alice"),
        (&alice2, "from alice's 2nd device"),
        (&carol, "from carol"),
    ] {
        let body = wire::encode_send_request(&[Submission::to(&bob.id, text.as_bytes())]);
        let resp = post_messages(&client, who.token(), &key, body)?;
        assert!(data::decode_200(&resp)?.is_empty(), "{text}: {resp:?}");
    }
    assert_eq!(
        texts(&queued_for(&server, &bob)?),
        vec!["from alice", "from alice's 2nd device", "from carol"]
    );
    Ok(())
}

#[test]
fn idempotency_entries_expire_after_the_ttl() -> TestResult {
    // Goal: §7.1 step 8 — with `--messaging-idempotency-ttl-secs 1`, a key is replayed within
    // the TTL and processed afresh after it. Method: send, repeat at once (replayed: nothing
    // stored), wait 2.1 s, repeat with a new body (stored).
    let server = data::server_with(&["--messaging-idempotency-ttl-secs", "1"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    let body = |t: &str| wire::encode_send_request(&[Submission::to(&bob.id, t.as_bytes())]);
    assert_eq!(post_messages(&client, alice.token(), &key, body("one"))?.status, 200);
    assert_eq!(
        post_messages(&client, alice.token(), &key, body("replayed"))?.status,
        200
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        post_messages(&client, alice.token(), &key, body("after the ttl"))?.status,
        200
    );
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["one", "after the ttl"]);
    Ok(())
}

#[test]
fn racing_repeats_of_one_key_store_once() -> TestResult {
    // Goal: the racing-retry line — 8 threads posting the same Idempotency-Key at once
    // all get 200 with identical bodies, and exactly one copy is delivered. Each thread's body
    // differs (its own submission ids, one of them to an unknown device), so identical answers
    // prove a replay of one request and one delivery proves only one was processed (not mere
    // submission-id dedup). Method: a barrier; then the receiver's queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    let barrier = Barrier::new(8);
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let client = server.client();
                let (barrier, alice, bob, key) = (&barrier, &alice, &bob, &key);
                s.spawn(move || -> Result<(u16, Vec<u8>), String> {
                    let body = wire::encode_send_request(&[
                        Submission::to(&bob.id, format!("copy {i}").as_bytes()),
                        Submission::to(uuid::Uuid::new_v4().as_bytes(), b"x"),
                    ]);
                    barrier.wait();
                    let r = post_messages(&client, alice.token(), key, body).map_err(|e| e.to_string())?;
                    Ok((r.status, r.body))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect::<Result<Vec<_>, String>>()
    })?;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{answers:?}");
        assert_eq!(body, &answers[0].1, "every racer must get the same answer");
    }
    assert_eq!(wire::decode_send_response(&answers[0].1)?.len(), 1);
    let got = texts(&queued_for(&server, &bob)?);
    assert_eq!(got.len(), 1, "exactly one racer's message may be stored: {got:?}");
    Ok(())
}

#[test]
fn duplicate_submission_ids_are_dropped_per_target() -> TestResult {
    // Goal: §7.2 dedup as this server scopes it — per (sender device, submission id, target
    // device): the same id twice in one request to one target stores one; the same id again in
    // a later request (new key) stores nothing and reports no failure; the same id to a second
    // target stores that copy; the same id from another sending device is independent; after
    // the copy was acked and deleted, the same id can be stored again. Method: the requests,
    // then the queues.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let alice2 = add_device(&client, &alice.user, 2, 0)?;
    let bob = member(&client, "bob", 0)?;
    let carol = member(&client, "carol", 0)?;
    let sid = *uuid::Uuid::new_v4().as_bytes();
    let f = send_ok(
        &client,
        alice.token(),
        &[
            Submission::new(&sid, &bob.id, b"first"),
            Submission::new(&sid, &bob.id, b"dup in request"),
        ],
    )?;
    assert!(f.is_empty(), "a dropped duplicate is not a failure: {f:?}");
    let f = send_ok(
        &client,
        alice.token(),
        &[Submission::new(&sid, &bob.id, b"dup in next request")],
    )?;
    assert!(f.is_empty(), "{f:?}");
    send_all(
        &client,
        alice.token(),
        &[Submission::new(&sid, &carol.id, b"same id, other target")],
    )?;
    send_all(
        &client,
        alice2.token(),
        &[Submission::new(&sid, &bob.id, b"same id, other sender")],
    )?;

    assert_eq!(
        texts(&queued_for(&server, &bob)?),
        vec!["first", "same id, other sender"]
    );
    assert_eq!(texts(&queued_for(&server, &carol)?), vec!["same id, other target"]);

    // Ack bob's copies; then the pair may be stored again.
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(2, Duration::from_secs(5), true)?;
    assert_eq!(texts(&got), vec!["first", "same id, other sender"]);
    gw.close()?;
    data::wait_queue_empty(&server, &bob, Duration::from_secs(5))?;
    send_all(
        &client,
        alice.token(),
        &[Submission::new(&sid, &bob.id, b"after the ack")],
    )?;
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["after the ack"]);
    Ok(())
}

#[test]
fn deleted_device_token_cannot_queue_messages() -> TestResult {
    // Goal: §3.3 "stale device tokens" with §1 — after its device is deleted, the device's
    // still-valid access token must not get messages queued: the reference answers 500 (the
    // sender device no longer exists), a new implementation may answer 401; either way nothing
    // from the deleted device may sit in anybody's queue (deletion cascades to the messages a
    // device sent). Method: delete alice's device, send with its token, look at bob's queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let resp = client.delete_device(&alice.user.token, &alice.device_id)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    let resp = send(
        &client,
        alice.token(),
        &[Submission::to(&bob.id, b"from a deleted device")],
    )?;
    assert!(
        resp.status == 401 || resp.status == 500,
        "a deleted device's token must not be able to send (401 or 500): {resp:?}"
    );
    let left = queued_for(&server, &bob)?;
    assert!(
        left.is_empty(),
        "a deleted device's message was queued: {:?}",
        texts(&left)
    );
    Ok(())
}

#[test]
fn idempotency_keys_survive_a_restart() -> TestResult {
    // Goal: §7.1 steps 4 and 8 — the cached answer lives for the TTL, not for the process: after
    // a restart a repeat of the key (even with another body) gets the first answer and stores
    // nothing. Method: send with key K (one failing submission, so the answer is not empty),
    // restart, repeat K with a different body, look at the queue.
    let mut server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let key = random_uuid();
    let lost = Submission::to(uuid::Uuid::new_v4().as_bytes(), b"x");
    let body = wire::encode_send_request(&[Submission::to(&bob.id, b"before"), lost]);
    let first = post_messages(&client, alice.token(), &key, body)?;
    assert_eq!(data::decode_200(&first)?.len(), 1);
    server.restart()?;
    let client = server.client();
    let other = wire::encode_send_request(&[Submission::to(&bob.id, b"after")]);
    let again = post_messages(&client, alice.token(), &key, other)?;
    assert_eq!(
        (again.status, &again.body),
        (200, &first.body),
        "the answer must be replayed after a restart"
    );
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["before"]);
    Ok(())
}

//! Pre-key low signalling over the gateway (BEHAVIOR §6.4, §8.4, §8.6; TEST-CASES D43, E49,
//! E50, E52, E53): the welcome `PreKeyStatus` below the threshold (and none at or above it),
//! a status after a bundle fetch leaves the device strictly below the threshold, debouncing of
//! many concurrent fetches, no status when the client refilled meanwhile, and no lost message
//! notification when both kinds of event interleave.

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::time::Duration;

use crate::common::data::{self, member, upload_body, upload_keys_ok};
use crate::common::gateway::Gateway;
use crate::common::wire::{FramePayload, Submission};
use crate::common::TestResult;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn welcome_status_is_sent_only_below_the_threshold() -> TestResult {
    // Goal: D43, §8.4 step 1 — a device with 0 OTPKs gets `PreKeyStatus {0, 20}` as the very
    // first frame (encoded `62 02 10 14`); one with exactly 20 (= threshold) gets none; one with
    // 19 gets {19, 20}. Method: three devices; for the silent one, a message sent after
    // connecting must be the first frame.
    let server = data::server_with(&[])?;
    let client = server.client();
    let zero = member(&client, "zero", 0)?;
    let twenty = member(&client, "twenty", 20)?;
    let nineteen = member(&client, "nineteen", 19)?;

    let mut gw = Gateway::connect(&server, zero.token())?;
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 0,
            threshold: 20
        })
    );
    let mut gw19 = Gateway::connect(&server, nineteen.token())?;
    assert_eq!(
        gw19.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 19,
            threshold: 20
        })
    );

    let mut gw20 = Gateway::connect(&server, twenty.token())?;
    data::send_text(&client, zero.token(), &twenty.id, "first")?;
    match gw20.next_frame(WAIT)? {
        Some(FramePayload::EnvelopeBatch(envs)) => assert_eq!(data::texts(&envs), vec!["first"]),
        other => return Err(format!("expected the message as first frame, got {other:?}").into()),
    }
    assert!(gw20.statuses.is_empty());
    Ok(())
}

#[test]
fn status_follows_the_fetch_that_goes_below_the_threshold() -> TestResult {
    // Goal: E49 — a connected device with 21 OTPKs whose bundle is fetched twice receives one
    // `PreKeyStatus` with count 19: the first fetch leaves 20 (not below the threshold) and
    // signals nothing. Method: debounce 50 ms; fetch once, wait past the debounce, fetch again.
    let server = data::server_with(&["--ws-prekey-debounce-interval-ms", "50"])?;
    let client = server.client();
    let alice = member(&client, "alice", 21)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(
        gw.next_frame(Duration::from_millis(400))?,
        None,
        "20 left is not below 20"
    );
    data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 19,
            threshold: 20
        })
    );
    Ok(())
}

#[test]
fn fetch_from_an_empty_pool_signals_again() -> TestResult {
    // Goal: E50 — a connected device with 0 OTPKs gets the welcome status; a later bundle fetch
    // (200, `oneTimePreKey: null`) produces another status with count 0. Method: as described,
    // debounce 50 ms.
    let server = data::server_with(&["--ws-prekey-debounce-interval-ms", "50"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 0,
            threshold: 20
        })
    );
    let b = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(data::otpk_id(&b[0])?, None);
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus {
            count: 0,
            threshold: 20
        })
    );
    Ok(())
}

#[test]
fn threshold_follows_the_flag() -> TestResult {
    // Goal: §14.4 — `--messaging-pre-key-refill-threshold 5`: a device with 5 keys gets no
    // welcome status, one fetch (4 left) gets `{4, 5}`. Method: as described.
    let server = data::server_with(&[
        "--messaging-pre-key-refill-threshold",
        "5",
        "--ws-prekey-debounce-interval-ms",
        "20",
    ])?;
    let client = server.client();
    let alice = member(&client, "alice", 5)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    data::fetch_bundles_ok(&client, alice.token(), alice.user_id())?;
    assert_eq!(
        gw.next_frame(WAIT)?,
        Some(FramePayload::PreKeyStatus { count: 4, threshold: 5 }),
        "no welcome at 5, then 4 after the fetch"
    );
    Ok(())
}

#[test]
fn concurrent_fetches_are_debounced() -> TestResult {
    // Goal: E52, §8.6 — a connected device with 25 OTPKs whose bundle is fetched 20 times at
    // once receives at least 1 and fewer than 10 status frames, and the last one reports 5.
    // Method: default debounce (500 ms); 20 threads behind a barrier; read frames until 1 s of
    // quiet after the fetches.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 25)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    let barrier = Barrier::new(20);
    let ids: Vec<Option<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let client = server.client();
                let (barrier, bob, user) = (&barrier, &bob, alice.user_id().to_string());
                s.spawn(move || -> Result<Option<i64>, String> {
                    barrier.wait();
                    let b = data::fetch_bundles_ok(&client, bob.token(), &user).map_err(|e| e.to_string())?;
                    data::otpk_id(&b[0]).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect::<Result<Vec<_>, String>>()
    })?;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 20, "{ids:?}");
    while let Some(f) = gw.next_frame(Duration::from_millis(1000))? {
        if !matches!(f, FramePayload::PreKeyStatus { .. }) {
            return Err(format!("unexpected frame {f:?}").into());
        }
    }
    let n = gw.statuses.len();
    assert!(
        (1..10).contains(&n),
        "expected 1..10 status frames, got {:?}",
        gw.statuses
    );
    assert_eq!(gw.statuses.last(), Some(&(5, 20)), "{:?}", gw.statuses);
    Ok(())
}

#[test]
fn refill_during_the_debounce_suppresses_the_status() -> TestResult {
    // Goal: §8.6 pre-key status pump — the count is read after the debounce; if the client
    // refilled meanwhile (back at or above the threshold) nothing is sent. Method: debounce
    // 400 ms, a device with 20 keys; fetch (19 left), refill 5 keys at once, wait well past
    // the debounce: no status.
    let server = data::server_with(&["--ws-prekey-debounce-interval-ms", "400"])?;
    let client = server.client();
    let alice = member(&client, "alice", 20)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    upload_keys_ok(&client, alice.token(), &upload_body(1, None, 2, 100, 5))?;
    assert_eq!(gw.next_frame(Duration::from_millis(900))?, None, "{:?}", gw.statuses);
    Ok(())
}

#[test]
fn messages_and_prekey_events_interleaved_lose_nothing() -> TestResult {
    // Goal: E53 — a connected device with 21 OTPKs that receives 50 messages interleaved with
    // 50 bundle fetches gets exactly 50 envelopes (no MessageReceived is lost among PreKeyLow
    // events) plus some status frames. Method: one thread sends 50 single messages, another
    // fetches 50 times, concurrently; then the device collects 50 envelopes and a sentinel it
    // sends itself must be the next one.
    let server = data::server_with(&["--ws-prekey-debounce-interval-ms", "50"])?;
    let client = server.client();
    let alice = member(&client, "alice", 21)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, alice.token())?;
    std::thread::scope(|s| -> TestResult {
        let sender = s.spawn(|| -> Result<(), String> {
            let client = server.client();
            for i in 0..50 {
                data::send_text(&client, bob.token(), &alice.id, &format!("m{i}")).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        let fetcher = s.spawn(|| -> Result<(), String> {
            let client = server.client();
            for _ in 0..50 {
                data::fetch_bundles_ok(&client, bob.token(), alice.user_id()).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        sender.join().map_err(|_| "sender panicked")??;
        fetcher.join().map_err(|_| "fetcher panicked")??;
        Ok(())
    })?;
    let got = gw.collect_envelopes(50, Duration::from_secs(10), true)?;
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(
        data::texts(&got),
        expected,
        "one sender's messages arrive once each, in order"
    );
    data::send_all(&client, alice.token(), &[Submission::to(&alice.id, b"end")])?;
    let next = gw.collect_envelopes(1, WAIT, true)?;
    assert_eq!(
        data::texts(&next),
        vec!["end"],
        "nothing may follow the 50 but the sentinel"
    );
    while let Some(f) = gw.next_frame(Duration::from_millis(500))? {
        if !matches!(f, FramePayload::PreKeyStatus { .. }) {
            return Err(format!("unexpected frame {f:?}").into());
        }
    }
    assert!(!gw.statuses.is_empty(), "the fetches must have produced status frames");
    assert_eq!(gw.statuses.last().map(|s| s.0), Some(0), "{:?}", gw.statuses);
    Ok(())
}

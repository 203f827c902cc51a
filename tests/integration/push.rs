//! Push tokens and wake-up pushes (BEHAVIOR §11, TEST-CASES J96-J106) against a loopback
//! stand-in for FCM (`common::fcm`): the real server, configured with a service-account file
//! whose key the stand-in knows, pushes through the FCM HTTP v1 protocol. Job state is
//! observed the way a phone would: by the pushes that arrive (or do not).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::client::Client;
use crate::common::data::{self, member, send_text, Member};
use crate::common::fcm::{self, FcmStandIn};
use crate::common::gateway::Gateway;
use crate::common::{TestResult, TestServer};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A relay wired to a fresh FCM stand-in, with `extra` flags.
struct Setup {
    fcm: FcmStandIn,
    server: TestServer,
    _credentials: tempfile::TempDir,
}

fn setup(extra: &[&str]) -> Res<Setup> {
    let fcm = FcmStandIn::start()?;
    let credentials = tempfile::tempdir()?;
    let file: PathBuf = fcm.write_credentials(credentials.path())?;
    let mut flags: Vec<String> = fcm.flags(&file);
    flags.extend(
        [
            "--notifications-push-delay-secs",
            "1",
            "--notifications-worker-interval-secs",
            "1",
        ]
        .map(String::from),
    );
    flags.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = data::server_with(&refs)?;
    Ok(Setup {
        fcm,
        server,
        _credentials: credentials,
    })
}

fn put_token(client: &Client, token: &str, push_token: &str) -> Res<u16> {
    let resp = client
        .put("/v1/push-tokens")
        .bearer(token)
        .json(&json!({ "token": push_token }))
        .send()?;
    Ok(resp.status)
}

/// A member with a push token.
fn subscribed(client: &Client, name: &str, push_token: &str) -> Res<Member> {
    let m = member(client, name, 5)?;
    assert_eq!(put_token(client, m.token(), push_token)?, 200);
    Ok(m)
}

/// Asserts that no push arrives for `within` beyond the `already` seen.
fn assert_no_more_sends(fcm: &FcmStandIn, already: usize, within: Duration) {
    let sends = fcm.wait_sends(already + 1, within);
    assert_eq!(sends.len(), already, "unexpected pushes: {sends:?}");
}

#[test]
fn a_burst_of_messages_yields_one_fcm_push() -> TestResult {
    // Goal: J96 and J100 — messages to an offline device with a push token lead to exactly one
    // push, however many arrive within the delay, and the push is FCM HTTP v1 as §11.2 shapes
    // it: bearer access token from the OAuth2 JWT-bearer exchange (an RS256 assertion signed by
    // the service account), a data-only content-free message with the collapse keys. Method:
    // five sends within the 1 s delay, then wait for pushes well past it.
    let s = setup(&[])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = subscribed(&client, "bob", "bob-fcm-token")?;
    for i in 0..5 {
        send_text(&client, alice.token(), &bob.id, &format!("m{i}"))?;
    }
    let sends = s.fcm.wait_sends(1, Duration::from_secs(10));
    assert_eq!(sends.len(), 1, "one push");
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(3));
    let push = &sends[0];
    assert_eq!(push.authorization, format!("Bearer {}", fcm::ACCESS_TOKEN));
    let expected = json!({"message": {
        "token": "bob-fcm-token",
        "data": {"action": "check"},
        "android": {"collapseKey": "obscura_check", "priority": "HIGH", "ttl": "604800s"},
        "apns": {
            "headers": {"apns-push-type": "background", "apns-priority": "5", "apns-collapse-id": "obscura_check"},
            "payload": {"aps": {"content-available": 1}}
        }
    }});
    assert_eq!(push.body, expected);
    let forms = s.fcm.token_requests();
    assert_eq!(forms.len(), 1, "the access token is cached");
    check_assertion(&forms[0], s.fcm.port)?;
    Ok(())
}

/// Checks the token request: the JWT-bearer grant with an RS256 assertion that verifies with
/// the service account's public key and carries §11.2's claims.
fn check_assertion(form: &str, port: u16) -> TestResult {
    let fields: Vec<(&str, &str)> = form.split('&').filter_map(|p| p.split_once('=')).collect();
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    assert_eq!(
        field("grant_type"),
        Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
    );
    let assertion = field("assertion").ok_or("no assertion")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(fcm::PUBLIC_KEY_PEM.as_bytes())?;
    let audience = format!("http://127.0.0.1:{port}/token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)?.claims;
    assert_eq!(claims["iss"], fcm::CLIENT_EMAIL);
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    let (iat, exp) = (
        claims["iat"].as_i64().ok_or("iat")?,
        claims["exp"].as_i64().ok_or("exp")?,
    );
    assert_eq!(exp - iat, 3600);
    Ok(())
}

#[test]
fn an_ack_within_the_delay_cancels_the_push() -> TestResult {
    // Goal: J97 — an online client that acks within the delay gets no push; one that receives
    // but does not ack gets one. Method: 3 s delay; carol acks at once, dave never acks.
    let s = setup(&["--notifications-push-delay-secs", "3"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let carol = subscribed(&client, "carol", "carol-token")?;
    let dave = subscribed(&client, "dave", "dave-token")?;
    let mut carol_socket = Gateway::connect(&s.server, carol.token())?;
    let mut dave_socket = Gateway::connect(&s.server, dave.token())?;
    send_text(&client, alice.token(), &carol.id, "to carol")?;
    send_text(&client, alice.token(), &dave.id, "to dave")?;
    carol_socket.collect_envelopes(1, Duration::from_secs(5), true)?;
    dave_socket.collect_envelopes(1, Duration::from_secs(5), false)?;
    let sends = s.fcm.wait_sends(1, Duration::from_secs(8));
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].token(), "dave-token");
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(2));
    Ok(())
}

#[test]
fn opening_a_session_cancels_the_push() -> TestResult {
    // Goal: J98 — a device that connects within the delay gets no push for what was queued
    // before. Method: 3 s delay; a message to offline erin and to offline frank; erin connects
    // at once, frank does not; only frank is pushed.
    let s = setup(&["--notifications-push-delay-secs", "3"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let erin = subscribed(&client, "erin", "erin-token")?;
    let frank = subscribed(&client, "frank", "frank-token")?;
    send_text(&client, alice.token(), &erin.id, "to erin")?;
    send_text(&client, alice.token(), &frank.id, "to frank")?;
    let mut socket = Gateway::connect(&s.server, erin.token())?;
    socket.collect_envelopes(1, Duration::from_secs(5), false)?;
    let sends = s.fcm.wait_sends(1, Duration::from_secs(8));
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].token(), "frank-token");
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(2));
    Ok(())
}

#[test]
fn a_device_without_a_token_is_never_pushed() -> TestResult {
    // Goal: J103 — a message to a device without a push token sends nothing. Method: a message
    // to grace (no token), then one to heidi (token) as a control: heidi's push arrives, and it
    // is the only one.
    let s = setup(&[])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let grace = member(&client, "grace", 5)?;
    let heidi = subscribed(&client, "heidi", "heidi-token")?;
    send_text(&client, alice.token(), &grace.id, "to grace")?;
    std::thread::sleep(Duration::from_millis(1500));
    send_text(&client, alice.token(), &heidi.id, "to heidi")?;
    let sends = s.fcm.wait_sends(1, Duration::from_secs(10));
    assert_eq!(sends.iter().map(|p| p.token()).collect::<Vec<_>>(), ["heidi-token"]);
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(2));
    Ok(())
}

#[test]
fn an_unregistered_token_is_deleted_from_every_device() -> TestResult {
    // Goal: J102 — when FCM says the token is unregistered (404), the token is deleted (within
    // the cleanup interval) from every device carrying that string, so later messages push
    // nothing; other tokens are untouched. Method: ivan and judy share one token, kim has her
    // own; after the 404, new messages to all three push only kim.
    let s = setup(&["--notifications-invalid-token-cleanup-interval-secs", "1"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let ivan = subscribed(&client, "ivan", "shared-token")?;
    let judy = subscribed(&client, "judy", "shared-token")?;
    let kim = subscribed(&client, "kim", "kim-token")?;
    s.fcm.script(&[(404, r#"{"error":{"code":404,"status":"NOT_FOUND"}}"#)]);
    send_text(&client, alice.token(), &ivan.id, "to ivan")?;
    assert_eq!(s.fcm.wait_sends(1, Duration::from_secs(10)).len(), 1);
    std::thread::sleep(Duration::from_secs(3));
    for m in [&ivan, &judy, &kim] {
        send_text(&client, alice.token(), &m.id, "again")?;
    }
    let sends = s.fcm.wait_sends(2, Duration::from_secs(10));
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1].token(), "kim-token");
    assert_no_more_sends(&s.fcm, 2, Duration::from_secs(3));
    Ok(())
}

#[test]
fn a_failed_push_is_retried_after_the_lease() -> TestResult {
    // Goal: J104 — a transient failure (500, then a 429 quota answer) leaves the job; it is due
    // again when the visibility timeout has passed, and a successful attempt ends it. Method:
    // 2 s visibility timeout; the stand-in fails twice, then accepts.
    let s = setup(&["--notifications-visibility-timeout-secs", "2"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = subscribed(&client, "bob", "bob-token")?;
    s.fcm
        .script(&[(500, "oops"), (429, r#"{"error":{"status":"RESOURCE_EXHAUSTED"}}"#)]);
    send_text(&client, alice.token(), &bob.id, "hi")?;
    let sends = s.fcm.wait_sends(3, Duration::from_secs(15));
    assert_eq!(sends.len(), 3);
    for pair in sends.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(1500),
            "retried after {gap:?}, before the lease ended"
        );
    }
    assert_no_more_sends(&s.fcm, 3, Duration::from_secs(4));
    Ok(())
}

#[test]
fn pushes_in_flight_stay_within_the_concurrency() -> TestResult {
    // Goal: J101 — with a concurrency of 2 and provider calls of 300 ms, ten due jobs never have
    // more than 2 pushes in flight (and at least 1), and all ten are delivered. Method: ten
    // subscribed devices each get a message; the stand-in counts concurrent sends.
    let s = setup(&["--notifications-worker-concurrency", "2"])?;
    s.fcm.hold(Duration::from_millis(300));
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let mut targets = Vec::new();
    for i in 0..10 {
        targets.push(subscribed(&client, &format!("target{i}"), &format!("token-{i}"))?);
    }
    for t in &targets {
        send_text(&client, alice.token(), &t.id, "wake up")?;
    }
    let sends = s.fcm.wait_sends(10, Duration::from_secs(20));
    assert_eq!(sends.len(), 10);
    let max = s.fcm.max_in_flight();
    assert!((1..=2).contains(&max), "{max} pushes in flight");
    let mut tokens: Vec<&str> = sends.iter().map(|p| p.token()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 10, "each device pushed once");
    Ok(())
}

#[test]
fn push_tokens_are_validated_replaced_and_stored_untrimmed() -> TestResult {
    // Goal: J105, J106 and §11.1 — a device token is set (200) and replaced by a second PUT;
    // the value is checked trimmed (empty → 400, over 4096 bytes → 400 with the texts) but stored
    // as sent; user-scoped tokens get 403, a missing token 401, a wrong shape 400, and the token
    // of a deleted device 401. Method: the pushes show which token is stored.
    let s = setup(&[])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = member(&client, "bob", 5)?;
    assert_eq!(put_token(&client, bob.token(), "first")?, 200);
    assert_eq!(put_token(&client, bob.token(), "  second\t")?, 200);
    let empty = client
        .put("/v1/push-tokens")
        .bearer(bob.token())
        .json(&json!({"token": " \n "}))
        .send()?;
    empty.expect_error_text(400, "Token cannot be empty")?;
    let long = format!(" {} ", "x".repeat(4097));
    let too_long = client
        .put("/v1/push-tokens")
        .bearer(bob.token())
        .json(&json!({ "token": long }))
        .send()?;
    too_long.expect_error_text(400, "Token is too long (max 4096 characters)")?;
    assert_eq!(
        put_token(&client, bob.token(), &format!(" {} ", "y".repeat(4096)))?,
        200
    );
    assert_eq!(put_token(&client, bob.token(), "  second\t")?, 200);
    client
        .put("/v1/push-tokens")
        .bearer(&bob.user.token)
        .json(&json!({"token": "user-scoped"}))
        .send()?
        .expect_error_text(403, "Device-scoped token required")?;
    let anonymous = client.put("/v1/push-tokens").json(&json!({"token": "x"})).send()?;
    assert_eq!(anonymous.status, 401);
    let shape = client
        .put("/v1/push-tokens")
        .bearer(bob.token())
        .json(&json!({"token": 5}))
        .send()?;
    assert_eq!(shape.status, 400);
    send_text(&client, alice.token(), &bob.id, "hi")?;
    let sends = s.fcm.wait_sends(1, Duration::from_secs(10));
    assert_eq!(sends.iter().map(|p| p.token()).collect::<Vec<_>>(), ["  second\t"]);
    let doomed = data::add_device(&client, &alice.user, 2, 1)?;
    assert_eq!(client.delete_device(&alice.user.token, &doomed.device_id)?.status, 200);
    assert_eq!(put_token(&client, doomed.token(), "late")?, 401);
    Ok(())
}

#[test]
fn pending_pushes_survive_a_restart() -> TestResult {
    // Goal: §11.2 — jobs are stored: a job scheduled before a restart is pushed after it.
    // Method: a 4 s delay; restart right after the send; the push still arrives, once.
    let mut s = setup(&["--notifications-push-delay-secs", "4"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = subscribed(&client, "bob", "bob-token")?;
    send_text(&client, alice.token(), &bob.id, "hi")?;
    let sent = Instant::now();
    s.server.restart()?;
    let sends = s.fcm.wait_sends(1, Duration::from_secs(12));
    assert_eq!(sends.len(), 1);
    assert!(
        sends[0].at.duration_since(sent) >= Duration::from_secs(3),
        "pushed before its due time"
    );
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(2));
    Ok(())
}

#[test]
fn an_unusable_fcm_credentials_file_stops_the_start() -> TestResult {
    // Goal: §11.2 — FCM configured with a credentials file that is missing or not a service
    // account is a startup error, not a server that silently never pushes. Method: start with
    // each; the start fails and the log names the file problem.
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{\"client_email\": \"x\", \"private_key\": \"not a key\"}")?;
    for file in [dir.path().join("missing.json"), garbage] {
        let path = file.display().to_string();
        let started = TestServer::start_with(&["--fcm-project-id", "p", "--fcm-credentials-file", &path]);
        let err = started.err().ok_or("the server started")?.to_string();
        assert!(err.contains("FCM credentials file"), "{err}");
    }
    Ok(())
}

#[test]
fn without_fcm_pushes_are_logged_and_counted() -> TestResult {
    // Goal: §11.2 — without FCM configured a due push is logged (without the token) and counted
    // as sent. Method: a message to a subscribed device; /metrics shows one push sent, and the
    // log has the line but never the token.
    let server = data::server_with(&["--notifications-push-delay-secs", "1"])?;
    let client = server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = subscribed(&client, "bob", "secret-bob-push-token")?;
    send_text(&client, alice.token(), &bob.id, "hi")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metric = "obscura_push_notifications_sent_total";
    loop {
        let text = server.mgmt_client().get("/metrics").send()?.text();
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if total >= 1.0 {
            assert_eq!(total, 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "no push counted:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = server.log_tail(1 << 20);
    assert!(log.contains("wake-up push"), "{log}");
    assert!(!log.contains("secret-bob-push-token"), "the token leaked into the log");
    Ok(())
}

#[test]
fn bundle_fetches_that_leave_a_device_low_push_it() -> TestResult {
    // Goal: E51 — an offline device with 21 one-time prekeys and a push token whose bundle is
    // fetched twice (19 left, below the threshold of 20) gets a wake-up push (delay 0); one
    // fetch (20 left) does not. Method: two subscribed devices, one fetched once, one twice.
    let s = setup(&["--notifications-push-delay-secs", "0"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let once = member(&client, "once", 21)?;
    let twice = member(&client, "twice", 21)?;
    assert_eq!(put_token(&client, once.token(), "once-token")?, 200);
    assert_eq!(put_token(&client, twice.token(), "twice-token")?, 200);
    data::fetch_bundles_ok(&client, alice.token(), once.user_id())?;
    for _ in 0..2 {
        data::fetch_bundles_ok(&client, alice.token(), twice.user_id())?;
    }
    let sends = s.fcm.wait_sends(1, Duration::from_secs(10));
    assert_eq!(sends.iter().map(|p| p.token()).collect::<Vec<_>>(), ["twice-token"]);
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(2));
    Ok(())
}

#[test]
fn an_offline_burst_pushes_once_and_an_online_acking_client_never_again() -> TestResult {
    // Goal: I92, I94, I95 on one node — 49 messages accepted while the receiver is offline
    // yield exactly one push within 4 s (delay 2 s); after it connects and acks, further
    // messages are delivered live and acked, and no second push follows. Method: count the
    // stand-in's pushes 3 s after the last ack.
    let s = setup(&["--notifications-push-delay-secs", "2"])?;
    let client = s.server.client();
    let alice = member(&client, "alice", 5)?;
    let bob = subscribed(&client, "bob", "bob-token")?;
    let burst: Vec<_> = (0..49)
        .map(|i| crate::common::wire::Submission::to(&bob.id, format!("m{i}").as_bytes()))
        .collect();
    for chunk in burst.chunks(10) {
        data::send_all(&client, alice.token(), chunk)?;
    }
    let sends = s.fcm.wait_sends(1, Duration::from_secs(4));
    assert_eq!(sends.len(), 1, "one push within 4 s");
    let mut socket = Gateway::connect(&s.server, bob.token())?;
    socket.collect_envelopes(49, Duration::from_secs(10), true)?;
    send_text(&client, alice.token(), &bob.id, "live")?;
    socket.collect_envelopes(1, Duration::from_secs(5), true)?;
    assert_no_more_sends(&s.fcm, 1, Duration::from_secs(3));
    Ok(())
}

//! Rate limiting (BEHAVIOR §3.4-3.5, TEST-CASES N140-N148): per-client-IP buckets per tier,
//! the 429 response, client-IP extraction from X-Forwarded-For behind trusted proxies (and
//! its spoofing cases), tier independence, recovery, and what is and is not rate-limited.
//! The standard-tier probe is `GET /v1/devices/{random uuid}` with a valid token (404); tokens
//! come from registration, which draws from the auth tier, not the standard one.

use std::time::Duration;

use crate::common::{random_uuid, Client, Resp, TestResult, TestServer, PASSWORD};

/// One standard-tier request, optionally with an X-Forwarded-For value.
fn probe(client: &Client, token: &str, xff: Option<&str>) -> Result<Resp, Box<dyn std::error::Error>> {
    let mut req = client.get(&format!("/v1/devices/{}", random_uuid())).bearer(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send()
}

fn passes(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 404, "{what} should pass the limiter (404): {resp:?}");
}

/// Asserts a well-formed 429: retry-after and x-ratelimit-after as whole seconds, an
/// x-request-id, and this server's JSON error body.
fn throttled(resp: &Resp, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(resp.status, 429, "{what} should be rate limited: {resp:?}");
    resp.expect_error(429)?;
    let retry = resp
        .header("retry-after")
        .ok_or_else(|| format!("429 without retry-after: {resp:?}"))?;
    let secs: u64 = retry
        .parse()
        .map_err(|_| format!("retry-after {retry:?} is not whole seconds"))?;
    assert!(secs <= 60, "retry-after {secs} is implausible");
    if let Some(after) = resp.header("x-ratelimit-after") {
        after
            .parse::<u64>()
            .map_err(|_| format!("x-ratelimit-after {after:?} is not whole seconds"))?;
    }
    assert!(
        resp.header("x-request-id").is_some(),
        "429 without x-request-id: {resp:?}"
    );
    Ok(())
}

/// A server with the given standard-tier limits (auth tier stays raised), and a user token.
fn standard_tier(per_second: &str, burst: &str) -> Result<(TestServer, Client, String), Box<dyn std::error::Error>> {
    let server = TestServer::start_with(&["--rate-limit-per-second", per_second, "--rate-limit-burst", burst])?;
    let client = server.client();
    let user = client.register_ok("limited")?;
    Ok((server, client, user.token))
}

#[test]
fn burst_then_429_per_forwarded_client() -> TestResult {
    // Goal: N140-N141, N148 — per-second 1, burst 2, client 1.1.1.1 behind the trusted
    // loopback proxy: two requests pass, the third is 429 with Retry-After; 2.2.2.2 has its
    // own bucket. Method: probes with X-Forwarded-For.
    let (_server, client, token) = standard_tier("1", "2")?;
    passes(&probe(&client, &token, Some("1.1.1.1"))?, "1st from 1.1.1.1");
    passes(&probe(&client, &token, Some("1.1.1.1"))?, "2nd from 1.1.1.1");
    throttled(&probe(&client, &token, Some("1.1.1.1"))?, "3rd from 1.1.1.1")?;
    passes(&probe(&client, &token, Some("2.2.2.2"))?, "1st from 2.2.2.2");
    Ok(())
}

#[test]
fn rightmost_untrusted_forwarded_address_is_the_key() -> TestResult {
    // Goal: N142 — X-Forwarded-For is read right to left and the right-most untrusted
    // parseable address is the client: `9.9.9.9, 1.1.1.1, 2.2.2.2` is keyed on 2.2.2.2, so a
    // later `different.spoof, 2.2.2.2` shares its bucket. Method: burst 2.
    let (_server, client, token) = standard_tier("1", "2")?;
    passes(&probe(&client, &token, Some("9.9.9.9, 1.1.1.1, 2.2.2.2"))?, "1st chain");
    passes(&probe(&client, &token, Some("9.9.9.9, 1.1.1.1, 2.2.2.2"))?, "2nd chain");
    throttled(
        &probe(&client, &token, Some("different.spoof, 2.2.2.2"))?,
        "spoofed prefix",
    )?;
    passes(&probe(&client, &token, Some("9.9.9.9"))?, "9.9.9.9 alone");
    Ok(())
}

#[test]
fn spoofed_left_entries_do_not_escape_the_limit() -> TestResult {
    // Goal: N145 — burst 1: after `1.2.3.4, 5.6.7.8` (keyed on 5.6.7.8), `9.9.9.9, 5.6.7.8` is
    // 429 while plain `1.2.3.4` passes. Trusted addresses in the chain are skipped too.
    // Method: probes with those headers.
    let (_server, client, token) = standard_tier("1", "1")?;
    passes(&probe(&client, &token, Some("1.2.3.4, 5.6.7.8"))?, "first chain");
    throttled(
        &probe(&client, &token, Some("9.9.9.9, 5.6.7.8"))?,
        "same right-most address",
    )?;
    passes(&probe(&client, &token, Some("1.2.3.4"))?, "1.2.3.4 alone");
    // 127.0.0.1 is a trusted proxy, so `5.6.7.8, 127.0.0.1` is still keyed on 5.6.7.8, and
    // unparsable entries are skipped.
    throttled(
        &probe(&client, &token, Some("5.6.7.8, 127.0.0.1"))?,
        "trusted hop skipped",
    )?;
    throttled(
        &probe(&client, &token, Some("5.6.7.8, garbage, unknown"))?,
        "unparsable entries skipped",
    )?;
    Ok(())
}

#[test]
fn twenty_forwarded_clients_all_pass() -> TestResult {
    // Goal: N143 — with burst 1, twenty concurrent requests from twenty different forwarded
    // addresses all pass (buckets are per client, not global). Method: twenty threads.
    let (_server, client, token) = standard_tier("1", "1")?;
    let handles: Vec<_> = (1..=20)
        .map(|i| {
            let client = client.clone();
            let token = token.clone();
            std::thread::spawn(move || -> Result<u16, String> {
                probe(&client, &token, Some(&format!("203.0.113.{i}")))
                    .map(|r| r.status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let status = h.join().map_err(|_| "probe thread panicked")??;
        assert_eq!(status, 404, "client {} was limited", i + 1);
    }
    Ok(())
}

#[test]
fn peer_address_is_the_key_without_forwarded_for() -> TestResult {
    // Goal: N144 — without X-Forwarded-For the trusted peer's own address is the key: burst 3,
    // one device creation and two probes pass, the next request is 429. Method: requests from
    // 127.0.0.1 without the header.
    let (_server, client, token) = standard_tier("1", "3")?;
    client.create_device_ok(&token, None)?;
    passes(&probe(&client, &token, None)?, "1st probe");
    passes(&probe(&client, &token, None)?, "2nd probe");
    throttled(&probe(&client, &token, None)?, "4th standard request")?;
    // An empty or all-unparsable header also falls back to the peer.
    throttled(&probe(&client, &token, Some(""))?, "empty XFF")?;
    throttled(&probe(&client, &token, Some("nonsense"))?, "unparsable XFF")?;
    Ok(())
}

#[test]
fn untrusted_peer_forwarded_for_is_ignored() -> TestResult {
    // Goal: §3.5, S177 — when the peer is not a trusted proxy its X-Forwarded-For is ignored,
    // so changing the header does not give a fresh bucket. Method: trust only 10.0.0.0/8 (not
    // loopback), burst 1, probe with two different headers.
    let server = TestServer::start_with(&[
        "--trusted-proxies",
        "10.0.0.0/8",
        "--rate-limit-per-second",
        "1",
        "--rate-limit-burst",
        "1",
    ])?;
    let client = server.client();
    let token = client.register_ok("untrusted")?.token;
    passes(&probe(&client, &token, Some("1.1.1.1"))?, "first");
    throttled(
        &probe(&client, &token, Some("2.2.2.2"))?,
        "different XFF from the same untrusted peer",
    )?;
    Ok(())
}

#[test]
fn auth_tier_is_independent_of_the_standard_tier() -> TestResult {
    // Goal: N146 — exhausting the auth tier (burst 1: the second registration is 429) leaves
    // the standard tier alone (five probes still 404). Method: auth limits lowered, standard
    // raised.
    let server = TestServer::start_with(&["--auth-rate-limit-per-second", "1", "--auth-rate-limit-burst", "1"])?;
    let client = server.client();
    let token = client.register_ok("first")?.token;
    throttled(&client.register("second", PASSWORD)?, "second registration")?;
    for i in 0..5 {
        passes(&probe(&client, &token, None)?, &format!("probe {i}"));
    }
    Ok(())
}

#[test]
fn auth_routes_share_one_bucket() -> TestResult {
    // Goal: §3.5 — login, refresh and logout draw from the same auth bucket. Method: auth
    // burst 3 (per-second 1); the account is made from one forwarded address, then from
    // another a failed login and two failed refreshes use the bucket up, and a logout and a
    // login from that address are 429.
    let server = TestServer::start_with(&["--auth-rate-limit-per-second", "1", "--auth-rate-limit-burst", "3"])?;
    let client = server.client();
    let user = client
        .post("/v1/users")
        .header("x-forwarded-for", "192.0.2.1")
        .json(&serde_json::json!({"username": "shared", "password": PASSWORD}))
        .send()?;
    let user = crate::common::Auth::from_json(&user.expect_json(201)?)?;
    let from = |req: crate::common::client::Req<'_>| req.header("x-forwarded-for", "192.0.2.2").send();
    from(
        client
            .post("/v1/sessions")
            .json(&serde_json::json!({"username": "nobody", "password": "whatever password"})),
    )?
    .expect_error(401)?;
    from(
        client
            .post("/v1/sessions/refresh")
            .json(&serde_json::json!({"refreshToken": "unknown"})),
    )?
    .expect_error(401)?;
    from(
        client
            .post("/v1/sessions/refresh")
            .json(&serde_json::json!({"refreshToken": "unknown"})),
    )?
    .expect_error(401)?;
    let logout = from(
        client
            .delete("/v1/sessions")
            .bearer(&user.token)
            .json(&serde_json::json!({"refreshToken": user.refresh_token})),
    )?;
    throttled(&logout, "logout")?;
    let login = from(
        client
            .post("/v1/sessions")
            .json(&serde_json::json!({"username": "shared", "password": PASSWORD})),
    )?;
    throttled(&login, "login")?;
    Ok(())
}

#[test]
fn blocked_client_recovers_after_the_refill_interval() -> TestResult {
    // Goal: N147 — per-second 1, burst 1: blocked right after the first request, allowed again
    // 1.1 s later. Method: probe, probe (429), sleep 1.1 s, probe.
    let (_server, client, token) = standard_tier("1", "1")?;
    passes(&probe(&client, &token, None)?, "first");
    throttled(&probe(&client, &token, None)?, "second")?;
    std::thread::sleep(Duration::from_millis(1100));
    passes(&probe(&client, &token, None)?, "after 1.1 s");
    Ok(())
}

#[test]
fn limiter_runs_before_authentication_and_on_405() -> TestResult {
    // Goal: §3.4 — the tier's limiter runs before authentication (an unauthenticated request
    // uses a token and a later one can be 429 instead of 401), and a wrong-method 405 on a
    // tier route also consumes a token. Method: burst 1 per case, fresh forwarded addresses.
    let (_server, client, token) = standard_tier("1", "1")?;
    let unauth = client
        .get("/v1/devices")
        .header("x-forwarded-for", "198.51.100.1")
        .send()?;
    unauth.expect_error(401)?;
    throttled(
        &client
            .get("/v1/devices")
            .header("x-forwarded-for", "198.51.100.1")
            .send()?,
        "unauthenticated after the bucket is empty",
    )?;
    throttled(
        &probe(&client, &token, Some("198.51.100.1"))?,
        "authenticated after the bucket is empty",
    )?;

    client
        .request("PATCH", "/v1/devices")
        .header("x-forwarded-for", "198.51.100.2")
        .send()?
        .expect_error(405)?;
    throttled(&probe(&client, &token, Some("198.51.100.2"))?, "after a 405")?;
    Ok(())
}

#[test]
fn unknown_routes_and_the_document_are_not_rate_limited() -> TestResult {
    // Goal: §3.4 step 1 and §3.5 — an unknown path gets 404 before any limiter, and
    // /openapi.yaml and the management port are not limited. Method: both tiers at burst 1;
    // many such requests, then the first standard request still passes.
    let server = TestServer::start_with(&[
        "--rate-limit-per-second",
        "1",
        "--rate-limit-burst",
        "1",
        "--auth-rate-limit-per-second",
        "1",
        "--auth-rate-limit-burst",
        "1",
    ])?;
    let client = server.client();
    let mgmt = server.mgmt_client();
    for _ in 0..10 {
        client.get("/no/such/route").send()?.expect_error(404)?;
        assert_eq!(client.get("/openapi.yaml").send()?.status, 200);
        assert_eq!(mgmt.get("/livez").send()?.status, 200);
    }
    let token = client.register_ok("after_unlimited")?.token;
    passes(&probe(&client, &token, None)?, "first standard request");
    Ok(())
}

#[test]
fn zero_burst_is_a_startup_error() -> TestResult {
    // Goal: §3.5 — a burst of 0 is refused at start-up. Method: the start must fail (the
    // process exits without writing a ready file).
    for flag in ["--rate-limit-burst", "--auth-rate-limit-burst"] {
        match TestServer::start_with(&[flag, "0"]) {
            Ok(_) => panic!("{flag} 0 should stop the server from starting"),
            // The failure must be about the burst, not something else in the command line.
            Err(e) => assert!(
                e.to_string().to_lowercase().contains("burst"),
                "{flag} 0 failed for another reason: {e}"
            ),
        }
    }
    Ok(())
}

#[test]
fn forwarded_ipv6_clients_have_their_own_buckets() -> TestResult {
    // Goal: §3.5 — X-Forwarded-For entries are IP addresses of either family; an IPv6 client
    // is keyed like an IPv4 one. Method: burst 1; 2001:db8::1 passes then is 429, 2001:db8::2
    // passes.
    let (_server, client, token) = standard_tier("1", "1")?;
    passes(&probe(&client, &token, Some("2001:db8::1"))?, "first from 2001:db8::1");
    throttled(&probe(&client, &token, Some("2001:db8::1"))?, "second from 2001:db8::1")?;
    passes(&probe(&client, &token, Some("2001:db8::2"))?, "first from 2001:db8::2");
    Ok(())
}

#[test]
fn only_the_first_forwarded_for_line_counts() -> TestResult {
    // Goal: §3.5 — when several X-Forwarded-For lines are sent only the first is read.
    // Method: burst 1; a request with lines `1.1.1.1` then `2.2.2.2` uses 1.1.1.1's token, so
    // a later `1.1.1.1` is 429 and `2.2.2.2` still passes.
    let (_server, client, token) = standard_tier("1", "1")?;
    let resp = client
        .get(&format!("/v1/devices/{}", random_uuid()))
        .bearer(&token)
        .header("x-forwarded-for", "1.1.1.1")
        .header("x-forwarded-for", "2.2.2.2")
        .send()?;
    passes(&resp, "two header lines");
    throttled(&probe(&client, &token, Some("1.1.1.1"))?, "1.1.1.1 again")?;
    passes(&probe(&client, &token, Some("2.2.2.2"))?, "2.2.2.2");
    Ok(())
}

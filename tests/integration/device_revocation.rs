//! A removed device is gone at once (issue 19): deleting a device revokes every access token,
//! refresh token and gateway ticket issued to it, on every route that takes one and on the
//! gateway, and the account's user-scoped tokens issued before the deletion (a stolen device
//! may have kept the one it was provisioned with). A user-scoped token from a login after the
//! deletion works; the other devices' tokens keep working; a takeover revokes nothing. The
//! cross-node half is in `cluster` (`cql_a_deleted_device_*`).

use serde_json::{json, Value};

use crate::common::data::{self, member, Member};
use crate::common::gateway::{ticket, Gateway, Handshake};
use crate::common::{random_uuid, Auth, Client, Resp, TestResult, TestServer};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One request of a route that takes an access token, harmless for a live caller.
pub struct Probe {
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn probe(method: &'static str, path: impl Into<String>, body: Option<Value>) -> Probe {
    Probe {
        method,
        path: path.into(),
        body,
    }
}

/// Every route that takes an access token, each with a request that a live caller gets a
/// non-401 answer to and that changes nothing (unknown ids, bodies of the wrong shape).
pub fn every_authenticated_route(user_id: &str) -> Vec<Probe> {
    let unknown = random_uuid();
    let empty = Some(json!({}));
    vec![
        probe("GET", "/v1/users/me", None),
        probe("PUT", "/v1/users/me/password", empty.clone()),
        probe("DELETE", "/v1/users/me", empty.clone()),
        probe("GET", "/v1/usernames/nobody_here", None),
        probe("POST", "/v1/devices", empty.clone()),
        probe("GET", "/v1/devices", None),
        probe("GET", format!("/v1/devices/{unknown}"), None),
        probe("PUT", format!("/v1/devices/{unknown}"), Some(json!({"name": "x"}))),
        probe("DELETE", format!("/v1/devices/{unknown}"), None),
        probe("POST", "/v1/devices/keys", empty.clone()),
        probe("GET", format!("/v1/users/{user_id}"), None),
        probe("GET", format!("/v1/users/{unknown}"), None),
        probe("POST", "/v1/messages", None),
        probe("POST", "/v1/gateway/ticket", None),
        probe("PUT", "/v1/push-tokens", empty.clone()),
        probe("GET", format!("/v1/attachments/{unknown}"), None),
        probe("GET", "/v1/backup", None),
        probe("HEAD", "/v1/backup", None),
        probe("DELETE", "/v1/sessions", empty.clone()),
        probe("POST", "/v1/keys", empty),
        probe("GET", format!("/v1/keys/{unknown}"), None),
    ]
}

fn call(client: &Client, token: &str, p: &Probe) -> Res<Resp> {
    let req = client.request(p.method, &p.path).bearer(token);
    match &p.body {
        Some(body) => req.json(body).send(),
        None => req.send(),
    }
}

/// Asserts that `token` passes authentication on every route (no 401).
fn accepted_everywhere(client: &Client, token: &str, routes: &[Probe]) -> TestResult {
    for p in routes {
        let resp = call(client, token, p)?;
        assert_ne!(
            resp.status, 401,
            "{} {} refused a live token: {resp:?}",
            p.method, p.path
        );
    }
    Ok(())
}

/// Asserts that `token` is refused (401) on every route.
pub fn refused_everywhere(client: &Client, token: &str, routes: &[Probe]) -> TestResult {
    for p in routes {
        let resp = call(client, token, p)?;
        assert_eq!(
            resp.status, 401,
            "{} {} took a revoked token: {resp:?}",
            p.method, p.path
        );
    }
    Ok(())
}

/// The status of a gateway handshake at `path_and_query` (101 when upgraded).
pub fn handshake_status(server: &TestServer, path_and_query: &str) -> Res<u16> {
    Ok(match Gateway::handshake_path(server.main_port, path_and_query)? {
        Handshake::Upgraded(_) => 101,
        Handshake::Refused(status, _) => status,
    })
}

/// Bob with two devices (the phone about to be stolen and the one he keeps), a device-scoped
/// login session of the stolen phone, and a ticket the phone took.
pub struct Stolen {
    pub kept: Member,
    pub phone: Member,
    pub phone_login: Auth,
    pub phone_ticket: String,
}

pub fn bob_and_his_phone(server: &TestServer) -> Res<Stolen> {
    let client = server.client();
    let kept = member(&client, "bob", 2)?;
    let phone = data::add_device(&client, &kept.user, 2, 2)?;
    let phone_login = client.login_ok("bob", Some(&phone.device_id))?;
    let phone_ticket = ticket(&client, phone.token())?;
    Ok(Stolen {
        kept,
        phone,
        phone_login,
        phone_ticket,
    })
}

#[test]
fn a_deleted_device_is_refused_on_every_route_and_the_gateway() -> TestResult {
    // Goal: every access token, refresh token and ticket issued to a device before its deletion
    // is refused (401) on every route that takes one and on `GET /v1/gateway`, from the moment
    // the DELETE is answered; the owner's other device keeps working. Method: before the
    // deletion, the phone's tokens pass authentication on every route (a probe that changes
    // nothing); bob deletes the phone from his other device; then the same probes with the
    // phone's creation and login tokens are 401, its refresh tokens are 401, its ticket and its
    // legacy `?token=` socket are refused, while the kept device's token still passes.
    let server = TestServer::start()?;
    let client = server.client();
    let stolen = bob_and_his_phone(&server)?;
    let routes = every_authenticated_route(stolen.kept.user_id());
    accepted_everywhere(&client, stolen.phone.token(), &routes)?;
    let phone_ticket = stolen.phone_ticket;
    let deleted = client.delete_device(stolen.kept.token(), &stolen.phone.device_id)?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    for token in [stolen.phone.token(), stolen.phone_login.token.as_str()] {
        refused_everywhere(&client, token, &routes)?;
        let legacy = handshake_status(&server, &format!("/v1/gateway?token={token}"))?;
        assert_eq!(legacy, 401, "the legacy socket of a deleted device");
    }
    for refresh in [&stolen.phone.device.refresh_token, &stolen.phone_login.refresh_token] {
        assert_eq!(client.refresh(refresh)?.status, 401, "a deleted device's refresh token");
    }
    let redeemed = handshake_status(&server, &format!("/v1/gateway?ticket={phone_ticket}"))?;
    assert_eq!(redeemed, 401, "a ticket taken before the deletion");
    accepted_everywhere(&client, stolen.kept.token(), &routes)?;
    Ok(())
}

#[test]
fn user_tokens_from_before_a_deletion_die_with_it() -> TestResult {
    // Goal: the account's user-scoped access and refresh tokens issued before a device deletion
    // can no longer create or delete devices (nor anything else), while a password login made
    // after it can, and the remaining device's own token is untouched. Method: bob registers
    // (user token U0), creates two devices with it, deletes one with the other's token; U0 then
    // fails to create a device and to delete the remaining one, its refresh token is refused;
    // a fresh login's user token creates a device and deletes it again.
    let server = TestServer::start()?;
    let client = server.client();
    let stolen = bob_and_his_phone(&server)?;
    let before = stolen.kept.user.clone();
    let deleted = client.delete_device(stolen.kept.token(), &stolen.phone.device_id)?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let created = client.create_device(&before.token, &crate::common::keys::DeviceKeys::new(9).request(1))?;
    assert_eq!(
        created.status, 401,
        "a user token from before creates no device: {created:?}"
    );
    let removed = client.delete_device(&before.token, &stolen.kept.device_id)?;
    assert_eq!(
        removed.status, 401,
        "a user token from before deletes no device: {removed:?}"
    );
    refused_everywhere(
        &client,
        &before.token,
        &every_authenticated_route(stolen.kept.user_id()),
    )?;
    assert_eq!(
        client.refresh(&before.refresh_token)?.status,
        401,
        "its refresh token too"
    );
    assert_eq!(
        client.list_devices_ok(stolen.kept.token())?.len(),
        1,
        "the owner's device stays"
    );

    let after = client.login_ok("bob", None)?;
    let fresh = data::add_device(&client, &after, 3, 1)?;
    let rotated = client.refresh(&after.refresh_token)?.expect_json(200)?;
    let rotated = Auth::from_json(&rotated)?;
    assert_eq!(client.list_devices_ok(&rotated.token)?.len(), 2);
    let gone = client.delete_device(&rotated.token, &fresh.device_id)?;
    assert_eq!(
        gone.status, 200,
        "a user token from after the deletion deletes: {gone:?}"
    );
    Ok(())
}

#[test]
fn a_device_enrolled_before_the_deletion_stays_until_the_owner_deletes_it() -> TestResult {
    // Goal: a device the thief enrolled with the stolen user token before the deletion is an
    // ordinary device: it is listed, works, and dies once the owner deletes it too. Method: a
    // second device made with the user token; the owner deletes the phone, sees the enrolled one
    // in the list, deletes it, and its token is refused.
    let server = TestServer::start()?;
    let client = server.client();
    let stolen = bob_and_his_phone(&server)?;
    let enrolled = data::add_device(&client, &stolen.kept.user, 7, 1)?;
    let deleted = client.delete_device(stolen.kept.token(), &stolen.phone.device_id)?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(client.me(enrolled.token())?.status, 200, "an ordinary device");
    let listed = client.list_devices_ok(stolen.kept.token())?;
    assert!(
        listed
            .iter()
            .any(|d| d["deviceId"].as_str() == Some(&enrolled.device_id)),
        "{listed:?}"
    );
    assert_eq!(
        client.delete_device(stolen.kept.token(), &enrolled.device_id)?.status,
        200
    );
    assert_eq!(client.me(enrolled.token())?.status, 401);
    Ok(())
}

#[test]
fn a_takeover_revokes_nothing() -> TestResult {
    // Goal: BEHAVIOR.md §6.3 — replacing a device's identity (`POST /v1/devices/keys` with a new
    // identity key) keeps its tokens and the account's user tokens valid. Method: take over the
    // phone's identity; its token, its refresh token and bob's user token still work.
    let server = TestServer::start()?;
    let client = server.client();
    let stolen = bob_and_his_phone(&server)?;
    let takeover = data::upload_body(42, Some(4242), 1, 100, 2);
    data::upload_keys_ok(&client, stolen.phone.token(), &takeover)?;
    assert_eq!(client.me(stolen.phone.token())?.status, 200);
    assert_eq!(client.list_devices(&stolen.kept.user.token)?.status, 200);
    assert_eq!(client.refresh(&stolen.phone.device.refresh_token)?.status, 200);
    Ok(())
}

//! Smoke tests: one pass through the main flows and the readiness probe. CI
//! runs this module a second time with `OBSCURA_IO_DRIVER=epoll`, so both io
//! drivers serve real traffic.

use crate::common::{TestResult, TestServer, PASSWORD};

/// Goal: the main flows work end to end on whichever io driver the
/// environment selects. Method: register, create a device, list it, log in
/// bound to it, refresh, log out, on one server with `--shards 4` so calls
/// cross shards even on 2 cores.
#[test]
fn main_flows_work_on_this_io_driver() -> TestResult {
    let server = TestServer::start_with(&["--shards", "4"])?;
    let client = server.client();
    let user = client.register_ok("smoke_user")?;
    let device = client.create_device_ok(&user.token, Some("Smoke"))?;
    let devices = client.list_devices_ok(&user.token)?;
    assert_eq!(devices.len(), 1);
    let bound = client.login("smoke_user", PASSWORD, device.device_id.as_deref())?;
    let bound = bound.expect_json(200)?;
    assert_eq!(bound["deviceId"].as_str(), device.device_id.as_deref());
    let refreshed = client
        .refresh(bound["refreshToken"].as_str().unwrap_or_default())?
        .expect_json(200)?;
    assert_eq!(refreshed["deviceId"], bound["deviceId"]);
    let logout = client.logout(&user.token, refreshed["refreshToken"].as_str().unwrap_or_default())?;
    assert_eq!(logout.status, 200);
    Ok(())
}

/// Goal: `/readyz` reports a store that answers too slowly. Method: the
/// test-build fault switch delays every store ping by 300 ms while the probe
/// allows 50 ms; the answer must be 503 with `database: error` and the
/// reference's timeout text.
#[test]
fn readyz_reports_a_slow_store() -> TestResult {
    let server = TestServer::start_with(&["--test-fault-store-delay-ms", "300", "--health-db-timeout-ms", "50"])?;
    let ready = server.mgmt_client().get("/readyz").send()?;
    let body = ready.expect_json(503)?;
    assert_eq!(body["status"], "error");
    assert_eq!(body["database"], "error");
    assert_eq!(body["database_error"], "Database connection timed out");
    Ok(())
}

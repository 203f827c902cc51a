//! Health, metrics and the API document (BEHAVIOR §13, TEST-CASES Q158-Q159, Q165): /livez,
//! /readyz and /metrics on the management port, /openapi.yaml on the main port.

use serde_json::json;

use crate::common::{TestResult, TestServer, PASSWORD};

#[test]
fn livez_is_200() -> TestResult {
    // Goal: Q158 — the management port answers /livez with 200. Method: one GET.
    let server = TestServer::start()?;
    let resp = server.mgmt_client().get("/livez").send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    Ok(())
}

#[test]
fn readyz_reports_ok() -> TestResult {
    // Goal: Q159 for this landing — /readyz is 200 with JSON status ok and database ok.
    // Method: one GET.
    let server = TestServer::start()?;
    let body = server.mgmt_client().get("/readyz").send()?.expect_json(200)?;
    assert_eq!(body["status"], json!("ok"), "{body}");
    assert_eq!(body["database"], json!("ok"), "{body}");
    Ok(())
}

#[test]
fn management_port_has_no_api_routes() -> TestResult {
    // Goal: the two listeners are separate: the API is not served on the management port and
    // unknown management paths are 404. Method: a few requests to the management port.
    let server = TestServer::start()?;
    let mgmt = server.mgmt_client();
    assert_eq!(mgmt.get("/nope").send()?.status, 404);
    assert_eq!(mgmt.get("/openapi.yaml").send()?.status, 404);
    let resp = mgmt
        .post("/v1/users")
        .json(&json!({"username": "mgmt_user", "password": PASSWORD}))
        .send()?;
    assert_eq!(resp.status, 404, "{resp:?}");
    Ok(())
}

/// Sum of the sample values of every series of `metric` in a Prometheus text exposition.
fn metric_sum(text: &str, metric: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        if &line[..name_end] != metric {
            continue;
        }
        let rest = if line[name_end..].starts_with('{') {
            match line.rfind('}') {
                Some(close) => &line[close + 1..],
                None => continue,
            }
        } else {
            &line[name_end..]
        };
        if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

#[test]
fn metrics_count_requests_and_registrations() -> TestResult {
    // Goal: /metrics (management port) is a text exposition with
    // `obscura_http_requests_total` by route and status and `obscura_registrations_total`, and
    // the counters move with traffic. Method: two registrations, a 404 and a 401, then scrape.
    let server = TestServer::start()?;
    let client = server.client();
    client.register_ok("metric_a")?;
    client.register_ok("metric_b")?;
    client.get("/no/such/route").send()?;
    client.get("/v1/devices").send()?;

    let resp = server.mgmt_client().get("/metrics").send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    let text = resp.text();
    assert!(
        text.contains("obscura_http_requests_total"),
        "no obscura_http_requests_total in:\n{text}"
    );
    assert!(
        text.contains("obscura_registrations_total"),
        "no obscura_registrations_total in:\n{text}"
    );
    let registrations =
        metric_sum(&text, "obscura_registrations_total").ok_or("obscura_registrations_total has no sample")?;
    assert!(
        registrations >= 2.0,
        "obscura_registrations_total = {registrations} after two registrations"
    );
    let requests =
        metric_sum(&text, "obscura_http_requests_total").ok_or("obscura_http_requests_total has no sample")?;
    assert!(
        requests >= 4.0,
        "obscura_http_requests_total = {requests} after four requests"
    );
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("obscura_http_requests_total"))
        .collect();
    for status in ["201", "401"] {
        assert!(
            series.iter().any(|l| l.contains(status)),
            "no request series with status {status}: {series:?}"
        );
    }
    Ok(())
}

#[test]
fn openapi_document_is_served_with_the_crate_version() -> TestResult {
    // Goal: Q165 — GET /openapi.yaml on the main port is 200, `Content-Type: text/yaml`, the
    // contract with `openapi: 3.0.3`, `title: Obscura Server API` and the server's own version
    // in place of 0.0.0. Method: fetch and search the text.
    let server = TestServer::start()?;
    let resp = server.client().get("/openapi.yaml").send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    let ct = resp.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/yaml"), "content-type {ct:?}");
    assert!(resp.header("x-request-id").is_some());
    let text = resp.text();
    assert!(text.contains("openapi: 3.0.3"), "no `openapi: 3.0.3`");
    assert!(text.contains("title: Obscura Server API"), "no title");
    let version = format!("version: {}", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&version), "no `{version}`");
    assert!(
        !text.contains("version: 0.0.0"),
        "placeholder version left in the document"
    );
    for path in [
        "/v1/users:",
        "/v1/sessions:",
        "/v1/sessions/refresh:",
        "/v1/devices:",
        "/v1/devices/{deviceId}:",
    ] {
        assert!(text.contains(path), "document lacks {path}");
    }
    Ok(())
}

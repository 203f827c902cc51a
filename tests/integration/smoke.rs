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

/// Goal: the data plane works end to end across shards: a message sent over
/// REST arrives over the WebSocket in an `EnvelopeBatch`, an ack deletes it,
/// and a new connection gets nothing. Method: two users, `--shards 4`, the
/// prost types of the crate to encode and decode frames.
#[test]
fn message_round_trip_over_the_gateway() -> TestResult {
    use obscura_relay::proto::{send_message_request::Submission, web_socket_frame::Payload};
    use obscura_relay::proto::{AckMessage, SendMessageRequest, WebSocketFrame};
    use prost::Message;

    let server = TestServer::start_with(&["--shards", "4", "--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = client.register_ok("alice_dp")?;
    let alice_dev = client.create_device_ok(&alice.token, None)?;
    let bob = client.register_ok("bob_dp")?;
    let bob_dev = client.create_device_ok(&bob.token, None)?;
    let bob_device = uuid::Uuid::parse_str(bob_dev.device_id.as_deref().unwrap_or_default())?;
    let request = SendMessageRequest {
        messages: vec![Submission {
            submission_id: uuid::Uuid::new_v4().as_bytes().to_vec().into(),
            device_id: bob_device.as_bytes().to_vec().into(),
            message: b"ciphertext".to_vec().into(),
        }],
    };
    let sent = client
        .post("/v1/messages")
        .bearer(&alice_dev.token)
        .header("Idempotency-Key", &uuid::Uuid::new_v4().to_string())
        .header("Content-Type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()?;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert!(sent.body.is_empty());

    let mut socket = connect(&server, &bob_dev.token, 5000)?;
    let envelope = loop {
        let frame = WebSocketFrame::decode(socket.read()?.into_data())?;
        if let Some(Payload::EnvelopeBatch(batch)) = frame.payload {
            break batch.envelopes.into_iter().next().ok_or("empty batch")?;
        }
    };
    assert_eq!(&envelope.message[..], b"ciphertext");
    let alice_user = uuid::Uuid::parse_str(&alice.user_id)?;
    assert_eq!(&envelope.sender_id[..], alice_user.as_bytes());
    let ack = WebSocketFrame {
        payload: Some(Payload::Ack(AckMessage {
            message_ids: vec![envelope.id.clone()],
        })),
    };
    socket.send(tungstenite::Message::binary(ack.encode_to_vec()))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    socket.close(None)?;
    let mut again = connect(&server, &bob_dev.token, 500)?;
    if let Ok(tungstenite::Message::Binary(bytes)) = again.read() {
        let frame = WebSocketFrame::decode(bytes)?;
        assert!(
            !matches!(frame.payload, Some(Payload::EnvelopeBatch(_))),
            "acked message came again"
        );
    }
    Ok(())
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens a gateway socket for a device token, with a read timeout.
fn connect(server: &TestServer, token: &str, timeout_ms: u64) -> Result<Socket, Box<dyn std::error::Error>> {
    let ticket = server
        .client()
        .post("/v1/gateway/ticket")
        .bearer(token)
        .send()?
        .expect_json(201)?;
    let base = server.base_url().replace("http", "ws");
    let url = format!(
        "{base}/v1/gateway?ticket={}",
        ticket["ticket"].as_str().unwrap_or_default()
    );
    let (socket, _) = tungstenite::connect(url)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
        s.set_read_timeout(Some(std::time::Duration::from_millis(timeout_ms)))?;
    }
    Ok(socket)
}

/// Goal: after a failed journal flush the store refuses writes and
/// `/readyz` says so, and nothing is answered as if it were durable.
/// Method: the test-build fault switch fails every flush; a registration
/// must get a 500 (not a 201), and `/readyz` must report `database: error`.
#[test]
fn failed_flush_poisons_the_store() -> TestResult {
    let server = TestServer::start_with(&["--test-fault-store-fail-flush"])?;
    let client = server.client();
    let registered = client.register("poisoned", PASSWORD)?;
    assert_eq!(registered.status, 500, "{}", registered.text());
    assert_eq!(registered.json()?["error"], "Internal server error");
    let ready = server.mgmt_client().get("/readyz").send()?.expect_json(503)?;
    assert_eq!(ready["database"], "error");
    let after = client.register("poisoned_too", PASSWORD)?;
    assert_eq!(after.status, 500, "a poisoned store refuses every later write");
    Ok(())
}

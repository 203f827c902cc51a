//! A stand-in for Firebase Cloud Messaging on loopback: the OAuth2 token endpoint
//! (`POST /token`, JWT-bearer grant) and the HTTP v1 send endpoint
//! (`POST /v1/projects/{project}/messages:send`). It records every call, answers sends from a
//! script (default 200), can hold each send for a while, and counts sends in flight so tests
//! can check the server's concurrency bound. One thread per connection, keep-alive honoured.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The access token the stand-in hands out.
pub const ACCESS_TOKEN: &str = "stand-in-access-token";
/// The project id tests configure.
pub const PROJECT: &str = "obscura-test";
/// The service account's e-mail.
pub const CLIENT_EMAIL: &str = "relay@obscura-test.iam.gserviceaccount.com";
/// The test key pair (PKCS#8 private key, SPKI public key), generated for these tests only.
pub const PRIVATE_KEY_PEM: &str = include_str!("../fixtures/fcm-test-key.pem");
pub const PUBLIC_KEY_PEM: &str = include_str!("../fixtures/fcm-test-key.pub.pem");

/// One `messages:send` call.
#[derive(Debug, Clone)]
pub struct Send {
    pub authorization: String,
    pub body: Value,
    pub at: Instant,
}

impl Send {
    /// The device token the push went to.
    pub fn token(&self) -> &str {
        self.body["message"]["token"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    sends: Vec<Send>,
    token_requests: Vec<String>,
    script: VecDeque<(u16, String)>,
    hold: Duration,
    in_flight: usize,
    max_in_flight: usize,
}

pub struct FcmStandIn {
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl FcmStandIn {
    pub fn start() -> Res<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(Self { port, state })
    }

    /// Answers the next sends with these (status, body) pairs, then 200 again.
    pub fn script(&self, answers: &[(u16, &str)]) {
        let mut s = self.lock();
        s.script.extend(answers.iter().map(|(c, b)| (*c, b.to_string())));
    }

    /// Holds every send this long before answering.
    pub fn hold(&self, d: Duration) {
        self.lock().hold = d;
    }

    pub fn sends(&self) -> Vec<Send> {
        self.lock().sends.clone()
    }

    pub fn token_requests(&self) -> Vec<String> {
        self.lock().token_requests.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Waits until at least `n` sends were recorded (or the timeout passes) and returns them.
    pub fn wait_sends(&self, n: usize, timeout: Duration) -> Vec<Send> {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        while s.sends.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = cvar.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        s.sends.clone()
    }

    /// The server flags that point a relay at this stand-in with `credentials`.
    pub fn flags(&self, credentials: &Path) -> Vec<String> {
        vec![
            "--fcm-project-id".into(),
            PROJECT.into(),
            "--fcm-credentials-file".into(),
            credentials.display().to_string(),
            "--fcm-api-url".into(),
            format!("http://127.0.0.1:{}", self.port),
        ]
    }

    /// Writes a service-account file whose `token_uri` is this stand-in.
    pub fn write_credentials(&self, dir: &Path) -> Res<PathBuf> {
        let path = dir.join("service-account.json");
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test",
            "private_key": PRIVATE_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "token_uri": format!("http://127.0.0.1:{}/token", self.port),
        });
        std::fs::write(&path, serde_json::to_vec(&account)?)?;
        Ok(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves one connection: request after request until the client closes.
fn serve(stream: TcpStream, shared: &Arc<(Mutex<State>, Condvar)>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let (mut length, mut authorization) = (0usize, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, answer) = if path == "/token" {
            token(shared, &body)
        } else if path == format!("/v1/projects/{PROJECT}/messages:send") {
            send(shared, authorization, &body)
        } else {
            (404, "{}".to_string())
        };
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )?;
    }
}

fn token(shared: &Arc<(Mutex<State>, Condvar)>, body: &[u8]) -> (u16, String) {
    let form = String::from_utf8_lossy(body).into_owned();
    shared
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .token_requests
        .push(form);
    let answer = json!({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"});
    (200, answer.to_string())
}

fn send(shared: &Arc<(Mutex<State>, Condvar)>, authorization: String, body: &[u8]) -> (u16, String) {
    let (lock, cvar) = &**shared;
    let hold = {
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.hold
    };
    std::thread::sleep(hold);
    let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
    s.in_flight -= 1;
    s.sends.push(Send {
        authorization,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let answer = s
        .script
        .pop_front()
        .unwrap_or((200, r#"{"name":"projects/x/messages/1"}"#.into()));
    cvar.notify_all();
    answer
}

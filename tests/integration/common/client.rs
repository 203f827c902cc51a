//! `Client`: a thin `ureq` wrapper that never treats a status as an error and returns every
//! response fully read as a `Resp`, plus helpers for the API calls most tests need to set up
//! state (register, login, create a device...). A `Client` is cheap to clone; clones share the
//! connection pool.

use std::time::Duration;

use serde_json::{json, Value};
use ureq::http;

use super::keys::DeviceKeys;
use super::PASSWORD;

/// A response read to the end: status, headers (names lower-cased, in order) and body bytes.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; an error naming the response if it is not JSON.
    pub fn json(&self) -> Result<Value, Box<dyn std::error::Error>> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON ({e}): {self:?}").into())
    }

    /// Asserts the response is `status` with an `application/json` body `{"error": "<text>"}`
    /// and returns the text. Every error of this server has that shape.
    pub fn expect_error(&self, status: u16) -> Result<String, Box<dyn std::error::Error>> {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error response without a JSON content type: {self:?}"
        );
        let v = self.json()?;
        let text = v
            .get("error")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("error body has no string `error` field: {self:?}"))?;
        Ok(text.to_string())
    }

    /// Asserts `status` and an error body whose text is exactly `text`.
    pub fn expect_error_text(&self, status: u16, text: &str) -> Result<(), Box<dyn std::error::Error>> {
        let got = self.expect_error(status)?;
        assert_eq!(got, text, "unexpected error text: {self:?}");
        Ok(())
    }

    /// Asserts `status` and a JSON body, and returns the body.
    pub fn expect_json(&self, status: u16) -> Result<Value, Box<dyn std::error::Error>> {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "JSON response without a JSON content type: {self:?}"
        );
        self.json()
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.text();
        if text.len() > 600 {
            let mut cut = 600;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        write!(f, "HTTP {} {:?} body={:?}", self.status, self.headers, text)
    }
}

/// The tokens of an `AuthResponse`, plus the user id taken from the token's `sub`.
#[derive(Clone, Debug)]
pub struct Auth {
    pub token: String,
    pub refresh_token: String,
    pub expires_at: i64,
    pub device_id: Option<String>,
    pub user_id: String,
}

impl Auth {
    /// Parses an `AuthResponse` body, checking its required fields.
    pub fn from_json(v: &Value) -> Result<Self, Box<dyn std::error::Error>> {
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no token in {v}"))?;
        let refresh = v
            .get("refreshToken")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no refreshToken in {v}"))?;
        let expires_at = v
            .get("expiresAt")
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("no integer expiresAt in {v}"))?;
        let device_id = match v.get("deviceId") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("deviceId is neither absent nor a string: {other}").into()),
        };
        let claims = super::jwt::claims(token)?;
        let user_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("token has no sub: {claims}"))?;
        Ok(Auth {
            token: token.to_string(),
            refresh_token: refresh.to_string(),
            expires_at,
            device_id,
            user_id: user_id.to_string(),
        })
    }
}

#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// A request being built; `send()` runs it.
pub struct Req<'a> {
    client: &'a Client,
    method: &'a str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl<'a> Req<'a> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(mut self, v: &Value) -> Self {
        self.body = Some(v.to_string().into_bytes());
        self.header("content-type", "application/json")
    }

    /// Raw body bytes; the content type (if any) is up to the caller.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    pub fn send(self) -> Result<Resp, Box<dyn std::error::Error>> {
        let url = format!("{}{}", self.client.base, self.path);
        let mut builder = http::Request::builder().method(self.method).uri(&url);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let response = match self.body {
            Some(body) => self.client.agent.run(builder.body(body)?),
            None => self.client.agent.run(builder.body(())?),
        };
        let mut response = response.map_err(|e| format!("{} {url}: {e}", self.method))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()?;
        Ok(Resp { status, headers, body })
    }
}

impl Client {
    pub fn new(base: String) -> Self {
        Self::with_timeout(base, Duration::from_secs(30))
    }

    /// A client whose every request gives up after `timeout` (an error, not a status).
    pub fn with_timeout(base: String, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Client {
            agent: config.into(),
            base,
        }
    }

    pub fn request<'a>(&'a self, method: &'a str, path: &str) -> Req<'a> {
        Req {
            client: self,
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str) -> Req<'_> {
        self.request("POST", path)
    }

    pub fn put(&self, path: &str) -> Req<'_> {
        self.request("PUT", path)
    }

    pub fn delete(&self, path: &str) -> Req<'_> {
        self.request("DELETE", path)
    }

    // ---- accounts and sessions ----

    pub fn register(&self, username: &str, password: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.post("/v1/users")
            .json(&json!({"username": username, "password": password}))
            .send()
    }

    /// Registers `username` with `PASSWORD`, asserting 201.
    pub fn register_ok(&self, username: &str) -> Result<Auth, Box<dyn std::error::Error>> {
        let resp = self.register(username, PASSWORD)?;
        Auth::from_json(&resp.expect_json(201)?)
    }

    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_id: Option<&str>,
    ) -> Result<Resp, Box<dyn std::error::Error>> {
        let mut body = json!({"username": username, "password": password});
        if let Some(d) = device_id {
            body["deviceId"] = json!(d);
        }
        self.post("/v1/sessions").json(&body).send()
    }

    /// Logs in with `PASSWORD`, asserting 200.
    pub fn login_ok(&self, username: &str, device_id: Option<&str>) -> Result<Auth, Box<dyn std::error::Error>> {
        Auth::from_json(&self.login(username, PASSWORD, device_id)?.expect_json(200)?)
    }

    pub fn refresh(&self, refresh_token: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.post("/v1/sessions/refresh")
            .json(&json!({"refreshToken": refresh_token}))
            .send()
    }

    pub fn logout(&self, token: &str, refresh_token: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.delete("/v1/sessions")
            .bearer(token)
            .json(&json!({"refreshToken": refresh_token}))
            .send()
    }

    // ---- devices ----

    pub fn create_device(&self, token: &str, body: &Value) -> Result<Resp, Box<dyn std::error::Error>> {
        self.post("/v1/devices").bearer(token).json(body).send()
    }

    /// Creates a device with valid keys (seed 1, no OTPKs) and `name`, asserting 201.
    pub fn create_device_ok(&self, token: &str, name: Option<&str>) -> Result<Auth, Box<dyn std::error::Error>> {
        let mut body = DeviceKeys::new(1).request(0);
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        let resp = self.create_device(token, &body)?;
        let auth = Auth::from_json(&resp.expect_json(201)?)?;
        assert!(
            auth.device_id.is_some(),
            "device creation returned no deviceId: {resp:?}"
        );
        Ok(auth)
    }

    pub fn list_devices(&self, token: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.get("/v1/devices").bearer(token).send()
    }

    /// The `devices` array of `GET /v1/devices`, asserting 200.
    pub fn list_devices_ok(&self, token: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let v = self.list_devices(token)?.expect_json(200)?;
        let devices = v
            .get("devices")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no devices array in {v}"))?;
        Ok(devices.clone())
    }

    pub fn get_device(&self, token: &str, id: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.get(&format!("/v1/devices/{id}")).bearer(token).send()
    }

    pub fn rename_device(&self, token: &str, id: &str, body: &Value) -> Result<Resp, Box<dyn std::error::Error>> {
        self.put(&format!("/v1/devices/{id}")).bearer(token).json(body).send()
    }

    pub fn delete_device(&self, token: &str, id: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.delete(&format!("/v1/devices/{id}")).bearer(token).send()
    }

    // ---- the caller's account ----

    /// `GET /v1/users/me`.
    pub fn me(&self, token: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.get("/v1/users/me").bearer(token).send()
    }

    /// `PUT /v1/users/me/password`.
    pub fn change_password(&self, token: &str, current: &str, new: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.put("/v1/users/me/password")
            .bearer(token)
            .json(&json!({"currentPassword": current, "newPassword": new}))
            .send()
    }

    /// `DELETE /v1/users/me`.
    pub fn delete_account(&self, token: &str, password: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.delete("/v1/users/me")
            .bearer(token)
            .json(&json!({"password": password}))
            .send()
    }

    /// `GET /v1/usernames/{username}` (the name as given, not encoded).
    pub fn lookup(&self, token: &str, username: &str) -> Result<Resp, Box<dyn std::error::Error>> {
        self.get(&format!("/v1/usernames/{username}")).bearer(token).send()
    }
}

//! `GET /openapi.yaml`: the contract this server implements, from a copy in
//! the crate, with `version: 0.0.0` replaced by the server's version
//! (BEHAVIOR.md §13).

use std::sync::OnceLock;

use http::{HeaderValue, StatusCode};

use crate::http::Response;

const CONTRACT: &str = include_str!("openapi-v1.yaml");

/// The contract with our version filled in.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| CONTRACT.replacen("version: 0.0.0", &format!("version: {}", env!("CARGO_PKG_VERSION")), 1))
}

/// The response.
pub fn get() -> Response {
    Response::bytes(
        StatusCode::OK,
        HeaderValue::from_static("text/yaml"),
        document().as_bytes(),
    )
}

//! [`ApiError`]: every way a request can fail, and the one place where each
//! becomes a status and an `{"error": ...}` text (BEHAVIOR.md §3.2).
//! Client faults are 4xx with the reference server's texts; our own faults
//! are 500 `Internal server error`, logged with their cause, never shown.

use http::header::{ALLOW, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::http::body::BodyError;
use crate::http::Response;
use crate::store::StoreError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 with an endpoint-specific text.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 with an endpoint-specific text.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("Not found")]
    NotFound,
    /// 405; carries the `Allow` value.
    #[error("Method not allowed")]
    MethodNotAllowed(&'static str),
    /// 408: the body did not arrive in time.
    #[error("Request timeout")]
    Timeout,
    /// 409 with an endpoint-specific text.
    #[error("{0}")]
    Conflict(String),
    /// 411: a streamed upload without a Content-Length.
    #[error("Length required")]
    LengthRequired,
    /// 412: an upload's version precondition does not hold.
    #[error("Precondition failed")]
    PreconditionFailed,
    /// 413.
    #[error("Payload too large")]
    PayloadTooLarge,
    /// 415: a JSON route without a JSON content type.
    #[error("Expected request with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 400: valid JSON of the wrong shape (the reference answers 422; the
    /// contract documents 400 for every body rejection).
    #[error("Failed to deserialize the JSON body into the target type: {0}")]
    BadShape(String),
    /// 429 with the whole seconds to wait.
    #[error("Too Many Requests! Wait for {0}s")]
    RateLimited(u64),
    /// 500: our fault; the cause is logged, not sent.
    #[error("Internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Device-scoped token required` (403).
pub fn device_scope_required() -> ApiError {
    ApiError::Forbidden("Device-scoped token required".into())
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadShape(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: JSON body, plus `Allow` or `Retry-After` where due.
    pub fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let mut response = Response::error(self.status(), &self.to_string());
        match self {
            Self::MethodNotAllowed(allow) => {
                response = response.with_header(ALLOW, HeaderValue::from_static(allow));
            }
            Self::RateLimited(secs) => {
                let value = HeaderValue::from(secs);
                response = response
                    .with_header(RETRY_AFTER, value.clone())
                    .with_header(HeaderName::from_static("x-ratelimit-after"), value);
            }
            Self::Timeout => response = response.closing(),
            _ => {}
        }
        response
    }

    /// Wraps an internal failure.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(_) => Self::PayloadTooLarge,
            BodyError::Malformed => Self::BadRequest("Malformed chunked request body".into()),
            BodyError::Incomplete => Self::BadRequest("Request body ended early".into()),
            BodyError::Io(io) => Self::internal(io),
        }
    }
}

impl From<crate::offload::oneshot::Canceled> for ApiError {
    fn from(e: crate::offload::oneshot::Canceled) -> Self {
        Self::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_status() {
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::Unauthorized, 401),
            (ApiError::NotFound, 404),
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::Timeout, 408),
            (ApiError::LengthRequired, 411),
            (ApiError::PreconditionFailed, 412),
            (ApiError::PayloadTooLarge, 413),
            (ApiError::UnsupportedMediaType, 415),
            (ApiError::BadShape("x".into()), 400),
            (ApiError::RateLimited(1), 429),
            (ApiError::internal(std::io::Error::other("disk")), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.into_response().status.as_u16(), status);
        }
        let body = ApiError::NotFound.into_response().body;
        assert_eq!(&body[..], br#"{"error":"Not found"}"#);
        let internal = ApiError::internal(std::io::Error::other("secret detail")).into_response();
        assert_eq!(&internal.body[..], br#"{"error":"Internal server error"}"#);
    }
}

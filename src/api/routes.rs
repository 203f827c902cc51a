//! The route table: (method, path) → [`Route`], with the literal segment
//! winning over a parameter (`/v1/devices/keys` is never device "keys"),
//! 404 for unknown paths and 405 with `Allow` for known paths.
//! Each route knows its rate-limit tier and timeout class (BEHAVIOR.md §2).

use http::Method;
use uuid::Uuid;

use crate::auth::rate_limit::Tier;

/// Every route the main listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/users`
    Register,
    /// `POST /v1/sessions`
    Login,
    /// `DELETE /v1/sessions`
    Logout,
    /// `POST /v1/sessions/refresh`
    Refresh,
    /// `POST /v1/devices`
    CreateDevice,
    /// `GET /v1/devices`
    ListDevices,
    /// `GET /v1/devices/{id}`
    GetDevice,
    /// `PUT /v1/devices/{id}`
    RenameDevice,
    /// `DELETE /v1/devices/{id}`
    DeleteDevice,
    /// `GET /openapi.yaml`
    OpenApi,
    /// `POST /v1/devices/keys`
    UploadKeys,
    /// `GET /v1/users/{id}`
    FetchBundles,
    /// `POST /v1/messages`
    SendMessages,
    /// `POST /v1/gateway/ticket`
    CreateTicket,
    /// `GET /v1/gateway`
    Gateway,
    /// `POST /v1/keys` (legacy API)
    LegacyUploadKeys,
    /// `GET /v1/keys/{id}` (legacy API)
    LegacyFetchBundle,
    /// `PUT /v1/push-tokens`
    SetPushToken,
    /// `POST /v1/attachments`
    UploadAttachment,
    /// `GET /v1/attachments/{id}`
    GetAttachment,
    /// `GET /v1/backup`
    GetBackup,
    /// `HEAD /v1/backup`
    HeadBackup,
    /// `POST /v1/backup`
    UploadBackup,
    /// `GET /v1/users/me`
    GetAccount,
    /// `PUT /v1/users/me/password`
    ChangePassword,
    /// `DELETE /v1/users/me`
    DeleteAccount,
    /// `GET /v1/usernames/{username}`
    LookupUsername,
}

/// Metric label of each route, in [`Route::index`] order, plus the labels of
/// requests that matched no route.
pub const ROUTE_LABELS: [&str; 29] = [
    "POST /v1/users",
    "POST /v1/sessions",
    "DELETE /v1/sessions",
    "POST /v1/sessions/refresh",
    "POST /v1/devices",
    "GET /v1/devices",
    "GET /v1/devices/{id}",
    "PUT /v1/devices/{id}",
    "DELETE /v1/devices/{id}",
    "GET /openapi.yaml",
    "POST /v1/devices/keys",
    "GET /v1/users/{id}",
    "POST /v1/messages",
    "POST /v1/gateway/ticket",
    "GET /v1/gateway",
    "POST /v1/keys",
    "GET /v1/keys/{id}",
    "PUT /v1/push-tokens",
    "POST /v1/attachments",
    "GET /v1/attachments/{id}",
    "GET /v1/backup",
    "HEAD /v1/backup",
    "POST /v1/backup",
    "GET /v1/users/me",
    "PUT /v1/users/me/password",
    "DELETE /v1/users/me",
    "GET /v1/usernames/{username}",
    "unmatched",
    "method not allowed",
];

/// Label index of requests to unknown paths.
pub const UNMATCHED_LABEL: usize = 27;
/// Label index of requests with a wrong method.
pub const METHOD_NOT_ALLOWED_LABEL: usize = 28;

/// How long a route may take (BEHAVIOR.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutClass {
    /// `--server-request-timeout-secs` (and the global timeout).
    Standard,
    /// The global timeout only.
    Global,
    /// `--attachment-timeout-secs` (and the global timeout).
    Attachment,
    /// `--backup-timeout-secs` (and the global timeout).
    Backup,
}

impl Route {
    /// Position in [`ROUTE_LABELS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The rate-limit tier, `None` for unlimited routes.
    pub fn tier(self) -> Option<Tier> {
        match self {
            Self::Register
            | Self::Login
            | Self::Logout
            | Self::Refresh
            | Self::GetAccount
            | Self::ChangePassword
            | Self::DeleteAccount => Some(Tier::Auth),
            Self::LookupUsername => Some(Tier::Lookup),
            Self::OpenApi
            | Self::UploadAttachment
            | Self::GetAttachment
            | Self::GetBackup
            | Self::HeadBackup
            | Self::UploadBackup => None,
            _ => Some(Tier::Standard),
        }
    }

    /// The timeout class.
    pub fn timeout(self) -> TimeoutClass {
        match self {
            Self::OpenApi => TimeoutClass::Global,
            Self::UploadAttachment | Self::GetAttachment => TimeoutClass::Attachment,
            Self::GetBackup | Self::HeadBackup | Self::UploadBackup => TimeoutClass::Backup,
            _ => TimeoutClass::Standard,
        }
    }
}

/// The outcome of routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A route, with its path parameter (raw text) if it has one.
    Route(Route, Option<String>),
    /// Known path, wrong method: the allowed methods and the path's tier.
    MethodNotAllowed(&'static str, Option<Tier>),
    /// Unknown path.
    NotFound,
}

/// Routes a request.
pub fn resolve(method: &Method, path: &str) -> Resolved {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let pick = |table: &[(Method, Route)], allow: &'static str, param: Option<&str>| match table
        .iter()
        .find(|(m, _)| m == method || (*method == Method::HEAD && *m == Method::GET))
    {
        Some((_, route)) => Resolved::Route(*route, param.map(str::to_string)),
        None => Resolved::MethodNotAllowed(allow, table.first().and_then(|(_, r)| r.tier())),
    };
    match segments.as_slice() {
        ["v1", "users"] => pick(&[(Method::POST, Route::Register)], "POST", None),
        ["v1", "sessions"] => pick(
            &[(Method::POST, Route::Login), (Method::DELETE, Route::Logout)],
            "POST,DELETE",
            None,
        ),
        ["v1", "sessions", "refresh"] => pick(&[(Method::POST, Route::Refresh)], "POST", None),
        ["v1", "devices"] => pick(
            &[(Method::POST, Route::CreateDevice), (Method::GET, Route::ListDevices)],
            "GET,HEAD,POST",
            None,
        ),
        ["v1", "devices", "keys"] => pick(&[(Method::POST, Route::UploadKeys)], "POST", None),
        ["v1", "devices", id] if !id.is_empty() => pick(
            &[
                (Method::GET, Route::GetDevice),
                (Method::PUT, Route::RenameDevice),
                (Method::DELETE, Route::DeleteDevice),
            ],
            "GET,HEAD,PUT,DELETE",
            Some(id),
        ),
        ["v1", "users", "me"] => pick(
            &[(Method::GET, Route::GetAccount), (Method::DELETE, Route::DeleteAccount)],
            "GET,HEAD,DELETE",
            None,
        ),
        ["v1", "users", "me", "password"] => pick(&[(Method::PUT, Route::ChangePassword)], "PUT", None),
        ["v1", "users", id] if !id.is_empty() => pick(&[(Method::GET, Route::FetchBundles)], "GET,HEAD", Some(id)),
        ["v1", "usernames", name] if !name.is_empty() => {
            pick(&[(Method::GET, Route::LookupUsername)], "GET,HEAD", Some(name))
        }
        ["v1", "messages"] => pick(&[(Method::POST, Route::SendMessages)], "POST", None),
        ["v1", "gateway", "ticket"] => pick(&[(Method::POST, Route::CreateTicket)], "POST", None),
        ["v1", "gateway"] => pick(&[(Method::GET, Route::Gateway)], "GET,HEAD", None),
        ["v1", "keys"] => pick(&[(Method::POST, Route::LegacyUploadKeys)], "POST", None),
        ["v1", "keys", id] if !id.is_empty() => pick(&[(Method::GET, Route::LegacyFetchBundle)], "GET,HEAD", Some(id)),
        ["v1", "push-tokens"] => pick(&[(Method::PUT, Route::SetPushToken)], "PUT", None),
        ["v1", "attachments"] => pick(&[(Method::POST, Route::UploadAttachment)], "POST", None),
        ["v1", "attachments", id] if !id.is_empty() => {
            pick(&[(Method::GET, Route::GetAttachment)], "GET,HEAD", Some(id))
        }
        ["v1", "backup"] => pick(
            &[
                (Method::HEAD, Route::HeadBackup),
                (Method::GET, Route::GetBackup),
                (Method::POST, Route::UploadBackup),
            ],
            "GET,HEAD,POST",
            None,
        ),
        ["openapi.yaml"] => pick(&[(Method::GET, Route::OpenApi)], "GET,HEAD", None),
        _ => Resolved::NotFound,
    }
}

/// Parses a path UUID leniently (hyphenated, simple, braced, URN; any case).
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_beats_parameter_and_methods_are_checked() {
        assert_eq!(
            resolve(&Method::POST, "/v1/users"),
            Resolved::Route(Route::Register, None)
        );
        assert_eq!(
            resolve(&Method::GET, "/v1/devices/abc"),
            Resolved::Route(Route::GetDevice, Some("abc".into()))
        );
        assert!(matches!(
            resolve(&Method::GET, "/v1/sessions"),
            Resolved::MethodNotAllowed("POST,DELETE", _)
        ));
        assert_eq!(resolve(&Method::GET, "/v1/nope"), Resolved::NotFound);
        assert_eq!(
            resolve(&Method::GET, "/v1/users/me"),
            Resolved::Route(Route::GetAccount, None),
            "`me` is not a user id"
        );
        assert!(matches!(
            resolve(&Method::POST, "/v1/users/me"),
            Resolved::MethodNotAllowed("GET,HEAD,DELETE", Some(Tier::Auth))
        ));
        assert_eq!(resolve(&Method::GET, "/v1/usernames/"), Resolved::NotFound);
        assert_eq!(resolve(&Method::GET, "/v1/devices/"), Resolved::NotFound);
        assert_eq!(
            resolve(&Method::HEAD, "/openapi.yaml"),
            Resolved::Route(Route::OpenApi, None)
        );
        assert!(matches!(
            resolve(&Method::GET, "/v1/devices/keys"),
            Resolved::MethodNotAllowed("POST", _)
        ));
        assert_eq!(
            resolve(&Method::DELETE, "/v1/backup"),
            Resolved::MethodNotAllowed("GET,HEAD,POST", None)
        );
        for (i, label) in ROUTE_LABELS.iter().enumerate().take(UNMATCHED_LABEL) {
            let (m, p) = label.split_once(' ').unwrap();
            let p = p.replace("{id}", "x");
            match resolve(&m.parse().unwrap(), &p) {
                Resolved::Route(r, _) => assert_eq!(r.index(), i, "{label}"),
                other => panic!("{label}: {other:?}"),
            }
        }
    }

    #[test]
    fn lenient_uuids() {
        let canonical = "0192e0b4-0000-7000-8000-000000000001";
        for form in [
            canonical,
            "0192E0B4-0000-7000-8000-000000000001",
            "0192e0b4000070008000000000000001",
            "{0192e0b4-0000-7000-8000-000000000001}",
            "urn:uuid:0192e0b4-0000-7000-8000-000000000001",
        ] {
            assert_eq!(parse_uuid(form).unwrap().to_string(), canonical, "{form}");
        }
        assert!(parse_uuid("keys").is_none());
    }
}

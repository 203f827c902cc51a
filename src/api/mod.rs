//! The Obscura API: routes and handlers, nothing else. [`ApiService`] is
//! the [`Service`] the HTTP layer calls: it routes ([`routes`]),
//! rate-limits the client (one process-wide table), dispatches, maps errors
//! ([`error`]) and records metrics. Checks run in the reference server's
//! order (BEHAVIOR.md §3.4): route, rate limit, (timeout), authentication,
//! path, body, handler.
//!
//! Handlers, one file per resource of `openapi-v1.yaml`: [`users`],
//! [`account`] (`/v1/users/me`), [`usernames`], [`sessions`], [`devices`],
//! [`keys`], [`messages`], [`gateway`], [`push_tokens`], [`attachments`],
//! [`backup`], [`openapi`], and [`legacy`] for what only the single-device
//! API has. No handler imports another; what several share has a module of
//! its own: the request context ([`context`]), usernames, passwords and
//! the password check ([`credentials`]), JSON bodies ([`json`]), prekey JSON
//! ([`keys_json`]), a new device ([`new_device`]), the `AuthResponse`
//! ([`auth_response`]), key uploads ([`key_upload`]), bundle fetches
//! ([`bundles`]), the legacy primary device ([`primary_device`]) and
//! streamed blob bodies ([`blob_body`]).

pub mod account;
pub mod attachments;
pub mod auth_response;
pub mod backup;
pub mod blob_body;
pub mod bundles;
pub mod context;
pub mod credentials;
pub mod devices;
pub mod error;
pub mod gateway;
pub mod json;
pub mod key_upload;
pub mod keys;
pub mod keys_json;
pub mod legacy;
pub mod messages;
pub mod new_device;
pub mod openapi;
pub mod primary_device;
pub mod push_tokens;
pub mod routes;
pub mod sessions;
pub mod usernames;
pub mod users;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::context::RequestCtx;
use self::error::ApiError;
use self::routes::{Resolved, Route, TimeoutClass};
use crate::auth::rate_limit::{client_ip, Tier};
use crate::http::{Body, RequestHead, Response, Service};
use crate::metrics::Counter;
use crate::node::{App, ShardLocal};

/// The main listener's service on one shard.
pub struct ApiService {
    app: Arc<App>,
    local: Rc<ShardLocal>,
}

impl ApiService {
    /// The service of the shard whose state is `local`.
    pub fn new(local: Rc<ShardLocal>) -> Self {
        Self {
            app: local.app.clone(),
            local,
        }
    }

    /// Takes a token of `tier` from the client's bucket.
    fn rate_limit(&self, head: &RequestHead, peer: SocketAddr, tier: Tier) -> Result<(), ApiError> {
        let ip = client_ip(
            peer.ip(),
            head.headers.get("x-forwarded-for"),
            &self.app.config.trusted_proxies,
        );
        let verdict = self.app.buckets.check(ip, tier, Instant::now());
        let metrics = self.app.shard_metrics(self.local.me());
        match verdict {
            Ok(()) => {
                if let Some(m) = metrics {
                    m.count(Counter::RateLimitAllowed);
                }
                Ok(())
            }
            Err(wait) => {
                if let Some(m) = metrics {
                    m.count(Counter::RateLimitThrottled);
                }
                Err(ApiError::RateLimited(wait.0))
            }
        }
    }

    async fn dispatch(
        &self,
        head: &RequestHead,
        body: &mut Body<'_>,
        peer: SocketAddr,
    ) -> (usize, Result<Response, ApiError>) {
        let (route, param) = match routes::resolve(&head.method, &head.path) {
            Resolved::NotFound => return (routes::UNMATCHED_LABEL, Err(ApiError::NotFound)),
            Resolved::MethodNotAllowed(allow, tier) => {
                let limited = match tier {
                    Some(tier) => self.rate_limit(head, peer, tier),
                    None => Ok(()),
                };
                let outcome = limited.and(Err(ApiError::MethodNotAllowed(allow)));
                return (routes::METHOD_NOT_ALLOWED_LABEL, outcome);
            }
            Resolved::Route(route, param) => (route, param),
        };
        if let Some(tier) = route.tier() {
            if let Err(e) = self.rate_limit(head, peer, tier) {
                return (route.index(), Err(e));
            }
        }
        let ctx = RequestCtx {
            app: &self.app,
            local: &self.local,
            head,
            param: param.as_deref(),
        };
        (route.index(), handle(route, &ctx, body).await)
    }
}

async fn handle(route: Route, ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    match route {
        Route::Register => users::register(ctx, body).await,
        Route::Login => sessions::login(ctx, body).await,
        Route::Logout => sessions::logout(ctx, body).await,
        Route::Refresh => sessions::refresh(ctx, body).await,
        Route::CreateDevice => devices::create(ctx, body).await,
        Route::ListDevices => devices::list(ctx).await,
        Route::GetDevice => devices::get(ctx).await,
        Route::RenameDevice => devices::rename(ctx, body).await,
        Route::DeleteDevice => devices::delete(ctx).await,
        Route::OpenApi => Ok(openapi::get()),
        Route::UploadKeys => keys::upload(ctx, body).await,
        Route::FetchBundles => keys::bundles(ctx).await,
        Route::SendMessages => messages::send(ctx, body).await,
        Route::CreateTicket => gateway::ticket(ctx).await,
        Route::Gateway => gateway::connect(ctx).await,
        Route::LegacyUploadKeys => legacy::upload(ctx, body).await,
        Route::LegacyFetchBundle => legacy::bundle(ctx).await,
        Route::SetPushToken => push_tokens::put(ctx, body).await,
        Route::UploadAttachment => attachments::upload(ctx, body).await,
        Route::GetAttachment => attachments::download(ctx).await,
        Route::GetBackup => backup::download(ctx, true).await,
        Route::HeadBackup => backup::download(ctx, false).await,
        Route::UploadBackup => backup::upload(ctx, body).await,
        Route::GetAccount => account::get(ctx).await,
        Route::ChangePassword => account::change_password(ctx, body).await,
        Route::DeleteAccount => account::delete(ctx, body).await,
        Route::LookupUsername => usernames::lookup(ctx).await,
    }
}

impl Service for ApiService {
    fn deadline(&self, head: &RequestHead) -> Duration {
        let global = self.app.config.global_timeout();
        let config = &self.app.config;
        let class = match routes::resolve(&head.method, &head.path) {
            Resolved::Route(route, _) => route.timeout(),
            _ => TimeoutClass::Standard,
        };
        match class {
            TimeoutClass::Global => global,
            TimeoutClass::Standard => config.request_timeout().min(global),
            TimeoutClass::Attachment => config.attachment_timeout().min(global),
            TimeoutClass::Backup => config.backup_timeout().min(global),
        }
    }

    async fn call(&self, head: &RequestHead, body: &mut Body<'_>, peer: SocketAddr) -> Response {
        let started = Instant::now();
        let (label, outcome) = self.dispatch(head, body, peer).await;
        let response = outcome.unwrap_or_else(ApiError::into_response);
        let elapsed = started.elapsed();
        if let Some(metrics) = self.app.shard_metrics(self.local.me()) {
            metrics.record_request(label, response.status.as_u16(), elapsed);
        }
        // Route and status only: never a path parameter, token or body.
        let route = routes::ROUTE_LABELS.get(label).copied().unwrap_or("?");
        tracing::debug!(
            route,
            status = response.status.as_u16(),
            micros = elapsed.as_micros() as u64,
            "request"
        );
        response
    }
}

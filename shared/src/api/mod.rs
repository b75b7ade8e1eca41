//! HTTP, and the only place that speaks it: the router (`handle`), which authenticates the
//! caller and hands each route to its room — orders, callbacks, entitlements, store
//! purchases and notifications, streams, admin figures — and the local server. Every room
//! calls `service/` and answers JSON or problem+json. The same `handle` serves every Lambda
//! (each restricted to its own routes) and the local server (all routes), so what is tested
//! locally is what runs in AWS.

mod admin;
mod admin_events;
pub mod auth;
pub mod callback_limits;
mod callbacks;
pub mod dashboard;
mod entitlements;
mod orders;
mod paywall;
pub mod problem;
mod purchases;
pub mod server;
mod streams;
mod wallet;

use crate::app::App;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use problem::{json_response, problem};
use serde_json::json;

/// Request bodies above this are refused with 413 before any parsing. The routes providers
/// call have their own, smaller caps ([`callback_limits`]).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Set by the local server on a request whose body it stopped reading past
/// [`MAX_BODY_BYTES`]: the request arrives with an empty body and is over every cap, so that
/// each route refuses it in its own terms.
#[derive(Debug, Clone, Copy)]
pub struct BodyOverMax;

/// Whether `req`'s body is longer than `limit` bytes.
fn body_over(req: &Request<Bytes>, limit: usize) -> bool {
    req.body().len() > limit || req.extensions().get::<BodyOverMax>().is_some()
}

/// Which routes a process serves: one group per Lambda, or all of them locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    Orders,
    Callbacks,
    Streams,
    /// App store purchases and notifications (the store-notifications function).
    StoreNotifications,
    Local,
}

impl Routes {
    fn serves(self, group: Routes) -> bool {
        self == Routes::Local || self == group
    }
}

/// What API Gateway's JWT authorizer verified, set by the Lambda adapter: the `sub` claim and
/// the text of the roles claim ([`crate::config::Config::auth_roles_claim`]), if any.
#[derive(Debug, Clone)]
pub struct AuthorizerIdentity {
    pub sub: String,
    pub roles: Option<String>,
}

/// The address the request came from: the TCP peer on the local server, API Gateway's
/// `requestContext.http.sourceIp` in Lambda. Stream tokens are bound to it with
/// `STREAM_BIND_IP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// API Gateway's id of the request (`requestContext.requestId`), set by the Lambda adapter:
/// operators' changes name it in their audit record.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The IAM caller API Gateway's `AWS_IAM` authorizer verified (admin routes), set by the
/// Lambda adapter.
#[derive(Debug, Clone)]
pub struct IamCaller(pub String);

pub async fn handle(app: &App, routes: Routes, req: Request<Bytes>) -> Response<Bytes> {
    // At most once per CATALOG_REFRESH_SECONDS, by one request; free otherwise.
    app.catalog.refresh_if_due(app.clock.now_ms()).await;
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    use Routes::*;
    let (group, allowed): (Routes, &[Method]) = match segments.as_slice() {
        ["orders"] => (Orders, &[Method::POST, Method::GET]),
        ["orders", _] => (Orders, &[Method::GET]),
        ["orders", _, "cancel"] | ["orders", _, "confirm"] => (Orders, &[Method::POST]),
        // GET only for providers that call back that way (Huya). A provider that is not
        // enabled is answered 404 by the route itself, whatever the method.
        ["callbacks", provider] => {
            let post_only = app
                .providers
                .verifier(provider)
                .is_some_and(|p| !p.accepts_get());
            if post_only {
                (Callbacks, &[Method::POST])
            } else {
                (Callbacks, &[Method::POST, Method::GET])
            }
        }
        ["entitlements"] | ["entitlements", _] => (Streams, &[Method::GET]),
        ["purchases", "apple" | "google"] | ["notifications", "apple" | "google"] => {
            (StoreNotifications, &[Method::POST])
        }
        ["streams", "verify"] | ["streams", _, "tokens"] => (Streams, &[Method::POST]),
        ["sandbox", "orders", _, "pay"] => (Local, &[Method::POST]),
        ["healthz"] => (Local, &[Method::GET]),
        ["admin", "stats"] | ["admin", "orders", _] | ["admin", "lookup"] => {
            (Orders, &[Method::GET])
        }
        // The dashboard page, served where `/admin/stats` is.
        ["admin"] => (Orders, &[Method::GET]),
        ["admin", "orders", _, "refunds"] => (Orders, &[Method::POST]),
        ["admin", "users", _] => (Streams, &[Method::GET]),
        ["admin", "users", _, "orders"] => (Orders, &[Method::GET]),
        ["admin", "streams", _, "publish-key"]
        | ["admin", "users", _, "bans" | "grants" | "wallet"] => (Streams, &[Method::POST]),
        ["admin", "users", _, "bans" | "grants", _] => (Streams, &[Method::DELETE]),
        ["admin", "audit"] => (Streams, &[Method::GET]),
        // The paywall's catalog: public, no store read.
        ["products"] | ["streams"] => (Orders, &[Method::GET]),
        ["wallet"] => (Streams, &[Method::GET]),
        ["wallet", "debits"] => (Streams, &[Method::POST]),
        ["admin", "events"] => (Streams, &[Method::GET]),
        ["admin", "events", _, "redeliver"] => (Streams, &[Method::POST]),
        ["admin", "webhooks", "disabled"] => (Streams, &[Method::GET, Method::DELETE]),
        _ => return not_found(),
    };
    if !routes.serves(group) {
        return not_found();
    }
    if !allowed.contains(&method) {
        let mut r = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{method} is not allowed here"),
        );
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        if let Ok(v) = allow.join(", ").parse() {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    // The routes providers call measure the request against their provider's caps and refuse
    // it in the provider's terms (`callback_limits`); every other route against this one.
    let provider_route = matches!(
        segments.as_slice(),
        ["callbacks", _] | ["notifications", "apple" | "google"]
    );
    if !provider_route && body_over(&req, MAX_BODY_BYTES) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body is over {MAX_BODY_BYTES} bytes"),
        );
    }
    match segments.as_slice() {
        ["healthz"] => json_response(StatusCode::OK, &json!({"ok": true})),
        ["products"] => paywall::products(app, &req),
        ["streams"] => paywall::streams(app, &req),
        ["callbacks", provider] => callbacks::provider_callback(app, provider, &req).await,
        ["notifications", "apple"] => purchases::apple_notification(app, &req).await,
        ["notifications", "google"] => purchases::google_notification(app, &req).await,
        ["sandbox", "orders", id, "pay"] => server::sandbox_pay(app, id, &req).await,
        // Media servers call this without a user JWT; the stream token is the credential.
        ["streams", "verify"] => streams::verify(app, &req).await,
        ["admin"] => dashboard::page(),
        ["admin", "stats"] => admin::stats(app, &req).await,
        ["admin", "orders", id] => admin::order(app, id, &req).await,
        ["admin", "orders", id, "refunds"] => admin::refund(app, id, &req).await,
        ["admin", "lookup"] => admin::lookup(app, &req).await,
        ["admin", "users", user] => admin::user(app, user, &req).await,
        ["admin", "users", user, "orders"] => admin::user_orders(app, user, &req).await,
        ["admin", "streams", id, "publish-key"] => admin::rotate_publish_key(app, id, &req).await,
        ["admin", "users", user, "bans"] => admin::ban(app, user, &req).await,
        ["admin", "users", user, "bans", scope] => admin::lift_ban(app, user, scope, &req).await,
        ["admin", "users", user, "grants"] => admin::grant(app, user, &req).await,
        ["admin", "users", user, "grants", source] => {
            admin::revoke_grant(app, user, source, &req).await
        }
        ["admin", "users", user, "wallet"] => admin::wallet(app, user, &req).await,
        ["admin", "audit"] => admin::audit(app, &req).await,
        ["admin", "events"] => admin_events::list(app, &req).await,
        ["admin", "events", id, "redeliver"] => admin_events::redeliver(app, id, &req).await,
        ["admin", "webhooks", "disabled"] if method == Method::GET => {
            admin_events::disabled(app, &req).await
        }
        ["admin", "webhooks", "disabled"] => admin_events::enable(app, &req).await,
        _ => {
            let user = match authenticate(app, &req) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let result = match segments.as_slice() {
                ["orders"] if method == Method::GET => orders::list(app, &user, &req).await,
                ["orders"] => orders::create_order(app, &user, &req).await,
                ["orders", id] => orders::get(app, &user, id).await,
                ["orders", id, "cancel"] => orders::cancel(app, &user, id).await,
                ["orders", id, "confirm"] => orders::confirm(app, &user, id).await,
                ["purchases", "apple"] => purchases::apple_purchase(app, &user, &req).await,
                ["purchases", "google"] => purchases::google_purchase(app, &user, &req).await,
                ["entitlements"] => entitlements::list(app, &user).await,
                ["entitlements", product_id] => entitlements::product(app, &user, product_id).await,
                ["streams", stream_id, "tokens"] => {
                    streams::issue(app, &user, stream_id, &req).await
                }
                ["wallet"] => wallet::read(app, &user, &req).await,
                ["wallet", "debits"] => wallet::debit(app, &user, &req).await,
                _ => return not_found(),
            };
            result.unwrap_or_else(|e| problem::service_problem(&e))
        }
    }
}

fn not_found() -> Response<Bytes> {
    problem(StatusCode::NOT_FOUND, "not-found", "no such route")
}

// The error is the finished response, built once per request: boxing would only add noise.
#[allow(clippy::result_large_err)]
fn authenticate(app: &App, req: &Request<Bytes>) -> Result<String, Response<Bytes>> {
    caller(app, req).map(|c| c.user_id)
}

/// The caller and their roles, or the 401 that tells them to authenticate.
#[allow(clippy::result_large_err)]
pub(crate) fn caller(app: &App, req: &Request<Bytes>) -> Result<auth::Caller, Response<Bytes>> {
    let identity = req.extensions().get::<AuthorizerIdentity>();
    let claims = auth::AuthorizerClaims {
        sub: identity.map(|i| i.sub.as_str()),
        roles: identity.and_then(|i| i.roles.as_deref()),
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.auth.caller(&claims, header).map_err(|e| {
        let mut r = problem(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        r
    })
}

/// A query parameter's value, percent-decoded; the first when repeated.
pub(crate) fn query_param(req: &Request<Bytes>, name: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[allow(clippy::result_large_err)]
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    req: &Request<Bytes>,
) -> Result<T, Response<Bytes>> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/json"));
    if !is_json {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send application/json",
        ));
    }
    serde_json::from_slice(req.body()).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("request body is not valid: {e}"),
        )
    })
}

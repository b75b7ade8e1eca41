//! HTTP: routing, authentication and JSON/problem responses. Calls `service/`, nothing else.
//! The same `handle` serves every Lambda (each restricted to its own routes) and the local
//! server (all routes), so what is tested locally is what runs in AWS.

pub mod auth;
mod callbacks;
mod orders;
pub mod problem;
mod purchases;
pub mod server;
mod streams;

use crate::app::App;
use crate::domain::time::rfc3339;
use crate::domain::Order;
use crate::service::{entitlements, orders as order_service, ServiceError};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use problem::{json_response, problem};
use serde_json::json;

/// Request bodies above this are refused with 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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

/// The `sub` claim that API Gateway's JWT authorizer verified, set by the Lambda adapter.
#[derive(Debug, Clone)]
pub struct AuthorizerSub(pub String);

/// The IAM caller API Gateway's `AWS_IAM` authorizer verified (admin routes), set by the
/// Lambda adapter.
#[derive(Debug, Clone)]
pub struct IamCaller(pub String);

pub async fn handle(app: &App, routes: Routes, req: Request<Bytes>) -> Response<Bytes> {
    if req.body().len() > MAX_BODY_BYTES {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body is over {MAX_BODY_BYTES} bytes"),
        );
    }
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    use Routes::*;
    let (group, allowed): (Routes, &[Method]) = match segments.as_slice() {
        ["orders"] => (Orders, &[Method::POST]),
        ["orders", _] => (Orders, &[Method::GET]),
        ["orders", _, "cancel"] | ["orders", _, "confirm"] => (Orders, &[Method::POST]),
        // GET only for providers that call back that way (Huya); checked per provider.
        ["callbacks", _] => (Callbacks, &[Method::POST, Method::GET]),
        ["entitlements"] | ["entitlements", _] => (Streams, &[Method::GET]),
        ["purchases", "apple" | "google"] | ["notifications", "apple" | "google"] => {
            (StoreNotifications, &[Method::POST])
        }
        ["streams", "verify"] | ["streams", _, "tokens"] => (Streams, &[Method::POST]),
        ["sandbox", "orders", _, "pay"] => (Local, &[Method::POST]),
        ["healthz"] => (Local, &[Method::GET]),
        ["admin", "stats"] => (Orders, &[Method::GET]),
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
        if let Ok(v) = allowed[0].as_str().parse() {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    match segments.as_slice() {
        ["healthz"] => json_response(StatusCode::OK, &json!({"ok": true})),
        ["callbacks", provider] => callbacks::provider_callback(app, provider, &req).await,
        ["notifications", "apple"] => purchases::apple_notification(app, &req).await,
        ["notifications", "google"] => purchases::google_notification(app, &req).await,
        ["sandbox", "orders", id, "pay"] => server::sandbox_pay(app, id, &req).await,
        // Media servers call this without a user JWT; the stream token is the credential.
        ["streams", "verify"] => streams::verify(app, &req).await,
        ["admin", "stats"] => admin_stats(app, &req).await,
        _ => {
            let user = match authenticate(app, &req) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let result = match segments.as_slice() {
                ["orders"] => orders::create_order(app, &user, &req).await,
                ["orders", id] => order_service::get(app, &user, id)
                    .await
                    .map(|o| json_response(StatusCode::OK, &order_json(&o))),
                ["orders", id, "cancel"] => order_service::cancel(app, &user, id)
                    .await
                    .map(|o| json_response(StatusCode::OK, &order_json(&o))),
                ["orders", id, "confirm"] => order_service::confirm(app, &user, id)
                    .await
                    .map(|o| json_response(StatusCode::ACCEPTED, &order_json(&o))),
                ["purchases", "apple"] => purchases::apple_purchase(app, &user, &req).await,
                ["purchases", "google"] => purchases::google_purchase(app, &user, &req).await,
                ["entitlements"] => entitlements::list(app, &user).await.map(|e| {
                    let grants: Vec<_> = e
                        .grants
                        .iter()
                        .map(|g| {
                            json!({
                                "scope": g.scope,
                                "product_id": g.product_id,
                                "source_id": g.source_id,
                                "valid_from": rfc3339(g.valid_from),
                                "valid_until": g.valid_until.map(rfc3339),
                            })
                        })
                        .collect();
                    json_response(
                        StatusCode::OK,
                        &json!({"grants": grants, "credits": e.credits}),
                    )
                }),
                ["entitlements", product_id] => entitlements::product(app, &user, product_id)
                    .await
                    .map(|s| {
                        json_response(
                            StatusCode::OK,
                            &json!({
                                "product_id": product_id,
                                "can_use": s.can_use,
                                "expires_at": s.expires_at.map(rfc3339),
                                "had_bought": s.had_bought,
                            }),
                        )
                    }),
                ["streams", stream_id, "tokens"] => {
                    streams::issue(app, &user, stream_id, &req).await
                }
                _ => return not_found(),
            };
            result.unwrap_or_else(|e| service_problem(&e))
        }
    }
}

/// `GET /admin/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`. In AWS the route sits behind the HTTP
/// API's IAM authorizer and we also insist on its caller identity, so a misrouted request
/// with no IAM signature is refused; the local server serves it plainly.
async fn admin_stats(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    let local = app.config.profile == crate::config::Profile::Local;
    if !local && req.extensions().get::<IamCaller>().is_none() {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "admin routes need an IAM-signed request",
        );
    }
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(from), Some(to)) = (param("from"), param("to")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "from and to are required (YYYY-MM-DD)",
        );
    };
    match crate::service::stats::daily(app, &from, &to).await {
        Ok(days) => json_response(StatusCode::OK, &json!({ "days": days })),
        Err(e) => service_problem(&e),
    }
}

fn not_found() -> Response<Bytes> {
    problem(StatusCode::NOT_FOUND, "not-found", "no such route")
}

// The error is the finished response, built once per request: boxing would only add noise.
#[allow(clippy::result_large_err)]
fn authenticate(app: &App, req: &Request<Bytes>) -> Result<String, Response<Bytes>> {
    let sub = req
        .extensions()
        .get::<AuthorizerSub>()
        .map(|s| s.0.as_str());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.auth.user(sub, header).map_err(|e| {
        let mut r = problem(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        r
    })
}

pub(crate) fn service_problem(e: &ServiceError) -> Response<Bytes> {
    use crate::domain::OfferError as O;
    match e {
        ServiceError::BadRequest(d) => problem(StatusCode::BAD_REQUEST, "bad-request", d),
        ServiceError::NotFound(d) => problem(StatusCode::NOT_FOUND, "not-found", d),
        ServiceError::Offer(o) => {
            let slug = match o {
                O::UnknownProduct(_) => "unknown-product",
                O::UnknownPlan { .. } | O::PlanRequired(_) | O::PlanNotAllowed(_) => "invalid-plan",
                O::StoreOnly(_) => "store-only-product",
                O::NoLongerOnSale(_) => "not-on-sale",
            };
            problem(StatusCode::UNPROCESSABLE_ENTITY, slug, o.to_string())
        }
        ServiceError::ProviderNotEnabled(_) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider-not-enabled",
            e.to_string(),
        ),
        ServiceError::IdempotencyMismatch => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            e.to_string(),
        ),
        ServiceError::Conflict(d) => problem(StatusCode::CONFLICT, "conflict", d),
        ServiceError::PaymentRequired {
            stream_id,
            products,
        } => {
            let mut extra = serde_json::Map::new();
            extra.insert("stream_id".into(), json!(stream_id));
            extra.insert(
                "products".into(),
                json!(products
                    .iter()
                    .map(|(id, title)| json!({"product_id": id, "title": title}))
                    .collect::<Vec<_>>()),
            );
            problem::problem_with(
                StatusCode::PAYMENT_REQUIRED,
                "payment-required",
                e.to_string(),
                extra,
            )
        }
        ServiceError::DeviceLimit(_) => {
            problem(StatusCode::CONFLICT, "device-limit", e.to_string())
        }
        ServiceError::UnknownFormat(_) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-format",
            e.to_string(),
        ),
        ServiceError::FormatNotConfigured(_) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "format-not-configured",
            e.to_string(),
        ),
        ServiceError::Busy(d) => problem(StatusCode::SERVICE_UNAVAILABLE, "busy", d),
        ServiceError::Internal(d) => {
            tracing::error!(error = %d, "internal error");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
        ServiceError::Provider(p) => {
            tracing::error!(error = %p, "provider failure");
            problem(
                StatusCode::BAD_GATEWAY,
                "provider-unavailable",
                "the payment provider could not be reached, retry later",
            )
        }
        ServiceError::Unavailable(d) => {
            tracing::error!(error = %d, "dependency unavailable");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "temporarily unavailable, retry later",
            )
        }
        ServiceError::Store(s) => {
            tracing::error!(error = %s, "store failure");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "temporarily unavailable, retry later",
            )
        }
    }
}

pub(crate) fn order_json(o: &Order) -> serde_json::Value {
    let mut v = json!({
        "order_id": o.order_id,
        "state": o.state,
        "product_id": o.product_id,
        "plan_id": o.plan_id,
        "amount": o.amount,
        "provider": o.provider,
        "created_at": rfc3339(o.created_at),
        "expires_at": rfc3339(o.expires_at),
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(p) = o.paid_at {
            map.insert("paid_at".into(), json!(rfc3339(p)));
            map.insert("late".into(), json!(o.late));
        }
        if let Some(p) = &o.payment {
            map.insert("payment".into(), p.clone());
        }
    }
    v
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

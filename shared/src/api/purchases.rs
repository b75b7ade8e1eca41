//! `POST /purchases/apple` (the app hands over a signed transaction),
//! `POST /notifications/apple` (App Store Server Notifications V2; no JWT, Apple calls it),
//! `POST /purchases/google` (a Play purchase token, verified in the background) and
//! `POST /notifications/google` (Pub/Sub push of Play RTDN, OIDC bearer token).

use super::callback_limits;
use super::callbacks::over_cap_problem;
use super::parse_json;
use super::problem::service_problem;
use super::problem::{json_response, problem};
use crate::app::App;
use crate::domain::time::rfc3339;
use crate::providers::{apple, google};
use crate::service::apple_purchases::{self, NotificationResult, PurchaseResult};
use crate::service::rejections;
use crate::service::ServiceError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplePurchase {
    signed_transaction: String,
    order_id: Option<String>,
}

pub(super) fn purchase_json(r: &PurchaseResult) -> serde_json::Value {
    json!({
        "status": r.status,
        "product_id": r.product_id,
        "source_id": r.source_id,
        "order_id": r.order_id,
        "expires_at": r.expires_at.map(rfc3339),
    })
}

pub(super) async fn apple_purchase(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let body: ApplePurchase = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    let r = apple_purchases::apple_purchase(
        app,
        user,
        &body.signed_transaction,
        body.order_id.as_deref(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &purchase_json(&r)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppleNotificationBody {
    signed_payload: String,
}

/// Apple retries anything but a 200 (for about three days), so a genuine notification we
/// could not apply for a transient reason gets a 5xx; a forged or malformed one a 4xx.
pub(super) async fn apple_notification(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(over) = callback_limits::APPLE.check(req) {
        return over_cap_problem(app, apple::NAME, over).await;
    }
    let body: AppleNotificationBody = match parse_json(req) {
        Ok(b) => b,
        Err(r) => {
            rejections::refused(app, apple::NAME, "malformed", &"not a signedPayload body").await;
            return r;
        }
    };
    match apple_purchases::apple_notification(app, &body.signed_payload).await {
        Ok(result) => {
            let status = match &result {
                NotificationResult::Applied(r) => r.status.as_str(),
                NotificationResult::Duplicate => "duplicate",
                NotificationResult::Recorded => "recorded",
            };
            json_response(StatusCode::OK, &json!({ "ok": true, "result": status }))
        }
        Err(e @ ServiceError::ProviderNotEnabled(_)) => {
            problem(StatusCode::NOT_FOUND, "provider-not-enabled", e.to_string())
        }
        Err(e) => service_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GooglePurchase {
    purchase_token: String,
    product_id: String,
    order_id: Option<String>,
}

pub(super) async fn google_purchase(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let body: GooglePurchase = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    crate::service::google_purchases::submit(
        app,
        user,
        &body.purchase_token,
        &body.product_id,
        body.order_id.as_deref(),
    )
    .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "status": "queued" }),
    ))
}

/// Pub/Sub redelivers anything but a success, so transient failures answer 503.
pub(super) async fn google_notification(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    use crate::service::google_purchases::{notification, PushError};
    if let Err(over) = callback_limits::GOOGLE.check(req) {
        return over_cap_problem(app, google::NAME, over).await;
    }
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match notification(app, auth, req.body()).await {
        Ok(kind) => json_response(StatusCode::OK, &json!({ "ok": true, "result": kind })),
        Err(PushError::Unauthenticated(d)) => {
            rejections::refused(app, google::NAME, "push_token", &d).await;
            problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "push token rejected",
            )
        }
        Err(PushError::Malformed(d)) => {
            rejections::refused(app, google::NAME, "malformed", &d).await;
            problem(StatusCode::BAD_REQUEST, "bad-request", d)
        }
        Err(PushError::Service(e @ ServiceError::ProviderNotEnabled(_))) => {
            problem(StatusCode::NOT_FOUND, "provider-not-enabled", e.to_string())
        }
        Err(PushError::Service(e)) => service_problem(&e),
    }
}

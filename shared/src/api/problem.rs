//! Errors as RFC 9457 problem details: one mapping from service errors to HTTP, here, and
//! the plain JSON response every route answers with.

use crate::service::ServiceError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    response(status, "application/json", Bytes::from(body.to_string()))
}

/// A response built without a fallible builder: every part here is known valid, so there is
/// no error to turn into some other status.
pub fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Bytes> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `slug` names the problem type; `detail` is safe to show (never secrets or internals).
pub fn problem(status: StatusCode, slug: &str, detail: impl Into<String>) -> Response<Bytes> {
    problem_with(status, slug, detail, serde_json::Map::new())
}

pub fn problem_with(
    status: StatusCode,
    slug: &str,
    detail: impl Into<String>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Response<Bytes> {
    let mut body = serde_json::json!({
        "type": format!("https://tollgate.dev/problems/{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    if let Some(map) = body.as_object_mut() {
        map.extend(extra);
    }
    response(status, PROBLEM_JSON, Bytes::from(body.to_string()))
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
        ServiceError::Unprocessable(d) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", d)
        }
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
            problem_with(
                StatusCode::PAYMENT_REQUIRED,
                "payment-required",
                e.to_string(),
                extra,
            )
        }
        ServiceError::Banned(ban) => {
            let mut extra = serde_json::Map::new();
            extra.insert("reason".into(), ban.reason.clone().into());
            extra.insert(
                "until".into(),
                ban.until
                    .map(crate::domain::time::rfc3339)
                    .map_or(serde_json::Value::Null, Into::into),
            );
            problem_with(StatusCode::FORBIDDEN, "banned", e.to_string(), extra)
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
        ServiceError::TooManyOrders {
            limit,
            window_seconds,
            retry_after,
        } => {
            let mut extra = serde_json::Map::new();
            extra.insert("limit".into(), json!(limit));
            extra.insert("window_seconds".into(), json!(window_seconds));
            extra.insert("retry_after".into(), json!(retry_after));
            let mut r = problem_with(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-orders",
                e.to_string(),
                extra,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            r
        }
        ServiceError::RefundRefused { detail, remaining } => {
            let mut extra = serde_json::Map::new();
            if let Some(m) = remaining {
                extra.insert(
                    "remaining".into(),
                    json!({"amount": m.amount, "currency": m.currency.as_str()}),
                );
            }
            problem_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refund-refused",
                detail.clone(),
                extra,
            )
        }
        ServiceError::ViewsUsed {
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
            problem_with(
                StatusCode::PAYMENT_REQUIRED,
                "views-used",
                e.to_string(),
                extra,
            )
        }
        ServiceError::InsufficientCoins { balance, price } => {
            let mut extra = serde_json::Map::new();
            extra.insert("balance".into(), json!(balance));
            extra.insert("price".into(), json!(price));
            problem_with(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient-coins",
                e.to_string(),
                extra,
            )
        }
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

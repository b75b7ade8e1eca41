//! `/orders` routes.

use super::parse_json;
use super::problem::json_response;
use crate::app::App;
use crate::domain::time::rfc3339;
use crate::domain::Order;
use crate::service::{order_history, orders, ServiceError};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use serde_json::json;

pub(super) async fn create_order(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let body: orders::CreateOrder = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    let key = match req.headers().get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(_)) => {
            return Err(ServiceError::BadRequest(
                "Idempotency-Key must be printable ASCII".into(),
            ))
        }
    };
    Ok(match orders::create(app, user, body, key).await? {
        orders::Created::New(o) => {
            let mut r = json_response(StatusCode::CREATED, &order_json(&o));
            if let Ok(v) = format!("/orders/{}", o.order_id).parse() {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        orders::Created::Replayed(o) => json_response(StatusCode::OK, &order_json(&o)),
    })
}

/// A page of orders as JSON, each shown by `show`.
pub(super) fn page_json(
    page: &order_history::Page,
    show: fn(&Order) -> serde_json::Value,
) -> serde_json::Value {
    json!({
        "orders": page.orders.iter().map(show).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

/// `GET /orders?limit=&cursor=`: the caller's own orders, newest first.
pub(super) async fn list(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let limit = super::query_param(req, "limit");
    let cursor = super::query_param(req, "cursor");
    let page = order_history::list(app, user, limit.as_deref(), cursor.as_deref()).await?;
    Ok(json_response(StatusCode::OK, &page_json(&page, order_json)))
}

pub(super) async fn get(app: &App, user: &str, id: &str) -> Result<Response<Bytes>, ServiceError> {
    let o = orders::get(app, user, id).await?;
    Ok(json_response(StatusCode::OK, &order_json(&o)))
}

pub(super) async fn cancel(
    app: &App,
    user: &str,
    id: &str,
) -> Result<Response<Bytes>, ServiceError> {
    let o = orders::cancel(app, user, id).await?;
    Ok(json_response(StatusCode::OK, &order_json(&o)))
}

pub(super) async fn confirm(
    app: &App,
    user: &str,
    id: &str,
) -> Result<Response<Bytes>, ServiceError> {
    let o = orders::confirm(app, user, id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &order_json(&o)))
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

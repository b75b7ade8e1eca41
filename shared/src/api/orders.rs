//! `/orders` routes.

use super::problem::json_response;
use super::{order_json, parse_json};
use crate::app::App;
use crate::service::{orders, ServiceError};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};

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

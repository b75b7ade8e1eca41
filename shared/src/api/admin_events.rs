//! Operators' routes of the outbox: `GET /admin/events?since=&type=&line=` (support may
//! read) and `POST /admin/events/{id}/redeliver` (admins), and the endpoints a 410 Gone
//! disabled: `GET /admin/webhooks/disabled` (support may read) and
//! `DELETE /admin/webhooks/disabled?url=&reason=` (admins: enabled again), authorized as every
//! admin route.

use super::admin::{authorize, operator, Need};
use super::problem::{json_response, service_problem};
use crate::app::App;
use crate::domain::event::EventRecord;
use crate::domain::time::rfc3339;
use crate::service::events::{self, Query};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;

pub(super) async fn list(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let param = |name: &str| super::query_param(req, name);
    let (since, kind, line, limit, cursor) = (
        param("since"),
        param("type"),
        param("line"),
        param("limit"),
        param("cursor"),
    );
    let q = Query {
        since: since.as_deref(),
        kind: kind.as_deref(),
        line: line.as_deref(),
        limit: limit.as_deref(),
        cursor: cursor.as_deref(),
    };
    match events::list(app, &q).await {
        Ok(page) => json_response(
            StatusCode::OK,
            &json!({
                "events": page.records.iter().map(|(r, l)| record_json(r, l)).collect::<Vec<_>>(),
                "next_cursor": page.next_cursor,
            }),
        ),
        Err(e) => service_problem(&e),
    }
}

pub(super) async fn redeliver(app: &App, id: &str, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Change) {
        return r;
    }
    match events::redeliver(app, id).await {
        Ok((r, line)) => json_response(StatusCode::OK, &record_json(&r, &line)),
        Err(e) => service_problem(&e),
    }
}

/// An event with its delivery state per endpoint, as operators see it.
fn record_json(r: &EventRecord, line: &str) -> serde_json::Value {
    let e = &r.event;
    json!({
        "id": e.id,
        "type": e.kind,
        "occurred_at": rfc3339(e.occurred_at),
        "user_id": e.user_id,
        "product_id": e.product_id,
        "line": line,
        "data": e.data,
        "deliveries": r.deliveries.iter().map(|(url, d)| json!({
            "url": url,
            "state": d.state,
            "attempts": d.attempts,
            "last_status": d.last_status,
            "last_attempt_at": d.last_attempt_at.map(rfc3339),
            "next_try": d.next_try.map(rfc3339),
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn disabled(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    match events::disabled(app).await {
        Ok(list) => json_response(
            StatusCode::OK,
            &json!({
                "endpoints": list.iter().map(|(url, at)| json!({
                    "url": url,
                    "disabled_at": rfc3339(*at),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => service_problem(&e),
    }
}

/// 204 when enabled again, 404 when the endpoint is not disabled, 400 without `url`.
pub(super) async fn enable(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(url) = super::query_param(req, "url") else {
        return service_problem(&crate::service::ServiceError::BadRequest(
            "url (the disabled endpoint) is required".into(),
        ));
    };
    let reason = super::query_param(req, "reason");
    match events::enable(app, &url, reason.as_deref(), &op).await {
        Ok(()) => {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => service_problem(&e),
    }
}

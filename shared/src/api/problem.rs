//! Errors as RFC 9457 problem details: one mapping from service errors to HTTP, here.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

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

//! Errors as RFC 9457 problem details: one mapping from service errors to HTTP, here.

use bytes::Bytes;
use http::{header, Response, StatusCode};

pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap_or_default()
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
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, PROBLEM_JSON)
        .body(Bytes::from(body.to_string()))
        .unwrap_or_default()
}

//! `GET /products` and `GET /streams`: the catalog for paywalls, without credentials,
//! cacheable (`Cache-Control`, `ETag`; `If-None-Match` with the current tag answers 304).

use super::problem::{json_response, response};
use crate::app::App;
use crate::service::paywall::{self, Listing};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

/// How long clients and CDNs may use an answer without asking again: the catalog's own
/// refresh interval.
fn cache_control(app: &App) -> HeaderValue {
    let max_age = app.config.catalog_refresh_seconds;
    HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("public, max-age=60"))
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags match too (RFC 9110 §13.1.2).
fn not_modified(req: &Request<Bytes>, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.trim_matches('"') == etag)
}

fn answer(app: &App, req: &Request<Bytes>, listing: Listing) -> Response<Bytes> {
    let mut r = if not_modified(req, &listing.etag) {
        response(StatusCode::NOT_MODIFIED, "application/json", Bytes::new())
    } else {
        json_response(StatusCode::OK, &listing.body)
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", listing.etag)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, cache_control(app));
    r
}

pub(super) fn products(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    answer(app, req, paywall::products(app))
}

pub(super) fn streams(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    answer(app, req, paywall::streams(app))
}

//! `GET /admin/` (or `/admin`): the operators' dashboard page, when this process carries it. The page lives
//! in the `tollgate-dashboard` crate, which only the processes that serve `/admin/stats`
//! link (the create-order function, the local server): they hand it over here once at
//! start-up, and every other function answers 404 without carrying its bytes.
//!
//! The page itself is public (it holds no data); it reads the admin routes with the bearer
//! token the operator pastes, so each figure is authorised like any other admin read.

use super::problem::problem;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use std::sync::OnceLock;

static PAGE: OnceLock<&'static str> = OnceLock::new();

/// Serves `page` at `GET /admin/` from now on; a second call changes nothing.
pub fn install(page: &'static str) {
    let _ = PAGE.set(page);
}

/// What the page may do: run its own inline script and style, and talk to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub(super) fn page() -> Response<Bytes> {
    let Some(page) = PAGE.get() else {
        return problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "this process does not serve the dashboard",
        );
    };
    let mut r = Response::new(Bytes::from_static(page.as_bytes()));
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    r
}

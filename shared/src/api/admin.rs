//! Operators' routes: `GET /admin/stats`.

use super::problem::{json_response, problem, service_problem};
use super::IamCaller;
use crate::app::App;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;

/// `GET /admin/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`. In AWS the route sits behind the HTTP
/// API's IAM authorizer and we also insist on its caller identity, so a misrouted request
/// with no IAM signature is refused; the local server serves it plainly.
pub(super) async fn stats(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
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

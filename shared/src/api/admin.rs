//! Operators' routes: `GET /admin/stats`, `POST /admin/streams/{id}/publish-key`,
//! `POST /admin/users/{user}/bans`, `DELETE /admin/users/{user}/bans/{stream_id|*}`.
//!
//! Each route needs an operator: an IAM-signed request (the HTTP API's IAM authorizer in
//! AWS), or a bearer token whose roles claim names `tollgate:admin` (`tollgate:support` may
//! read). Whoever changes something is recorded with the change.

use super::auth::{ADMIN_ROLE, SUPPORT_ROLE};
use super::problem::{json_response, problem, service_problem};
use super::{parse_json, IamCaller};
use crate::app::App;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::service::moderation::{self, BanRequest};
use crate::stream::names::percent_decode;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// What an admin route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Reading: support staff or admins.
    Read,
    /// Changing anything: admins only.
    Change,
}

/// Who is asking, when they may: an IAM-signed request (API Gateway's `AWS_IAM` authorizer
/// vouches for the operator's AWS identity, its ARN is the actor), or a caller whose roles
/// claim names [`ADMIN_ROLE`] (or [`SUPPORT_ROLE`] to read). Otherwise the answer: 401
/// without credentials, 403 for a caller without the role. The same rule on the local server
/// and in Lambda, so a viewer's token opens no admin route anywhere.
// The error is the finished response, as in `authenticate`: boxing would only add noise.
#[allow(clippy::result_large_err)]
fn authorize(app: &App, req: &Request<Bytes>, need: Need) -> Result<String, Response<Bytes>> {
    if let Some(iam) = req.extensions().get::<IamCaller>() {
        return Ok(iam.0.clone());
    }
    let caller = super::caller(app, req)?;
    let allowed = match need {
        Need::Read => caller.roles.may_read(),
        Need::Change => caller.roles.admin,
    };
    if allowed {
        Ok(caller.user_id)
    } else {
        let wanted = match need {
            Need::Read => format!("{ADMIN_ROLE} or {SUPPORT_ROLE}"),
            Need::Change => ADMIN_ROLE.to_owned(),
        };
        Err(problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this admin route needs the role {wanted}"),
        ))
    }
}

/// `GET /admin/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`.
pub(super) async fn stats(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
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

/// `POST /admin/streams/{id}/publish-key`: a new key, shown once; the old one stops working.
pub(super) async fn rotate_publish_key(
    app: &App,
    stream_id: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let actor = match authorize(app, req, Need::Change) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match moderation::rotate_publish_key(app, stream_id, &actor).await {
        Ok(k) => json_response(
            StatusCode::CREATED,
            &json!({
                "stream_id": stream_id,
                "publish_key": k.key,
                "version": k.stored.version,
                "rotated_at": rfc3339(k.stored.rotated_at),
                "rotated_by": k.stored.rotated_by,
            }),
        ),
        Err(e) => service_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    stream_id: Option<String>,
    /// RFC 3339; absent: until lifted.
    until: Option<String>,
    reason: String,
}

/// A user id from the path, percent-decoded (identity providers' ids hold `|` or `:`).
// The error is the finished response, as in `authenticate`: boxing would only add noise.
#[allow(clippy::result_large_err)]
fn user_segment(raw: &str) -> Result<String, Response<Bytes>> {
    percent_decode(raw).ok_or_else(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the user id is not percent-encoded UTF-8",
        )
    })
}

/// `POST /admin/users/{user}/bans`: 201 for a new ban, 200 when it replaced one of the same
/// scope.
pub(super) async fn ban(app: &App, user: &str, req: &Request<Bytes>) -> Response<Bytes> {
    let actor = match authorize(app, req, Need::Change) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = match user_segment(user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body: BanBody = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let until = match body.until.as_deref().map(parse_rfc3339) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "until must be an RFC 3339 time",
            )
        }
    };
    let asked = BanRequest {
        stream_id: body.stream_id,
        until,
        reason: body.reason,
    };
    match moderation::ban(app, &user, asked, &actor).await {
        Ok((b, replaced)) => json_response(
            if replaced {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &json!({
                "user_id": user,
                "stream_id": b.scope,
                "until": b.until.map(rfc3339),
                "reason": b.reason,
                "created_at": rfc3339(b.created_at),
                "created_by": b.created_by,
            }),
        ),
        Err(e) => service_problem(&e),
    }
}

/// `DELETE /admin/users/{user}/bans/{stream_id|*}`: 204, or 404 when there is no such ban.
pub(super) async fn lift_ban(
    app: &App,
    user: &str,
    scope: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let actor = match authorize(app, req, Need::Change) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (user, scope) = match (user_segment(user), user_segment(scope)) {
        (Ok(u), Ok(s)) => (u, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match moderation::lift_ban(app, &user, &scope, &actor).await {
        Ok(()) => {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => service_problem(&e),
    }
}

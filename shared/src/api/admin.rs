//! Operators' routes: `GET /admin/stats`, support's lookups (`GET /admin/orders/{id}`,
//! `GET /admin/lookup?provider=&transaction_id=`, `GET /admin/users/{user}`),
//! `POST /admin/orders/{id}/refunds`,
//! `POST /admin/streams/{id}/publish-key`, `POST /admin/users/{user}/bans`,
//! `DELETE /admin/users/{user}/bans/{stream_id|*}`, `POST /admin/users/{user}/grants`,
//! `DELETE /admin/users/{user}/grants/{source_id}`, `POST /admin/users/{user}/wallet` and
//! the audit trail, `GET /admin/audit?user_id=|since=`.
//!
//! Each route needs an operator: an IAM-signed request (the HTTP API's IAM authorizer in
//! AWS), or a bearer token whose roles claim names `tollgate:admin` (`tollgate:support` may
//! read). Whoever changes something is recorded with the change and in its audit record,
//! with the request's id.

use super::auth::{ADMIN_ROLE, SUPPORT_ROLE};
use super::problem::{json_response, problem, problem_with, service_problem};
use super::{parse_json, IamCaller, RequestId};

use crate::app::App;
use crate::domain::refund_request::RefundRequestState;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::domain::Order;
use crate::service::audit as audit_trail;
use crate::service::manual_grants::{self, GrantRequest, Granted};
use crate::service::moderation::{self, BanRequest};
use crate::service::operator::{self, Operator};
use crate::service::refund_requests::{self, RefundAsk, Started};
use crate::service::wallet::{self, Adjusted, WalletRequest};

use crate::service::{order_history, support};
use crate::stream::names::percent_decode;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// What an admin route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
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
pub(super) fn authorize(
    app: &App,
    req: &Request<Bytes>,
    need: Need,
) -> Result<String, Response<Bytes>> {
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

/// An admin who may change things, with the request's id for the audit record: API
/// Gateway's in Lambda, a fresh one on the local server.
#[allow(clippy::result_large_err)]
pub(super) fn operator(app: &App, req: &Request<Bytes>) -> Result<Operator, Response<Bytes>> {
    let actor = authorize(app, req, Need::Change)?;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(operator::new_request_id);
    Ok(Operator { actor, request_id })
}

/// The `Idempotency-Key` header, if sent; not text is a 400.
#[allow(clippy::result_large_err)]
fn idempotency_key(req: &Request<Bytes>) -> Result<Option<&str>, Response<Bytes>> {
    match req.headers().get("idempotency-key").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k)) => Ok(Some(k)),
        Some(Err(_)) => Err(problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Idempotency-Key must be printable ASCII",
        )),
    }
}

/// `GET /admin/stats?from=YYYY-MM-DD&to=YYYY-MM-DD[&by=product|line|provider]`.
pub(super) async fn stats(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let param = |name: &str| super::query_param(req, name);
    let (Some(from), Some(to)) = (param("from"), param("to")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "from and to are required (YYYY-MM-DD)",
        );
    };
    let by = match crate::service::stats::breakdown(param("by").as_deref()) {
        Ok(by) => by,
        Err(e) => return service_problem(&e),
    };
    match crate::service::stats::report(app, &from, &to, by).await {
        Ok(report) => match serde_json::to_value(&report) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("figures not serialisable: {e}"),
            ),
        },
        Err(e) => service_problem(&e),
    }
}

/// An order as support sees it: what its owner sees, plus whose it is and its history.
fn order_for_support(o: &Order) -> serde_json::Value {
    let mut v = super::orders::order_json(o);
    if let Some(map) = v.as_object_mut() {
        map.insert("user_id".into(), json!(o.user_id));
        map.insert("channel".into(), json!(o.channel));
        map.insert("grants".into(), json!(o.grants));
        map.insert("credits".into(), json!(o.credits));
        map.insert("provider_txn_id".into(), json!(o.provider_txn_id));
        map.insert("closed_at".into(), json!(o.closed_at.map(rfc3339)));
        map.insert("refunded_at".into(), json!(o.refunded_at.map(rfc3339)));
        map.insert("refunded_amount".into(), json!(o.refunded_amount));
        map.insert("refund_ids".into(), json!(o.refund_ids));
        map.insert("refund_requested".into(), json!(o.refund_requested));
        map.insert(
            "access_revoked_at".into(),
            json!(o.access_revoked_at.map(rfc3339)),
        );
        map.insert("sweep_attempts".into(), json!(o.sweep_attempts));
        map.insert("last_error".into(), json!(o.last_error));
    }
    v
}

/// `GET /admin/orders/{id}`: any user's order (support may read).
pub(super) async fn order(app: &App, id: &str, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    match support::order(app, id).await {
        Ok(o) => json_response(StatusCode::OK, &order_for_support(&o)),
        Err(e) => service_problem(&e),
    }
}

/// `GET /admin/lookup?provider=wechat&transaction_id=4200…`: the order a provider's
/// transaction paid.
pub(super) async fn lookup(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let param = |name: &str| super::query_param(req, name);
    let (Some(provider), Some(txn)) = (param("provider"), param("transaction_id")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "provider and transaction_id are required",
        );
    };
    match support::order_by_transaction(app, &provider, &txn).await {
        Ok(o) => json_response(StatusCode::OK, &order_for_support(&o)),
        Err(e) => service_problem(&e),
    }
}

/// `GET /admin/users/{user}/orders?limit=&cursor=`: any user's orders, newest first.
pub(super) async fn user_orders(app: &App, user: &str, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let user = match user_segment(user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let limit = super::query_param(req, "limit");
    let cursor = super::query_param(req, "cursor");
    match order_history::list(app, &user, limit.as_deref(), cursor.as_deref()).await {
        Ok(page) => json_response(
            StatusCode::OK,
            &super::orders::page_json(&page, order_for_support),
        ),
        Err(e) => service_problem(&e),
    }
}

/// `GET /admin/users/{user}`: every grant (revoked ones with when), what the user may watch
/// now, coins, device sessions and bans.
pub(super) async fn user(app: &App, user: &str, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let user = match user_segment(user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let view = match support::user(app, &user).await {
        Ok(v) => v,
        Err(e) => return service_problem(&e),
    };
    let items = &view.items;
    let grants: Vec<_> = items.grants.iter().map(manual_grants::grant_json).collect();
    let entitlements: Vec<_> = view
        .live
        .iter()
        .map(super::entitlements::window_json)
        .collect();
    let devices: Vec<_> = items
        .sessions
        .devices
        .iter()
        .map(|(device, d)| json!({"device_id": device, "last_seen": rfc3339(d.last_seen)}))
        .collect();
    let previews: serde_json::Map<_, _> = items
        .sessions
        .previews
        .iter()
        .map(|(stream, started)| (stream.clone(), json!(rfc3339(*started))))
        .collect();
    let bans: Vec<_> = items
        .bans
        .iter()
        .map(|b| {
            json!({
                "stream_id": b.scope,
                "until": b.until.map(rfc3339),
                "reason": b.reason,
                "created_at": rfc3339(b.created_at),
                "created_by": b.created_by,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "user_id": user,
            "grants": grants,
            "entitlements": entitlements,
            "credits": items.credits,
            "devices": devices,
            "previews_started": previews,
            "bans": bans,
        }),
    )
}

/// `POST /admin/streams/{id}/publish-key`: a new key, shown once; the old one stops working.
pub(super) async fn rotate_publish_key(
    app: &App,
    stream_id: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match moderation::rotate_publish_key(app, stream_id, &op).await {
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
    let op = match operator(app, req) {
        Ok(o) => o,
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
    match moderation::ban(app, &user, asked, &op).await {
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

/// `DELETE /admin/users/{user}/bans/{stream_id|*}?reason=`: 204, or 404 when there is no
/// such ban. The reason is optional and goes to the audit record.
pub(super) async fn lift_ban(
    app: &App,
    user: &str,
    scope: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (user, scope) = match (user_segment(user), user_segment(scope)) {
        (Ok(u), Ok(s)) => (u, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let reason = super::query_param(req, "reason");
    match moderation::lift_ban(app, &user, &scope, reason.as_deref(), &op).await {
        Ok(()) => {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => service_problem(&e),
    }
}

/// `POST /admin/users/{user}/grants` with an `Idempotency-Key`: 201 with the promotion and
/// its windows, 200 with the same answer on a repeat.
pub(super) async fn grant(app: &App, user: &str, req: &Request<Bytes>) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (user, key) = match (user_segment(user), idempotency_key(req)) {
        (Ok(u), Ok(k)) => (u, k),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let body: GrantRequest = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match manual_grants::grant(app, &user, body, key, &op).await {
        Ok(Granted::New(v)) => json_response(StatusCode::CREATED, &v),
        Ok(Granted::Replayed(v)) => json_response(StatusCode::OK, &v),
        Err(e) => service_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

/// `DELETE /admin/users/{user}/grants/{source_id}` with `{"reason"}` (or `?reason=`): 200
/// with the grants as revoked; 404 without such a grant; 409 when already revoked.
pub(super) async fn revoke_grant(
    app: &App,
    user: &str,
    source: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (user, source) = match (user_segment(user), user_segment(source)) {
        (Ok(u), Ok(s)) => (u, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let reason = if req.body().is_empty() {
        match super::query_param(req, "reason") {
            Some(r) => r,
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "a reason is required (body {\"reason\": ...} or ?reason=)",
                )
            }
        }
    } else {
        match parse_json::<RevokeBody>(req) {
            Ok(b) => b.reason,
            Err(r) => return r,
        }
    };
    match manual_grants::revoke(app, &user, &source, &reason, &op).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => service_problem(&e),
    }
}

/// `POST /admin/users/{user}/wallet` with an `Idempotency-Key`: 201 with the balance
/// before and after, 200 with the same answer on a repeat.
pub(super) async fn wallet(app: &App, user: &str, req: &Request<Bytes>) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (user, key) = match (user_segment(user), idempotency_key(req)) {
        (Ok(u), Ok(k)) => (u, k),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let body: WalletRequest = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match wallet::adjust(app, &user, body, key, &op).await {
        Ok(Adjusted::New(v)) => json_response(StatusCode::CREATED, &v),
        Ok(Adjusted::Replayed(v)) => json_response(StatusCode::OK, &v),
        Err(e) => service_problem(&e),
    }
}

/// `GET /admin/audit?user_id=&since=&limit=&cursor=`: a user's records newest first, or
/// with `since` alone everyone's oldest first (support may read).
pub(super) async fn audit(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    if let Err(r) = authorize(app, req, Need::Read) {
        return r;
    }
    let param = |name: &str| super::query_param(req, name);
    let (user, since, limit, cursor) = (
        param("user_id"),
        param("since"),
        param("limit"),
        param("cursor"),
    );
    match audit_trail::list(
        app,
        user.as_deref(),
        since.as_deref(),
        limit.as_deref(),
        cursor.as_deref(),
    )
    .await
    {
        Ok(page) => json_response(
            StatusCode::OK,
            &json!({
                "records": page.records.iter().map(record_json).collect::<Vec<_>>(),
                "next_cursor": page.next_cursor,
            }),
        ),
        Err(e) => service_problem(&e),
    }
}

fn record_json(r: &crate::domain::audit::AuditRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "at": rfc3339(r.at),
        "actor": r.actor,
        "action": r.action.as_str(),
        "user_id": r.user_id,
        "order_id": r.order_id,
        "stream_id": r.stream_id,
        "before": r.before,
        "after": r.after,
        "reason": r.reason,
        "request_id": r.request_id,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    /// Minor units; absent: all that remains.
    amount: Option<i64>,
    reason: String,
}

/// A refund request as the operator sees it.
fn refund_json(s: &Started) -> serde_json::Value {
    let r = &s.request;
    let money = |amount: i64| json!({"amount": amount, "currency": s.currency.as_str()});
    json!({
        "refund_id": r.out_refund_no,
        "order_id": r.order_id.as_str(),
        "state": r.state.as_str(),
        "amount": money(r.amount),
        "reason": r.reason,
        "requested_by": r.requested_by,
        "requested_at": rfc3339(r.requested_at),
        "updated_at": rfc3339(r.updated_at),
        "provider_refund_id": r.provider_refund_id,
        "failure": r.failure,
        "next_check_at": r.next_check_at.filter(|_| r.state.is_open()).map(rfc3339),
        "remaining": money(s.remaining),
    })
}

/// `POST /admin/orders/{id}/refunds` with an `Idempotency-Key`: 201 when the provider
/// confirmed the refund, 202 while it is open (processing at the provider, or no answer yet:
/// the sweeper finishes it), 422 when the provider refused it (the request is in the
/// problem's `refund`). The same key and body again answer the request as it stands.
pub(super) async fn refund(app: &App, order_id: &str, req: &Request<Bytes>) -> Response<Bytes> {
    let op = match operator(app, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let key = match idempotency_key(req) {
        Ok(Some(k)) => k.to_owned(),
        Err(r) => return r,
        Ok(None) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "idempotency-key-required",
                "a refund needs an Idempotency-Key header, so that a retry never refunds twice",
            )
        }
    };
    let body: RefundBody = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ask = RefundAsk {
        amount: body.amount,
        reason: body.reason,
    };
    match refund_requests::start(app, order_id, &key, ask, &op).await {
        Ok(s) => match s.request.state {
            RefundRequestState::Confirmed => json_response(StatusCode::CREATED, &refund_json(&s)),
            RefundRequestState::Requested | RefundRequestState::Pending => {
                json_response(StatusCode::ACCEPTED, &refund_json(&s))
            }
            RefundRequestState::Failed => {
                let mut extra = serde_json::Map::new();
                extra.insert("refund".into(), refund_json(&s));
                problem_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "refund-failed",
                    format!(
                        "the provider refused the refund: {}",
                        s.request.failure.as_deref().unwrap_or("no reason given")
                    ),
                    extra,
                )
            }
        },
        Err(e) => service_problem(&e),
    }
}

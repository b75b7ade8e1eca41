//! `/wallet` routes: the caller's own coins (balance and ledger) and their spends.

use super::parse_json;
use super::problem::json_response;
use crate::app::App;
use crate::domain::ledger::LedgerEntry;
use crate::domain::time::rfc3339;
use crate::service::{debits, ledger, ServiceError};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;

fn entry_json(e: &LedgerEntry, balance_after: Option<i64>) -> serde_json::Value {
    let mut v = json!({
        "id": e.id,
        "at": rfc3339(e.at_ms.div_euclid(1000)),
        "amount": e.amount,
        "source": e.source,
        "reason": e.reason,
        "reference": e.reference,
    });
    if let (Some(b), Some(map)) = (balance_after, v.as_object_mut()) {
        map.insert("balance_after".into(), json!(b));
    }
    v
}

/// `GET /wallet?limit=&cursor=`: the balance (first page) and the newest movements.
pub(super) async fn read(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let limit = super::query_param(req, "limit");
    let cursor = super::query_param(req, "cursor");
    let page = ledger::read(app, user, limit.as_deref(), cursor.as_deref()).await?;
    let mut body = json!({
        "entries": page
            .entries
            .iter()
            .map(|(e, after)| entry_json(e, Some(*after)))
            .collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    });
    if let (Some(b), Some(map)) = (page.balance, body.as_object_mut()) {
        map.insert("balance".into(), json!(b));
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /wallet/debits` with an `Idempotency-Key`: 201 with the entry written, 200 with
/// the same entry for a repeat.
pub(super) async fn debit(
    app: &App,
    user: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ServiceError> {
    let body: debits::DebitRequest = match parse_json(req) {
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
    Ok(match debits::debit(app, user, body, key).await? {
        debits::Debited::New(e) => json_response(StatusCode::CREATED, &entry_json(&e, None)),
        debits::Debited::Replayed(e) => json_response(StatusCode::OK, &entry_json(&e, None)),
    })
}

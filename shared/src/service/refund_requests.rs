//! Refunds an operator starts (`POST /admin/orders/{id}/refunds`): recorded first, then
//! asked of the provider, then counted through the one refund path every refund takes
//! ([`super::refunds::refund`]).
//!
//! 1. The request is recorded in one transaction with the hold of its amount on the order
//!    ([`Store::request_refund`](crate::store::Store::request_refund)): concurrent requests
//!    never together ask for more than remains, and the same Idempotency-Key names the same
//!    request (and the same refund id at the provider), so a repeat finds it and asks
//!    nothing more.
//! 2. The provider is asked. Its answer moves the request on: confirmed (counted like a
//!    reported refund, so the provider's notification of it counts nothing more), still
//!    processing, or refused (the hold released). No answer leaves it REQUESTED.
//! 3. The sweeper ([`sweep`]) finds open requests through the refund index, asks the
//!    provider how each went, and sends a request the provider never received again under
//!    the same id: a lost answer or notification never leaves access forever.
//!
//! App-store purchases and Huya sales cannot be refunded by the seller: their stores'
//! own processes do it, and their notifications report it.

use super::operator::Operator;
use super::payments::ApplyError;
use super::{refunds, ServiceError};
use crate::app::App;
use crate::domain::audit::{AuditAction, AuditRecord};
use crate::domain::refund::RefundReport;
use crate::domain::refund_request::{
    next_check, out_refund_no, remaining, request_hash, RefundHold, RefundRequest,
    RefundRequestChange, RefundRequestState, MAX_REASON_CHARS,
};
use crate::domain::{Money, Order, OrderId, OrderState};
use crate::providers::{ProviderError, RefundAnswer, RefundIssuer};
use crate::store::{RefundRequestOutcome, StoreError};
use serde_json::json;
use std::sync::Arc;

/// How long the provider has to answer the first call before the sweeper looks (a call
/// still in flight is never raced by a second one).
pub const FIRST_CHECK_AFTER: i64 = 60;
/// How often a refund the provider is processing is asked about.
pub const PENDING_CHECK_EVERY: i64 = 60;
/// Refund requests the sweeper looks at per run.
pub const PAGE: usize = 100;
/// Holds lost to concurrent writes of the same order before giving up (busy). A hold is lost
/// only to another hold or a refund counted meanwhile, and once what remains is held the
/// request is refused without writing: a 9.00 order split in 3.00 requests loses at most six.
const ATTEMPTS: usize = 16;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct RefundAsk {
    /// Minor units; `None`: all that remains.
    pub amount: Option<i64>,
    pub reason: String,
}

/// A refund request as it stands, with what remains refundable of its order.
#[derive(Debug, Clone)]
pub struct Started {
    pub request: RefundRequest,
    pub currency: crate::domain::Currency,
    /// Minor units: paid, less refunds counted and requests still open.
    pub remaining: i64,
}

fn refused(detail: impl Into<String>, remaining: Option<Money>) -> ServiceError {
    ServiceError::RefundRefused {
        detail: detail.into(),
        remaining,
    }
}

/// The seller cannot refund these: who does, in words for the operator.
fn refunded_elsewhere(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "apple" => {
            "App Store purchases are refunded by Apple, not the seller: the customer asks \
             Apple at reportaproblem.apple.com; Apple's REFUND notification then ends the \
             access here"
        }
        "google" => {
            "Google Play purchases are refunded in the Play Console (Order management) or \
             with the Play Developer API's orders.refund; the voided-purchase notification \
             then ends the access here"
        }
        "huya" => "Huya sales are refunded by Huya's platform, not through Tollgate",
        _ => return None,
    })
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Records and sends an operator's refund of order `order_id` under `idempotency_key`.
pub async fn start(
    app: &App,
    order_id: &str,
    idempotency_key: &str,
    ask: RefundAsk,
    op: &Operator,
) -> Result<Started, ServiceError> {
    if !valid_key(idempotency_key) {
        return Err(ServiceError::BadRequest(
            "Idempotency-Key must be 1-128 printable ASCII characters".into(),
        ));
    }
    let reason = ask.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ServiceError::BadRequest(format!(
            "reason must be 1-{MAX_REASON_CHARS} characters"
        )));
    }
    let not_found = || ServiceError::NotFound(format!("order {order_id:?} not found"));
    let id = OrderId::parse(order_id).map_err(|_| not_found())?;
    let mut order = app.store.get_order(&id).await?.ok_or_else(not_found)?;
    if let Some(who) = refunded_elsewhere(&order.provider) {
        return Err(refused(who, None));
    }
    let Some(issuer) = app.providers.refunds(&order.provider).cloned() else {
        return Err(refused(
            format!(
                "provider {} is not enabled in this function: it cannot refund",
                order.provider
            ),
            None,
        ));
    };
    let no = out_refund_no(&order.order_id, idempotency_key);
    let hash = request_hash(ask.amount, &reason);
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    for _ in 0..ATTEMPTS {
        let left = Money {
            amount: remaining(&order),
            currency: order.amount.currency,
        };
        let amount = ask.amount.unwrap_or(left.amount);
        let hold = match order.state {
            OrderState::Paid => RefundHold::on(&order, amount),
            _ => None,
        };
        let Some(hold) = hold else {
            // The request this key made earlier may be what used up the rest.
            if let Some(earlier) = app.store.refund_request(&order.order_id, &no).await? {
                return replay(earlier, &hash, &order);
            }
            return Err(match order.state {
                OrderState::Paid | OrderState::Refunded if left.amount == 0 => refused(
                    "nothing remains to refund: refunds counted and requests still open \
                     cover what was paid",
                    Some(left),
                ),
                OrderState::Paid | OrderState::Refunded if amount > 0 => refused(
                    format!("{amount} is more than remains to refund ({left})"),
                    Some(left),
                ),
                OrderState::Paid | OrderState::Refunded => refused(
                    format!("the amount must be positive; {left} remains to refund"),
                    Some(left),
                ),
                other => refused(
                    format!(
                        "the order is {}: only paid orders are refunded",
                        other.as_str()
                    ),
                    None,
                ),
            });
        };
        let req = RefundRequest {
            order_id: order.order_id.clone(),
            out_refund_no: no.clone(),
            amount,
            reason: reason.clone(),
            requested_by: op.actor.clone(),
            requested_at: now,
            request_hash: hash.clone(),
            state: RefundRequestState::Requested,
            provider_refund_id: None,
            failure: None,
            updated_at: now,
            next_check_at: Some(now + FIRST_CHECK_AFTER),
            attempts: 0,
        };
        let audit = AuditRecord {
            user_id: Some(order.user_id.clone()),
            order_id: Some(order.order_id.to_string()),
            before: json!({
                "refunded_amount": order.refunded_amount,
                "refund_requested": order.refund_requested,
            }),
            after: json!({
                "refund_id": req.out_refund_no,
                "amount": req.amount,
                "refunded_amount": order.refunded_amount,
                "refund_requested": order.refund_requested + req.amount,
            }),
            reason: Some(reason.clone()),
            ..op.record(AuditAction::Refund, now_ms)
        };
        match app
            .store
            .request_refund(&order, &req, &hold, &audit)
            .await?
        {
            RefundRequestOutcome::Recorded(held) => {
                tracing::info!(order_id = %req.order_id, provider = %held.provider, refund = %req.out_refund_no, amount = req.amount, actor = %op.actor, reason = %req.reason, "refund requested");
                let answer = issuer.refund(&held, &req).await;
                let request = apply(app, &held, &req, answer).await?;
                return Ok(started(request, &held));
            }
            RefundRequestOutcome::Exists(earlier) => return replay(*earlier, &hash, &order),
            RefundRequestOutcome::OrderChanged(stored) => order = *stored,
            RefundRequestOutcome::UnknownOrder => return Err(not_found()),
        }
    }
    Err(ServiceError::Busy(
        "the order kept changing; retry with the same Idempotency-Key".into(),
    ))
}

/// A request under the same key again: the same body gets the request as it stands (no
/// provider call: the first one made it, or the sweeper will), another body is refused.
fn replay(earlier: RefundRequest, hash: &str, order: &Order) -> Result<Started, ServiceError> {
    if earlier.request_hash != hash {
        return Err(ServiceError::IdempotencyMismatch);
    }
    Ok(Started {
        currency: order.amount.currency,
        remaining: remaining(order),
        request: earlier,
    })
}

/// What remains once `request` stands as it does, `held` being the order with its hold.
fn started(request: RefundRequest, held: &Order) -> Started {
    let released = match request.state {
        RefundRequestState::Failed => request.amount,
        _ => 0,
    };
    Started {
        currency: held.amount.currency,
        remaining: remaining(held) + released,
        request,
    }
}

/// Moves `req` on by the provider's `answer` (a refund call's or a query's): confirmed
/// refunds are counted through the refund path first, then the request finished; the
/// request as it stands after.
async fn apply(
    app: &App,
    order: &Order,
    req: &RefundRequest,
    answer: Result<RefundAnswer, ProviderError>,
) -> Result<RefundRequest, ServiceError> {
    let now = app.clock.now();
    let retry = |failure: String| RefundRequestChange::Retry {
        attempts: req.attempts + 1,
        failure,
        next_check_at: next_check(now, req.attempts),
    };
    let change = match answer {
        Ok(RefundAnswer::Confirmed {
            refunded,
            refund,
            provider_refund_id,
        }) => match count(app, order, refunded, refund).await {
            Ok(()) => RefundRequestChange::Finished {
                state: RefundRequestState::Confirmed,
                provider_refund_id,
                failure: None,
                at: now,
            },
            // Not counted: the request stays open, so the sweeper counts it later.
            Err(ApplyError::Store(e)) => return Err(e.into()),
            Err(ApplyError::Rejected(r)) => {
                tracing::error!(order_id = %order.order_id, refund = %req.out_refund_no, reason = %r, "refund confirmed by the provider but refused here: needs an operator");
                retry(format!("confirmed by the provider but not counted: {r}"))
            }
        },
        Ok(RefundAnswer::Pending { provider_refund_id }) => RefundRequestChange::Pending {
            provider_refund_id,
            next_check_at: now + PENDING_CHECK_EVERY,
            at: now,
        },
        Ok(RefundAnswer::Failed { code }) => {
            tracing::warn!(order_id = %order.order_id, refund = %req.out_refund_no, code, "provider refused the refund");
            RefundRequestChange::Finished {
                state: RefundRequestState::Failed,
                provider_refund_id: None,
                failure: Some(code),
                at: now,
            }
        }
        Ok(RefundAnswer::Unknown) => retry("the provider knows no such refund yet".into()),
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(order_id = %order.order_id, refund = %req.out_refund_no, error = %e, "provider unreachable: refund left open for the sweeper");
            retry(format!("provider unreachable: {e}"))
        }
        Err(ProviderError::Refused(e)) => RefundRequestChange::Finished {
            state: RefundRequestState::Failed,
            provider_refund_id: None,
            failure: Some(e),
            at: now,
        },
    };
    match app.store.change_refund_request(req, &change).await? {
        Some(written) => Ok(written),
        // Finished meanwhile (the sweeper and an answer raced): as it stands.
        None => app
            .store
            .refund_request(&req.order_id, &req.out_refund_no)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("refund request {} vanished", req.out_refund_no)).into()
            }),
    }
}

/// Counts a confirmed refund on the order through the path every refund takes.
async fn count(
    app: &App,
    order: &Order,
    refunded: Money,
    refund: crate::domain::refund::RefundRef,
) -> Result<(), ApplyError> {
    let Some(txn) = order.provider_txn_id.clone() else {
        return Err(
            super::payments::Rejected::NotRefundable("paid by no recorded transaction").into(),
        );
    };
    let report = RefundReport {
        provider_txn_id: txn,
        refunded,
        order_total: order.amount,
        refund,
    };
    refunds::refund(app, order.clone(), &report)
        .await
        .map(|_| ())
}

/// What one sweep did with open refund requests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefundSweep {
    pub examined: u32,
    pub confirmed: u32,
    pub failed: u32,
    /// Still open: processing at the provider, or no answer.
    pub open: u32,
    pub errors: u32,
}

/// Looks at every open refund request due by `now` (one query of the refund index), asks
/// its provider how it went, sends one the provider never received again under the same id,
/// and moves it on; starts none after `deadline_ms` less `margin_ms`.
pub async fn sweep(app: &App, now: i64, deadline_ms: i64, margin_ms: i64) -> (RefundSweep, bool) {
    let mut report = RefundSweep::default();
    let due = match app.store.due_refund_requests(now, PAGE).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "refund index unavailable");
            report.errors += 1;
            return (report, false);
        }
    };
    for entry in due {
        if app.clock.now_ms() + margin_ms > deadline_ms {
            return (report, true);
        }
        report.examined += 1;
        match sweep_one(app, &entry.order_id, &entry.out_refund_no).await {
            Ok(Some(state)) => match state {
                RefundRequestState::Confirmed => report.confirmed += 1,
                RefundRequestState::Failed => report.failed += 1,
                _ => report.open += 1,
            },
            Ok(None) => {}
            Err(e) => {
                tracing::error!(order_id = %entry.order_id, refund = %entry.out_refund_no, error = %e, "refund request not checked");
                report.errors += 1;
            }
        }
    }
    (report, false)
}

/// The state one open request is left in; `None` when it was no longer open.
async fn sweep_one(
    app: &App,
    order_id: &OrderId,
    no: &str,
) -> Result<Option<RefundRequestState>, ServiceError> {
    // The index is eventually consistent: the request itself decides.
    let Some(req) = app.store.refund_request(order_id, no).await? else {
        return Ok(None);
    };
    if !req.state.is_open() {
        return Ok(None);
    }
    let order = app.store.get_order(order_id).await?.ok_or_else(|| {
        ServiceError::Internal(format!(
            "refund request {no} names missing order {order_id}"
        ))
    })?;
    let issuer: Option<Arc<dyn RefundIssuer>> = app.providers.refunds(&order.provider).cloned();
    let answer = match issuer {
        None => Err(ProviderError::Unavailable(format!(
            "provider {} is not enabled in the sweeper",
            order.provider
        ))),
        Some(issuer) => match issuer.query_refund(&order, &req).await {
            // Never received: send it again under the same id (the provider dedupes).
            Ok(RefundAnswer::Unknown) if req.state == RefundRequestState::Requested => {
                tracing::info!(order_id = %order_id, refund = %no, "refund never reached the provider: sent again");
                issuer.refund(&order, &req).await
            }
            other => other,
        },
    };
    let after = apply(app, &order, &req, answer).await?;
    Ok(Some(after.state))
}

//! Applying a refund: the one path every refund takes, whoever reports it (a provider's
//! notification or an app store's revocation today).
//!
//! [`decide`] says what the refund does to the order as read; the store writes it under
//! conditions on exactly that read. A write whose conditions fail (a concurrent refund got
//! there first) changes nothing and returns the stored order, and the rule is applied again
//! to it: so every refund is counted once, and the one that completes what was paid revokes,
//! once. A partial refund costs two round trips (read, one conditional update), the one that
//! completes the total two as well (read, one transaction), a repeat one (the read).

use super::payments::{Applied, ApplyError, Rejected};
use crate::app::App;
use crate::domain::refund::{decide, RefundDecision, RefundRefused, RefundReport};
use crate::domain::Order;
use crate::store::{StoreError, TransitionOutcome};

/// Writes a refund may lose to concurrent ones before giving up (the provider retries).
/// Each loss means another refund of the order was counted; after two, this one has either
/// been counted, completes the total, or is more than remains.
const ATTEMPTS: usize = 4;

/// Applies `report` to `order` (the caller's read of it).
pub async fn refund(
    app: &App,
    mut order: Order,
    report: &RefundReport,
) -> Result<Applied, ApplyError> {
    if report.order_total.amount != order.amount.amount {
        tracing::warn!(order_id = %order.order_id, expected = %order.amount, stated = %report.order_total, "refund states another order total");
    }
    for _ in 0..ATTEMPTS {
        let decision = decide(&order, report).map_err(|r| refused(&order, report, r))?;
        let outcome = match &decision {
            RefundDecision::AlreadyCounted => return Ok(Applied::Duplicate),
            RefundDecision::Count(count) => app.store.count_refund(&order.order_id, count).await?,
            RefundDecision::CountAndRevoke(count) => {
                app.store.refund(&order, count, app.clock.now()).await?
            }
        };
        match outcome {
            TransitionOutcome::Done(o) => {
                let revoked = matches!(decision, RefundDecision::CountAndRevoke(_));
                tracing::info!(order_id = %o.order_id, provider = %o.provider, refunded = %report.refunded, refunded_in_all = o.refunded_amount, revoked, "refund counted");
                return Ok(if revoked {
                    Applied::Refunded
                } else {
                    Applied::PartialRefundKeptAccess
                });
            }
            TransitionOutcome::Conflict(stored) => order = *stored,
            TransitionOutcome::UnknownOrder => return Err(Rejected::UnknownOrder.into()),
        }
    }
    Err(StoreError::Unavailable("order kept changing during refund".into()).into())
}

/// A refused refund changes nothing. One of money that cannot be right (another currency,
/// more than was paid) is an error for an operator; one of an order that is not paid is what
/// app stores send for purchases never settled here.
fn refused(order: &Order, report: &RefundReport, r: RefundRefused) -> ApplyError {
    match r {
        RefundRefused::NotPaid(state) => Rejected::NotRefundable(state),
        RefundRefused::OtherPayment => Rejected::NotRefundable("paid by another transaction"),
        money => {
            tracing::error!(order_id = %order.order_id, provider = %order.provider, paid = %order.amount, refunded_in_all = order.refunded_amount, refunded = %report.refunded, refund = ?report.refund, reason = %money, "refund refused: needs an operator");
            Rejected::Refund(money)
        }
    }
    .into()
}

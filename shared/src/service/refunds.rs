//! Applying a refund: the one path every refund takes, whoever reports it (a provider's
//! notification or an app store's revocation today).
//!
//! [`decide`] says what the refund does to the order as read; the store writes it under
//! conditions on exactly that read. A write whose conditions fail (a concurrent refund got
//! there first) changes nothing and returns the stored order, and the rule is applied again
//! to it: so every refund is counted once, and the one that completes what was paid revokes,
//! once. A partial refund costs two round trips (read, one conditional update), the one that
//! completes the total two as well (read, one transaction), a repeat one (the read).
//!
//! [`reverse`] is the way back, for a provider that reverses a refund it made (Apple's
//! REFUND_REVERSED): REFUNDED → PAID, access restored, in one transaction conditioned on the
//! order still being REFUNDED by that very refund, so it applies once however many copies
//! race.

use super::payments::{Applied, ApplyError, Rejected};
use crate::app::App;
use crate::domain::refund::{decide, RefundDecision, RefundRefused, RefundReport, RefundReversal};
use crate::domain::{Order, OrderState};
use crate::metrics;
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
            // The policy may end access at the first refund; the order stays PAID, so what
            // remains can still be refunded. Once ended, a further partial refund only counts.
            RefundDecision::Count(count)
                if app.config.partial_refund_revokes && order.access_revoked_at.is_none() =>
            {
                app.store
                    .count_refund_revoking(&order, count, app.clock.now())
                    .await?
            }
            RefundDecision::Count(count) => {
                app.store
                    .count_refund(&order, count, app.clock.now())
                    .await?
            }
            RefundDecision::CountAndRevoke(count) => {
                app.store.refund(&order, count, app.clock.now()).await?
            }
        };
        match outcome {
            TransitionOutcome::Done(o) => {
                let revoked = matches!(decision, RefundDecision::CountAndRevoke(_));
                tracing::info!(order_id = %o.order_id, provider = %o.provider, refunded = %report.refunded, refunded_in_all = o.refunded_amount, revoked, access_revoked = o.access_revoked_at.is_some(), "refund counted");
                return Ok(if revoked {
                    Applied::Refunded
                } else if o.access_revoked_at.is_some() {
                    Applied::PartialRefundRevoked
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

/// Reverses the refund of `order` (the caller's read of it) paid by `provider_txn_id`, as
/// the provider reported at `reversed_at`: REFUNDED → PAID, its grants and coins restored,
/// its refunds cleared, the reversal and `reason` recorded on the order. An order already
/// PAID again by a reversal is a duplicate; one that is not REFUNDED, or was paid by another
/// transaction, is refused (nothing changes). Costs one transaction after the caller's read.
pub async fn reverse(
    app: &App,
    order: Order,
    provider_txn_id: &str,
    reversed_at: i64,
    reason: &str,
) -> Result<Applied, ApplyError> {
    if order.provider_txn_id.as_deref() != Some(provider_txn_id) {
        return Err(Rejected::NotReversible("paid by another transaction").into());
    }
    match order.state {
        OrderState::Refunded => {}
        OrderState::Paid if order.refund_reversed_at.is_some() => return Ok(Applied::Duplicate),
        other => return Err(Rejected::NotReversible(other.as_str()).into()),
    }
    let Some(refunded_at) = order.refunded_at else {
        return Err(StoreError::Corrupt(format!(
            "order {} is REFUNDED without refunded_at",
            order.order_id
        ))
        .into());
    };
    let reversal = RefundReversal {
        provider_txn_id: provider_txn_id.to_owned(),
        refunded_at,
        reversed_at,
        reason: reason.to_owned(),
    };
    match app.store.reverse_refund(&order, &reversal).await? {
        TransitionOutcome::Done(o) => {
            tracing::info!(
                order_id = %o.order_id,
                provider = %o.provider,
                user_id = %o.user_id,
                refunded_at,
                reversed_at,
                reversed_amount = order.refunded_amount,
                reason,
                transition = "REFUNDED->PAID",
                "refund reversed: access restored"
            );
            metrics::count("RefundsReversed", 1, &[("Provider", o.provider.as_str())]);
            Ok(Applied::RefundReversed)
        }
        // A concurrent copy got there first (PAID again), or a newer refund moved it on.
        TransitionOutcome::Conflict(stored) => match stored.state {
            OrderState::Paid if stored.refund_reversed_at.is_some() => Ok(Applied::Duplicate),
            other => Err(Rejected::NotReversible(other.as_str()).into()),
        },
        TransitionOutcome::UnknownOrder => Err(Rejected::UnknownOrder.into()),
    }
}

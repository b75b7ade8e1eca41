//! Applying verified provider events: settle exactly once; refunds go through
//! [`super::refunds`].
//!
//! A settle is two store round trips: read the order, then one transaction. Duplicates and
//! races fail the transaction's conditions and come back as `Duplicate`, never as a second
//! grant.

use crate::app::App;
use crate::domain::refund::{RefundRefused, RefundReport};
use crate::domain::{Money, Order, OrderState};
use crate::providers::{ProviderEvent, Sale};
use crate::store::{SettleOutcome, Settlement, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Settled {
        late: bool,
    },
    Refunded,
    /// A refund of less than remains: counted on the order, the purchase stands, access is
    /// kept.
    PartialRefundKeptAccess,
    /// A refund of less than remains, counted, that ended the order's access
    /// (`PARTIAL_REFUND_REVOKES`): the order stays PAID.
    PartialRefundRevoked,
    /// A refund the provider reversed: the order is PAID again and its access restored.
    RefundReversed,
    /// Already applied: acknowledge to the provider, change nothing.
    Duplicate,
}

/// Why an event was refused. Nothing was changed; the provider gets its failure answer.
impl Rejected {
    /// A stable label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::UnknownOrder => "unknown_order",
            Rejected::WrongProvider => "wrong_provider",
            Rejected::AmountMismatch { .. } => "amount_mismatch",
            Rejected::TransactionReused => "transaction_reused",
            Rejected::AlreadyPaidByOtherTransaction => "paid_twice",
            Rejected::NotRefundable(_) => "not_refundable",
            Rejected::NotReversible(_) => "not_reversible",
            Rejected::Refund(r) => r.code(),
            Rejected::NotForSale(_) => "not_for_sale",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("unknown order")]
    UnknownOrder,
    #[error("order belongs to another provider")]
    WrongProvider,
    #[error("amount {got} does not match the order's {expected}")]
    AmountMismatch { expected: Money, got: Money },
    #[error("provider transaction already settled another order")]
    TransactionReused,
    #[error("order was already paid by another provider transaction")]
    AlreadyPaidByOtherTransaction,
    #[error("refund for an order that is {0}")]
    NotRefundable(&'static str),
    /// A refund reversal for an order that no refund of that payment made REFUNDED.
    #[error("refund reversal for an order that is {0}")]
    NotReversible(&'static str),
    /// A refund whose money cannot be right for the order (see `domain::refund`).
    #[error(transparent)]
    Refund(RefundRefused),
    #[error("not for sale: {0}")]
    NotForSale(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a settle re-reads after losing a race (e.g. the sweeper expired the order
/// between our read and our write). Each loss means the state moved on, which it can only do
/// a bounded number of times.
const RACE_RETRIES: usize = 3;

pub async fn apply(app: &App, provider: &str, event: ProviderEvent) -> Result<Applied, ApplyError> {
    let now = app.clock.now();
    if let ProviderEvent::Sold(sale) = event {
        return sell(app, provider, sale, now).await;
    }
    let order = app
        .store
        .get_order(event.order_id())
        .await?
        .ok_or(Rejected::UnknownOrder)?;
    if order.provider != provider {
        return Err(Rejected::WrongProvider.into());
    }
    match event {
        ProviderEvent::Paid {
            provider_txn_id,
            amount,
            paid_at,
            ..
        } => settle(app, order, &provider_txn_id, amount, paid_at, now).await,
        ProviderEvent::Refunded {
            provider_txn_id,
            refunded,
            order_total,
            refund,
            ..
        } => {
            let report = RefundReport {
                provider_txn_id,
                refunded,
                order_total,
                refund,
            };
            super::refunds::refund(app, order, &report).await
        }
        ProviderEvent::Sold(_) => Err(Rejected::UnknownOrder.into()),
    }
}

/// A sale the provider made on its own: the order is created already paid, with its grants,
/// in one transaction claimed by the provider's transaction id. One round trip.
async fn sell(app: &App, provider: &str, sale: Sale, now: i64) -> Result<Applied, ApplyError> {
    let catalog = app.catalog.current();
    let offer = catalog
        .offer(&sale.product_id, sale.plan_id.as_deref(), now)
        .map_err(|e| Rejected::NotForSale(e.to_string()))?;
    if offer.price != sale.amount {
        return Err(Rejected::AmountMismatch {
            expected: offer.price,
            got: sale.amount,
        }
        .into());
    }
    // Access starts when the provider says the sale happened, never later than now.
    let paid_at = sale.paid_at.min(now);
    let order = Order::sold(
        sale.order_id.clone(),
        &sale.user_id,
        &offer,
        provider,
        &sale.provider_txn_id,
        paid_at,
    );
    let st = Settlement {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        expected_state: OrderState::Paid,
        amount: order.amount,
        provider: order.provider.clone(),
        provider_txn_id: sale.provider_txn_id.clone(),
        paid_at,
        product_id: order.product_id.clone(),
        grants: order.grants_at(paid_at),
        credits: order.credits,
        recorded_at: now,
        stream_id: order.stream_id.clone(),
    };
    let settled = crate::metrics::timed(
        "SettleMs",
        &[("Provider", provider)],
        app.store.settle_new_order(&order, &st),
    )
    .await?;
    match settled {
        SettleOutcome::Settled => {
            tracing::info!(order_id = %order.order_id, provider, product = %order.product_id, "provider sale recorded");
            super::order_metrics::count(app, "OrdersCreated", provider, &order.product_id);
            super::order_metrics::count(app, "OrdersPaid", provider, &order.product_id);
            Ok(Applied::Settled { late: false })
        }
        SettleOutcome::TxnAlreadyRecorded { order_id } if order_id == order.order_id => {
            Ok(Applied::Duplicate)
        }
        SettleOutcome::TxnAlreadyRecorded { .. } => Err(Rejected::TransactionReused.into()),
        SettleOutcome::OrderChanged(existing)
            if existing.provider_txn_id.as_deref() == Some(sale.provider_txn_id.as_str()) =>
        {
            Ok(Applied::Duplicate)
        }
        SettleOutcome::OrderChanged(_) | SettleOutcome::UnknownOrder => {
            Err(Rejected::TransactionReused.into())
        }
    }
}

async fn settle(
    app: &App,
    mut order: Order,
    txn: &str,
    amount: Money,
    reported_paid_at: Option<i64>,
    now: i64,
) -> Result<Applied, ApplyError> {
    if amount != order.amount {
        tracing::warn!(order_id = %order.order_id, expected = %order.amount, got = %amount, "payment amount mismatch");
        return Err(Rejected::AmountMismatch {
            expected: order.amount,
            got: amount,
        }
        .into());
    }
    // Access starts when the provider says the customer paid, but never before the order
    // existed or after we learned of it.
    let paid_at = reported_paid_at
        .unwrap_or(now)
        .clamp(order.created_at, now.max(order.created_at));
    for _ in 0..=RACE_RETRIES {
        match order.state {
            OrderState::Paid | OrderState::Refunded => {
                return if order.provider_txn_id.as_deref() == Some(txn) {
                    Ok(Applied::Duplicate)
                } else {
                    tracing::error!(order_id = %order.order_id, "order paid twice: the second payment needs a refund");
                    Err(Rejected::AlreadyPaidByOtherTransaction.into())
                };
            }
            OrderState::Pending | OrderState::Expired | OrderState::Cancelled => {}
        }
        let st = Settlement {
            order_id: order.order_id.clone(),
            user_id: order.user_id.clone(),
            expected_state: order.state,
            amount,
            provider: order.provider.clone(),
            provider_txn_id: txn.to_owned(),
            paid_at,
            product_id: order.product_id.clone(),
            grants: order.grants_at(paid_at),
            credits: order.credits,
            recorded_at: now,
            stream_id: order.stream_id.clone(),
        };
        let settled = crate::metrics::timed(
            "SettleMs",
            &[("Provider", &order.provider)],
            app.store.settle(&st),
        )
        .await?;
        match settled {
            SettleOutcome::Settled => {
                let late = order.state != OrderState::Pending;
                tracing::info!(order_id = %order.order_id, provider = %order.provider, late, "order paid");
                super::order_metrics::count(app, "OrdersPaid", &order.provider, &order.product_id);
                if late {
                    crate::metrics::count("LatePayments", 1, &[("Provider", &order.provider)]);
                }
                return Ok(Applied::Settled { late });
            }
            SettleOutcome::TxnAlreadyRecorded { order_id } if order_id == order.order_id => {
                return Ok(Applied::Duplicate)
            }
            SettleOutcome::TxnAlreadyRecorded { .. } => {
                return Err(Rejected::TransactionReused.into())
            }
            SettleOutcome::UnknownOrder => return Err(Rejected::UnknownOrder.into()),
            SettleOutcome::OrderChanged(current) => order = *current,
        }
    }
    Err(StoreError::Unavailable("order kept changing during settle".into()).into())
}

//! The orders that store purchases pay. A purchase settles its order through the ordinary
//! settle (so it is paid exactly once, whatever the store sends twice); a purchase made
//! without a pre-order gets an order created for it, bound to its buyer, under an id derived
//! from the purchase so every retry finds the same one.

use super::payments::{self, Applied, ApplyError, Rejected};
use super::store_products::store_only_offer;
use super::ServiceError;
use crate::app::App;
use crate::domain::catalog::{Plan, Product};
use crate::domain::{Order, OrderId, OrderQuota};
use crate::providers::ProviderEvent;
use crate::store::CreateOutcome;

/// Settles `order` as paid by the store transaction `txn` (at `paid_at`, unix seconds).
pub(super) async fn settle_order(
    app: &App,
    order: &Order,
    txn: &str,
    paid_at: i64,
) -> Result<Applied, ServiceError> {
    let event = ProviderEvent::Paid {
        order_id: order.order_id.clone(),
        provider_txn_id: txn.to_owned(),
        // Stores charge in the buyer's currency; the order keeps the catalog's price.
        amount: order.amount,
        paid_at: Some(paid_at),
    };
    map_apply(payments::apply(app, &order.provider, event).await)
}

/// A settle or refund's outcome as the store use cases answer it: a refused event is a
/// conflict (or an unknown order), never a retry.
pub(super) fn map_apply(r: Result<Applied, ApplyError>) -> Result<Applied, ServiceError> {
    match r {
        Ok(a) => Ok(a),
        Err(ApplyError::Store(e)) => Err(e.into()),
        Err(ApplyError::Rejected(Rejected::UnknownOrder)) => {
            Err(ServiceError::NotFound("order not found".into()))
        }
        Err(ApplyError::Rejected(r)) => Err(ServiceError::Conflict(r.to_string())),
    }
}

/// Creates the pending order `id` for `user` buying `product` (and `plan`) through
/// `provider`, or finds the one a concurrent duplicate created. An order of that id that
/// belongs to someone else is a conflict.
///
/// The order counts in the user's window of new orders like any other, but is never
/// refused for it: it exists only because the store already took the money (a verified
/// purchase), so each one stands for a real payment, and refusing it would only hold back
/// what was paid.
pub(super) async fn create_bound_order(
    app: &App,
    id: OrderId,
    user: &str,
    product: &Product,
    plan: Option<&Plan>,
    provider: &str,
) -> Result<Order, ServiceError> {
    let now = app.clock.now();
    let catalog = app.catalog.current();
    let offer = match catalog.offer(&product.id, plan.map(|p| p.id.as_str()), i64::MIN) {
        Ok(o) => o,
        Err(crate::domain::OfferError::StoreOnly(_)) => store_only_offer(&catalog, &product.id)?,
        Err(e) => return Err(e.into()),
    };
    let order = Order::pending(
        id.clone(),
        user,
        &offer,
        provider,
        None,
        now,
        now + app.config.order_ttl_seconds,
    );
    let quota = OrderQuota::counted_only(app.config.order_ttl_seconds);
    match app.store.create_order(&order, None, &quota, now).await {
        Ok(CreateOutcome::Created | CreateOutcome::KeyExists(_)) => {}
        Ok(CreateOutcome::QuotaReached { until }) => {
            return Err(super::orders::too_many_orders(app, now, until))
        }
        // A purchase the store made is recorded whatever else is in progress: this create
        // claims nothing, so nothing refuses it.
        Ok(CreateOutcome::Claimed(c)) => {
            return Err(ServiceError::Unavailable(format!(
                "unexpected lifetime claim of order {}",
                c.order_id
            )))
        }
        // A concurrent duplicate created it first: use theirs.
        Err(e) => tracing::debug!(error = %e, "bound order already created"),
    }
    match app.store.get_order(&id).await? {
        Some(o) if o.user_id == user => Ok(o),
        Some(_) => Err(ServiceError::Conflict(
            "this purchase belongs to another account".into(),
        )),
        None => Err(ServiceError::Unavailable(
            "order could not be created".into(),
        )),
    }
}

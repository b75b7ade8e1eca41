//! Orders paid with coins (`POST /orders` with `provider: "coins"`): a product or plan with
//! a `coin_price` is bought from the wallet in one transaction that writes the order
//! already PAID, its grants, the debit (conditioned on the balance covering the price) and
//! its ledger entry, and the Idempotency-Key when given. There is no pending order, no
//! provider and nothing for the sweeper: either everything is written or nothing is.
//! Not counted in the user's window of new orders: that window bounds orders left pending.
//!
//! An operator refunds such an order like any other (`POST /admin/orders/{id}/refunds`):
//! [`CoinRefunds`] is its refund issuer, which confirms at once, and the refund that
//! completes the order gives its coins back in the refund's own transaction. Coin orders are
//! refunded whole: a partial request fails (`PARTIAL_NOT_SUPPORTED`).

use super::orders::{replay, request_hash, CreateOrder, Created};
use super::ServiceError;
use crate::app::App;
use crate::crypto::random_bytes;
use crate::domain::ledger::{LedgerEntry, LedgerSource};
use crate::domain::{Currency, Money, Order, OrderId, OrderState};
use crate::store::{CoinPayment, IdempotencyRecord, IDEMPOTENCY_TTL};

/// The `provider` of an order paid with coins.
pub const PROVIDER: &str = "coins";

pub async fn create(
    app: &App,
    user_id: &str,
    req: CreateOrder,
    idempotency_key: Option<&str>,
) -> Result<Created, ServiceError> {
    if req.channel.is_some() || req.openid.is_some() {
        return Err(ServiceError::BadRequest(
            "an order paid with coins takes no channel or openid".into(),
        ));
    }
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let catalog = app.catalog.current();
    let offer = catalog.offer(&req.product_id, req.plan_id.as_deref(), now)?;
    let stream_id =
        super::stream_attribution::check(&catalog, req.stream_id.as_deref(), &req.product_id)?;
    let Some(price) = offer.coin_price() else {
        return Err(ServiceError::Unprocessable(format!(
            "product {:?} cannot be paid with coins (it has no coin_price)",
            req.product_id
        )));
    };
    let hash = request_hash(&req);
    if let Err(owned) = super::lifetime::refuse_if_owned(app, user_id, offer.product).await {
        // A retry of the purchase that made it owned is answered with that order.
        if let Some(k) = idempotency_key {
            if let Some(existing) = app.store.get_idempotency(user_id, k, now).await? {
                return replay(app, existing, &hash).await;
            }
        }
        return Err(owned);
    }
    let order_id = OrderId::from_parts(now_ms.max(0) as u64, random_bytes());
    let mut order = Order::pending(order_id.clone(), user_id, &offer, PROVIDER, None, now, now);
    order.stream_id = stream_id;
    order.amount = Money {
        amount: price,
        currency: Currency::COINS,
    };
    order.state = OrderState::Paid;
    order.paid_at = Some(now);
    // The order's own id names the payment: there is no provider transaction.
    order.provider_txn_id = Some(order_id.to_string());
    let entry = LedgerEntry {
        id: OrderId::from_parts(now_ms.max(0) as u64, random_bytes()).to_string(),
        at_ms: now_ms,
        amount: -price,
        source: LedgerSource::Spend,
        reason: format!("order: {}", offer.product.id),
        reference: Some(order_id.to_string()),
    };
    let idem = idempotency_key.map(|key| IdempotencyRecord {
        user_id: user_id.to_owned(),
        key: key.to_owned(),
        request_hash: hash.clone(),
        order_id: order_id.clone(),
        expires_at: now + IDEMPOTENCY_TTL,
    });
    match app
        .store
        .pay_with_coins(&order, idem.as_ref(), &entry, now)
        .await?
    {
        CoinPayment::Paid => {
            tracing::info!(order_id = %order.order_id, product = %order.product_id, coins = price, "order paid with coins");
            super::order_metrics::count(app, "OrdersCreated", PROVIDER, &order.product_id);
            super::order_metrics::count(app, "OrdersPaid", PROVIDER, &order.product_id);
            Ok(Created::New(order))
        }
        CoinPayment::KeyExists(existing) => replay(app, existing, &hash).await,
        CoinPayment::Insufficient { balance } => {
            Err(ServiceError::InsufficientCoins { balance, price })
        }
        CoinPayment::Claimed(c) => Err(super::lifetime::in_progress(&c)),
    }
}

/// The refund issuer of orders paid with coins: nothing to ask anyone, the store's refund
/// transaction gives the coins back.
pub struct CoinRefunds;

#[async_trait::async_trait]
impl crate::providers::RefundIssuer for CoinRefunds {
    async fn refund(
        &self,
        order: &Order,
        req: &crate::domain::refund_request::RefundRequest,
    ) -> Result<crate::providers::RefundAnswer, crate::providers::ProviderError> {
        Ok(answer(order, req))
    }

    async fn query_refund(
        &self,
        order: &Order,
        req: &crate::domain::refund_request::RefundRequest,
    ) -> Result<crate::providers::RefundAnswer, crate::providers::ProviderError> {
        Ok(answer(order, req))
    }
}

fn answer(
    order: &Order,
    req: &crate::domain::refund_request::RefundRequest,
) -> crate::providers::RefundAnswer {
    use crate::providers::RefundAnswer;
    if req.amount != order.amount.amount {
        return RefundAnswer::Failed {
            code: "PARTIAL_NOT_SUPPORTED".into(),
        };
    }
    RefundAnswer::Confirmed {
        refunded: order.amount,
        refund: crate::domain::refund::RefundRef::SoFar(Some(req.out_refund_no.clone())),
        provider_refund_id: None,
    }
}

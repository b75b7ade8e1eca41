//! App Store purchases and notifications: verified signed data becomes an order settled
//! exactly once (one-time products) or one purchase record per original transaction
//! (subscriptions) whose grants follow the newest signed state Apple sent.
//!
//! Exactly once: a one-time purchase settles its order through the `TXN#apple#<id>` claim of
//! the ordinary settle transaction; a subscription's record is written only when the signed
//! date is newer than the stored one (`last_event_at`), so duplicates and late messages
//! change nothing — a late DID_RENEW never undoes a REFUND signed after it.
//!
//! A REFUND_REVERSED of a one-time purchase returns its order REFUNDED → PAID through
//! [`super::refunds::reverse`]; a revoked transaction signed before that reversal (the app
//! re-sending an old one) no longer refunds it.

use super::payments::{self, Applied, ApplyError, Rejected};
use super::purchase_changes;
use super::store_orders::{create_bound_order, map_apply, settle_order};
use super::store_products::by_store_id;
use super::ServiceError;
use crate::app::App;
use crate::domain::catalog::{Plan, Product, ProductKind};
use crate::domain::event::EventType;
use crate::domain::refund::RefundRef;
use crate::domain::subscription;
use crate::domain::{Grant, Order, OrderId, OrderState, PurchaseState, PurchaseStatus, Term};
use crate::providers::apple::wire::{self, AppleRejection, RenewalInfo, Transaction};
use crate::providers::apple::{self, Apple};
use crate::providers::ProviderEvent;
use crate::store::{PurchaseOutcome, StorePurchase};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What applying a verified transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurchaseResult {
    pub status: PurchaseStatus,
    pub product_id: String,
    pub source_id: Option<String>,
    pub order_id: Option<String>,
    pub expires_at: Option<i64>,
}

fn apple_verifier(app: &App) -> Result<&Apple, ServiceError> {
    app.apple
        .as_deref()
        .ok_or_else(|| ServiceError::ProviderNotEnabled(apple::NAME.into()))
}

/// Runs `check` with the App Store verifier on the app's CPU pool: the JWS signatures and
/// certificate chains are the expensive part of a request anyone can send.
async fn verified<T, F>(app: &App, check: F) -> Result<T, ServiceError>
where
    F: FnOnce(&Apple) -> Result<T, AppleRejection> + Send + 'static,
    T: Send + 'static,
{
    checked(app, check).await?.map_err(|e| {
        tracing::warn!(reason = %e, "Apple signed data rejected");
        rejected(e)
    })
}

/// [`verified`], with Apple's refusal apart from the errors that are not about the data
/// (Apple not enabled, the CPU pool busy).
async fn checked<T, F>(app: &App, check: F) -> Result<Result<T, AppleRejection>, ServiceError>
where
    F: FnOnce(&Apple) -> Result<T, AppleRejection> + Send + 'static,
    T: Send + 'static,
{
    let apple = app
        .apple
        .clone()
        .ok_or_else(|| ServiceError::ProviderNotEnabled(apple::NAME.into()))?;
    app.cpu
        .run(move || check(&apple))
        .await
        .map_err(|busy| ServiceError::Busy(busy.to_string()))
}

/// The answer to signed data Apple's rules refuse (logged by whoever refused it).
fn rejected(e: AppleRejection) -> ServiceError {
    ServiceError::BadRequest(format!("signed data rejected: {e}"))
}

/// `POST /purchases/apple`: the app hands over a StoreKit 2 signed transaction.
pub async fn apple_purchase(
    app: &App,
    caller: &str,
    signed_transaction: &str,
    order_id: Option<&str>,
) -> Result<PurchaseResult, ServiceError> {
    let jws = signed_transaction.to_owned();
    let t = verified(app, move |apple| apple.verify_transaction(&jws)).await?;
    let order_hint = match order_id {
        None => None,
        Some(id) => Some(
            OrderId::parse(id)
                .map_err(|_| ServiceError::NotFound(format!("order {id:?} not found")))?,
        ),
    };
    let ctx = Context {
        caller: Some(caller),
        order_hint,
        signed_at_ms: t.signed_date,
        renewal: None,
        auto_renew_off: false,
    };
    apply_transaction(app, &t, &ctx).await
}

struct Context<'a> {
    caller: Option<&'a str>,
    order_hint: Option<OrderId>,
    /// The ordering guard: the signing time of the message that carried the transaction.
    signed_at_ms: i64,
    renewal: Option<&'a RenewalInfo>,
    /// The message says the buyer turned auto-renew off (a cancellation, for the figures).
    auto_renew_off: bool,
}

async fn apply_transaction(
    app: &App,
    t: &Transaction,
    ctx: &Context<'_>,
) -> Result<PurchaseResult, ServiceError> {
    let catalog = app.catalog.current();
    let (product, plan) = by_store_id(&catalog, apple::NAME, &t.product_id).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "App Store product {:?} is not in the catalog",
            t.product_id
        ))
    })?;
    let order = find_order(app, t, ctx, product, plan).await?;
    if product.kind == ProductKind::Subscription {
        apply_subscription(app, t, ctx, product, order).await
    } else {
        apply_one_time(app, t, ctx, product, plan, order).await
    }
}

/// The order the transaction pays: named by its `appAccountToken`, else by the caller's
/// `order_id`. It must be an Apple order for the same product and, when a caller is known,
/// theirs.
async fn find_order(
    app: &App,
    t: &Transaction,
    ctx: &Context<'_>,
    product: &Product,
    plan: Option<&Plan>,
) -> Result<Option<Order>, ServiceError> {
    let id = match t
        .app_account_token
        .as_deref()
        .and_then(wire::order_of_token)
    {
        Some(id) => Some(id),
        None => ctx.order_hint.clone(),
    };
    let Some(id) = id else { return Ok(None) };
    let order = match app.store.get_order(&id).await? {
        Some(o) if ctx.caller.is_none_or(|c| c == o.user_id) => o,
        Some(_) => {
            return Err(ServiceError::Conflict(
                "this purchase was made for another account's order".into(),
            ))
        }
        // A token that names no order (e.g. set by another backend): bind by caller.
        None if t.app_account_token.is_some() && ctx.order_hint.is_none() => return Ok(None),
        None => return Err(ServiceError::NotFound(format!("order {id} not found"))),
    };
    if order.provider != apple::NAME
        || order.product_id != product.id
        || order.plan_id.as_deref() != plan.map(|p| p.id.as_str())
    {
        return Err(ServiceError::Conflict(format!(
            "order {id} is not an App Store order for {}",
            t.product_id
        )));
    }
    Ok(Some(order))
}

async fn apply_subscription(
    app: &App,
    t: &Transaction,
    ctx: &Context<'_>,
    product: &Product,
    order: Option<Order>,
) -> Result<PurchaseResult, ServiceError> {
    let now = app.clock.now();
    let otid = &t.original_transaction_id;
    let existing = app.store.get_purchase(apple::NAME, otid).await?;
    let user = match (&order, &existing, ctx.caller) {
        (Some(o), _, _) => o.user_id.clone(),
        (None, Some(p), _) => p.user_id.clone(),
        (None, None, Some(c)) => c.to_owned(),
        (None, None, None) => {
            tracing::warn!(original_transaction_id = %otid, "App Store subscription with no known owner yet");
            purchase_changes::tell(
                app,
                EventType::PurchaseUnattributed,
                apple::NAME,
                &format!("apple:{otid}"),
                "",
                &product.id,
                &t.product_id,
                Some(&t.transaction_id),
                None,
                "no account is known for this subscription yet",
            )
            .await?;
            return Ok(unattributed(product));
        }
    };
    let source_id = format!("apple:{otid}");
    let expires = t.expires_date.unwrap_or(t.purchase_date).div_euclid(1000);
    // Grace period: Apple keeps access while it retries billing, until this date.
    let grace_until = ctx
        .renewal
        .filter(|r| r.is_in_billing_retry_period == Some(true))
        .and_then(|r| r.grace_period_expires_date)
        .map(|ms| ms.div_euclid(1000));
    let end = grace_until.map_or(expires, |g| g.max(expires));
    let revoked_at = t.revocation_date.map(|ms| ms.div_euclid(1000));
    let state = match (revoked_at, grace_until) {
        (Some(_), _) => PurchaseState::Revoked,
        _ if end <= now => PurchaseState::Expired,
        (None, Some(g)) if g > expires => PurchaseState::Grace,
        _ => PurchaseState::Active,
    };
    let paid_at = t
        .original_purchase_date
        .unwrap_or(t.purchase_date)
        .div_euclid(1000);
    let build = |existing: Option<&StorePurchase>| {
        let mut grants: Vec<Grant> = product
            .grants
            .iter()
            .map(|scope| Grant {
                scope: scope.clone(),
                product_id: product.id.clone(),
                source_id: source_id.clone(),
                paid_at,
                term: Term::Until(end),
                revoked_at,
                revoked_by: None,
                revoke_reason: None,
                max_views: None,
                provider: None,
            })
            .collect();
        // A crossgrade to a product with other scopes: the scopes it no longer has are
        // revoked in the same write.
        if let Some(old) = existing {
            for g in &old.grants {
                if !grants.iter().any(|n| n.scope == g.scope) {
                    let mut dropped = g.clone();
                    dropped.revoked_at.get_or_insert(now);
                    grants.push(dropped);
                }
            }
        }
        StorePurchase {
            store: apple::NAME.into(),
            purchase_id: otid.clone(),
            user_id: user.clone(),
            product_id: product.id.clone(),
            state,
            expires_at: Some(end),
            last_event_at: ctx.signed_at_ms,
            last_txn_id: Some(t.transaction_id.clone()),
            order_id: order
                .as_ref()
                .map(|o| o.order_id.to_string())
                .or_else(|| existing.and_then(|p| p.order_id.clone())),
            grants,
        }
    };
    let reported = purchase_changes::Reported {
        price: t
            .price
            .zip(t.currency.as_deref())
            .and_then(|(milli, cur)| subscription::from_milliunits(milli, cur)),
        auto_renew_off: ctx.auto_renew_off,
    };
    let (outcome, purchase) =
        purchase_changes::write(app, existing, &source_id, &reported, build).await?;
    let status = match outcome {
        PurchaseOutcome::Applied => {
            tracing::info!(original_transaction_id = %otid, state = state.as_str(), expires_at = end, "App Store subscription updated");
            match state {
                PurchaseState::Active => PurchaseStatus::Granted,
                other => PurchaseStatus::Subscription(other),
            }
        }
        PurchaseOutcome::Stale(_) => PurchaseStatus::Duplicate,
        PurchaseOutcome::OwnedByOther(owner) => {
            tracing::warn!(original_transaction_id = %otid, "App Store subscription claimed by a second account");
            purchase_changes::tell(
                app,
                EventType::PurchaseConflict,
                apple::NAME,
                &source_id,
                &purchase.user_id,
                &product.id,
                &t.product_id,
                Some(&t.transaction_id),
                Some(&owner.user_id),
                "this subscription belongs to another account",
            )
            .await?;
            return Err(ServiceError::Conflict(
                "this subscription belongs to another account".into(),
            ));
        }
    };
    // The pre-order, if any, is settled by the subscription's first transaction id.
    if let Some(o) = &order {
        if OrderState::PAYABLE.contains(&o.state) && revoked_at.is_none() {
            settle_order(app, o, otid, paid_at).await?;
        }
    }
    Ok(PurchaseResult {
        status,
        product_id: product.id.clone(),
        source_id: Some(source_id),
        order_id: purchase.order_id,
        expires_at: Some(end),
    })
}

/// The order a one-time purchase made without a pre-order settles: its id is derived from
/// the transaction id, so every retry and duplicate finds the same order.
fn derived_order_id(t: &Transaction) -> OrderId {
    let digest = Sha256::digest(format!("apple:{}", t.transaction_id).as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    OrderId::from_parts(t.purchase_date.max(0) as u64, random)
}

async fn apply_one_time(
    app: &App,
    t: &Transaction,
    ctx: &Context<'_>,
    product: &Product,
    plan: Option<&Plan>,
    order: Option<Order>,
) -> Result<PurchaseResult, ServiceError> {
    if t.quantity.unwrap_or(1) != 1 {
        // The order grants one unit; more would need a per-unit catalog rule.
        return Err(ServiceError::BadRequest(
            "App Store purchases with quantity above 1 are not supported".into(),
        ));
    }
    let order = match order {
        Some(o) => o,
        None => {
            let id = derived_order_id(t);
            match app.store.get_order(&id).await? {
                Some(o) if ctx.caller.is_none_or(|c| c == o.user_id) => o,
                Some(_) => {
                    return Err(ServiceError::Conflict(
                        "this purchase belongs to another account".into(),
                    ))
                }
                None => match ctx.caller {
                    Some(caller) => {
                        create_bound_order(app, id, caller, product, plan, apple::NAME).await?
                    }
                    None => {
                        tracing::warn!(transaction_id = %t.transaction_id, "App Store purchase with no known owner yet");
                        purchase_changes::tell(
                            app,
                            EventType::PurchaseUnattributed,
                            apple::NAME,
                            &format!("apple:{}", t.transaction_id),
                            "",
                            &product.id,
                            &t.product_id,
                            Some(&t.transaction_id),
                            None,
                            "no account is known for this purchase yet",
                        )
                        .await?;
                        return Ok(unattributed(product));
                    }
                },
            }
        }
    };
    let result = |status| PurchaseResult {
        status,
        product_id: product.id.clone(),
        source_id: Some(order.order_id.to_string()),
        order_id: Some(order.order_id.to_string()),
        expires_at: None,
    };
    if t.revocation_date.is_some() {
        if order
            .refund_reversed_at
            .is_some_and(|reversed| t.signed_date.div_euclid(1000) < reversed)
        {
            tracing::warn!(order_id = %order.order_id, transaction_id = %t.transaction_id, "revoked transaction signed before its refund was reversed: ignored");
            return Ok(result(PurchaseStatus::Duplicate));
        }
        let event = ProviderEvent::Refunded {
            order_id: order.order_id.clone(),
            provider_txn_id: t.transaction_id.clone(),
            // A revoked transaction is taken back whole.
            refunded: order.amount,
            order_total: order.amount,
            refund: RefundRef::SoFar(None),
        };
        return match payments::apply(app, apple::NAME, event).await {
            Ok(_) => Ok(result(PurchaseStatus::Refunded)),
            // Never settled here (or already refunded): nothing to take back.
            Err(ApplyError::Rejected(Rejected::NotRefundable(_))) => {
                Ok(result(PurchaseStatus::Refunded))
            }
            Err(e) => map_apply(Err(e)).map(|_| result(PurchaseStatus::Refunded)),
        };
    }
    let paid_at = t.purchase_date.div_euclid(1000);
    match settle_order(app, &order, &t.transaction_id, paid_at).await? {
        Applied::Duplicate => {
            // A refunded order stays refunded: a replayed purchase never re-grants it.
            let status = match app.store.get_order(&order.order_id).await? {
                Some(o) if o.state == OrderState::Refunded => PurchaseStatus::Refunded,
                _ => PurchaseStatus::Duplicate,
            };
            Ok(result(status))
        }
        _ => Ok(result(PurchaseStatus::Granted)),
    }
}

fn unattributed(product: &Product) -> PurchaseResult {
    PurchaseResult {
        status: PurchaseStatus::Unattributed,
        product_id: product.id.clone(),
        source_id: None,
        order_id: None,
        expires_at: None,
    }
}

/// What a notification did (for logs and tests; Apple only sees 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationResult {
    Applied(PurchaseResult),
    /// Seen before (same notificationUUID): nothing done.
    Duplicate,
    /// Genuine, recorded, nothing to change (TEST, CONSUMPTION_REQUEST, unknown types...).
    Recorded,
}

/// Notification types whose signed transaction is applied as Apple's current state.
const APPLIES_TRANSACTION: &[&str] = &[
    "SUBSCRIBED",
    "DID_RENEW",
    "DID_CHANGE_RENEWAL_STATUS",
    "DID_CHANGE_RENEWAL_PREF",
    "DID_FAIL_TO_RENEW",
    "GRACE_PERIOD_EXPIRED",
    "EXPIRED",
    "REFUND",
    "REFUND_REVERSED",
    "REVOKE",
    "ONE_TIME_CHARGE",
    "OFFER_REDEEMED",
    "RENEWAL_EXTENDED",
    "PRICE_INCREASE",
    "REFUND_DECLINED",
];

/// `POST /notifications/apple`: verify, dedupe by notificationUUID, apply if newer.
pub async fn apple_notification(
    app: &App,
    signed_payload: &str,
) -> Result<NotificationResult, ServiceError> {
    let jws = signed_payload.to_owned();
    // A refused notification is counted like a refused payment callback: Apple's requests
    // that did not verify are what the figures of refusals are for.
    let v = match checked(app, move |apple| apple.verify_notification(&jws)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            crate::service::rejections::refused(app, apple::NAME, e.code(), &e).await;
            return Err(rejected(e));
        }
        Err(e @ ServiceError::Busy(_)) => {
            crate::service::rejections::refused(app, apple::NAME, "busy", &e).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let n = &v.notification;
    let now = app.clock.now();
    if app
        .store
        .note_seen(apple::NAME, &n.notification_uuid, now)
        .await?
    {
        return Ok(NotificationResult::Duplicate);
    }
    let kind = n.notification_type.as_str();
    let result = match (&v.transaction, APPLIES_TRANSACTION.contains(&kind)) {
        (Some(t), true) => {
            let ctx = Context {
                caller: None,
                order_hint: None,
                signed_at_ms: n.signed_date,
                renewal: v.renewal.as_ref(),
                auto_renew_off: kind == "DID_CHANGE_RENEWAL_STATUS"
                    && n.subtype.as_deref() == Some("AUTO_RENEW_DISABLED"),
            };
            let applied = if kind == "REFUND_REVERSED" && t.expires_date.is_none() {
                reverse_one_time(app, t, &ctx, &n.notification_uuid).await
            } else {
                apply_transaction(app, t, &ctx).await
            };
            match applied {
                Ok(r) => NotificationResult::Applied(r),
                // Genuine but not applicable here (unknown product, another account's
                // order...): recorded and acknowledged, never retried forever.
                Err(
                    e @ (ServiceError::BadRequest(_)
                    | ServiceError::Conflict(_)
                    | ServiceError::NotFound(_)),
                ) => {
                    tracing::warn!(notification_type = kind, error = %e, "App Store notification not applied");
                    NotificationResult::Recorded
                }
                Err(e) => return Err(e),
            }
        }
        _ => {
            tracing::info!(
                notification_type = kind,
                subtype = n.subtype.as_deref().unwrap_or(""),
                "App Store notification recorded"
            );
            NotificationResult::Recorded
        }
    };
    app.store
        .record_note(apple::NAME, &n.notification_uuid, kind, now)
        .await?;
    Ok(result)
}

/// REFUND_REVERSED of a one-time purchase: Apple took its refund back, so the order that
/// refund made REFUNDED is PAID again, with its grants and coins (one transaction,
/// conditioned on that refund; a duplicate or concurrent copy changes nothing).
async fn reverse_one_time(
    app: &App,
    t: &Transaction,
    ctx: &Context<'_>,
    notification_uuid: &str,
) -> Result<PurchaseResult, ServiceError> {
    let catalog = app.catalog.current();
    let (product, plan) = by_store_id(&catalog, apple::NAME, &t.product_id).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "App Store product {:?} is not in the catalog",
            t.product_id
        ))
    })?;
    let order = match find_order(app, t, ctx, product, plan).await? {
        Some(o) => o,
        None => app
            .store
            .get_order(&derived_order_id(t))
            .await?
            .filter(|o| o.provider == apple::NAME)
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no order was paid by App Store transaction {}",
                    t.transaction_id
                ))
            })?,
    };
    let reason = format!(
        "App Store REFUND_REVERSED of transaction {} (notification {notification_uuid})",
        t.transaction_id
    );
    let applied = map_apply(
        super::refunds::reverse(
            app,
            order.clone(),
            &t.transaction_id,
            ctx.signed_at_ms.div_euclid(1000),
            &reason,
        )
        .await,
    )?;
    Ok(PurchaseResult {
        status: if applied == Applied::RefundReversed {
            PurchaseStatus::Restored
        } else {
            PurchaseStatus::Duplicate
        },
        product_id: product.id.clone(),
        source_id: Some(order.order_id.to_string()),
        order_id: Some(order.order_id.to_string()),
        expires_at: None,
    })
}

/// Support recovery: the customer's App Store order id (from their receipt e-mail) is looked
/// up with the App Store Server API and each signed transaction goes through the ordinary
/// verified path, bound to `user` unless it names an order of its own.
pub async fn apple_recover(
    app: &App,
    user: &str,
    apple_order_id: &str,
) -> Result<Vec<PurchaseResult>, ServiceError> {
    let apple = apple_verifier(app)?;
    let signed = apple
        .lookup_order(apple_order_id)
        .await
        .map_err(ServiceError::Provider)?;
    if signed.is_empty() {
        return Err(ServiceError::NotFound(format!(
            "App Store order {apple_order_id:?} is not valid for this app"
        )));
    }
    let mut results = Vec::with_capacity(signed.len());
    for jws in &signed {
        let t = apple.verify_transaction(jws).map_err(rejected)?;
        let ctx = Context {
            caller: Some(user),
            order_hint: None,
            signed_at_ms: t.signed_date,
            renewal: None,
            auto_renew_off: false,
        };
        results.push(apply_transaction(app, &t, &ctx).await?);
    }
    Ok(results)
}

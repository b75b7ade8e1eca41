//! Google Play purchases. The client's token and every RTDN only say "look at this
//! purchase": a queued job fetches its state from the Play Developer API and applies that,
//! never what a client or a notification claims.
//!
//! A subscription is one `PURCHASE#google#<token>` record (its grants `Until(expiry)`,
//! rewritten only by a newer fetch); a one-time product settles an order exactly once
//! through `TXN#google#<token>`. Acknowledging (and consuming) is its own job, retried until
//! Google confirms, because Google refunds purchases left unacknowledged for 3 days. Every
//! purchase the store was paid for is acknowledged, whatever state it is first seen in (a
//! subscription first fetched cancelled, in grace or already on hold included).
//!
//! A purchase still pending at Google (a slow payment method) is remembered as a `pending`
//! purchase record: who handed the token over and for which order, so the notification that
//! it completed (which carries only the token) settles that order.
//!
//! A burst of identical `POST /purchases/google` queues one verification: the first claims a
//! marker for [`VERIFY_DEDUPE_SECONDS`], the repeats within it answer the same and queue
//! nothing.

use super::payments::{self, ApplyError, Rejected};
use super::purchase_changes;
use super::store_orders::{create_bound_order, map_apply, settle_order};
use super::store_products::by_store_id;
use super::ServiceError;
use crate::app::App;
use crate::domain::catalog::{Plan, Product, ProductKind};
use crate::domain::event::EventType;
use crate::domain::refund::RefundRef;
use crate::domain::subscription;
use crate::domain::time::parse_rfc3339;
use crate::domain::{Grant, Order, OrderId, OrderState, PurchaseState, PurchaseStatus, Term};
use crate::providers::google::wire::{self, ProductPurchase, SubscriptionV2};
use crate::providers::google::{self, Google};
use crate::providers::{ProviderError, ProviderEvent};
use crate::queue::Job;
use crate::store::{PurchaseOutcome, StorePurchase};
use base64::Engine;
use sha2::{Digest, Sha256};

/// How a background step ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (network, 5xx, store).
    Retry(String),
    /// Retrying cannot help; recorded in the logs (and on the order when there is one).
    Permanent(String),
}

impl From<ProviderError> for Failure {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unavailable(r) => Failure::Retry(r),
            ProviderError::Refused(r) => Failure::Permanent(r),
        }
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(s) => Failure::Retry(s.to_string()),
            ServiceError::Unavailable(s) => Failure::Retry(s),
            other => Failure::Permanent(other.to_string()),
        }
    }
}

fn client(app: &App) -> Result<&Google, ServiceError> {
    app.google
        .as_deref()
        .ok_or_else(|| ServiceError::ProviderNotEnabled(google::NAME.into()))
}

/// The catalog product (and plan) a Play product id sells.
fn by_google_id<'a>(
    catalog: &'a crate::domain::Catalog,
    id: &str,
) -> Option<(&'a Product, Option<&'a Plan>)> {
    by_store_id(catalog, google::NAME, id)
}

async fn queue(app: &App, job: &Job) -> Result<(), ServiceError> {
    let q = app
        .queue
        .as_ref()
        .ok_or_else(|| ServiceError::Unavailable("no job queue is configured".into()))?;
    q.jobs()
        .send(job, 0)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))
}

/// How long identical `POST /purchases/google` requests (same token, product, caller and
/// order) are answered without queueing another verification. The job itself retries until
/// Google answers, so a repeat within the window has nothing to add.
pub const VERIFY_DEDUPE_SECONDS: i64 = 30;

/// The marker of one verification request: a hash, so the token itself is never a key.
fn verify_marker(token: &str, product_id: &str, user: &str, order_id: Option<&str>) -> String {
    let d = Sha256::digest(
        format!("{token}\n{product_id}\n{user}\n{}", order_id.unwrap_or("")).as_bytes(),
    );
    format!("google-verify:{}", hex::encode(d))
}

/// `POST /purchases/google`: checks the request and queues the verification, once per
/// [`VERIFY_DEDUPE_SECONDS`] for identical requests (one conditional write; a repeat is
/// that write failing).
pub async fn submit(
    app: &App,
    user: &str,
    purchase_token: &str,
    product_id: &str,
    order_id: Option<&str>,
) -> Result<(), ServiceError> {
    client(app)?;
    if !wire::valid_token(purchase_token) {
        return Err(ServiceError::BadRequest(
            "purchase_token must be 1-1024 characters of [A-Za-z0-9._-]".into(),
        ));
    }
    if by_google_id(&app.catalog.current(), product_id).is_none() {
        return Err(ServiceError::BadRequest(format!(
            "Play product {product_id:?} is not in the catalog"
        )));
    }
    if let Some(id) = order_id {
        super::orders::get(app, user, id).await?;
    }
    let marker = verify_marker(purchase_token, product_id, user, order_id);
    let now = app.clock.now();
    let until = now + VERIFY_DEDUPE_SECONDS;
    if !app.store.claim_marker(&marker, now, until).await? {
        tracing::info!("Play purchase already queued for verification: not queued again");
        return Ok(());
    }
    let queued = queue(
        app,
        &Job::VerifyGooglePurchase {
            purchase_token: purchase_token.to_owned(),
            product_id: product_id.to_owned(),
            user_id: Some(user.to_owned()),
            order_id: order_id.map(str::to_owned),
        },
    )
    .await;
    if queued.is_err() {
        // Nothing was queued: the client's retry must be able to queue it.
        if let Err(e) = app.store.release_marker(&marker, until).await {
            tracing::warn!(error = %e, "verification marker not released: repeats wait for it to expire");
        }
    }
    queued
}

fn derived_order_id(token: &str) -> OrderId {
    let d = Sha256::digest(format!("google:{token}").as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&d[..10]);
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&d[10..16]);
    OrderId::from_parts(u64::from_be_bytes(ms), random)
}

/// The verification job.
pub async fn verify(
    app: &App,
    token: &str,
    product_id: &str,
    user: Option<&str>,
    order_id: Option<&str>,
) -> Result<PurchaseStatus, Failure> {
    let g = client(app)?;
    let catalog = app.catalog.current();
    let Some((product, plan)) = by_google_id(&catalog, product_id) else {
        return Err(Failure::Permanent(format!(
            "unknown Play product {product_id}"
        )));
    };
    let recorded = app
        .store
        .get_purchase(google::NAME, token)
        .await
        .map_err(ServiceError::from)?;
    let order = match order_id.map(OrderId::parse) {
        Some(Ok(id)) => app.store.get_order(&id).await.map_err(ServiceError::from)?,
        _ => order_of(app, token, recorded.as_ref()).await?,
    };
    // A notification names no account: the one that handed the token over (remembered
    // while the purchase was pending, or on its record) is the buyer.
    let user: Option<String> = user
        .map(str::to_owned)
        .or_else(|| recorded.as_ref().map(|p| p.user_id.clone()));
    let user = user.as_deref();
    if let Some(o) = &order {
        if o.provider != google::NAME
            || o.product_id != product.id
            || user.is_some_and(|u| u != o.user_id)
        {
            return Err(Failure::Permanent(
                "order does not match the purchase".into(),
            ));
        }
    }
    if product.kind == ProductKind::Subscription {
        let sub = g.get_subscription(token).await?;
        apply_subscription(
            app, g, token, product_id, product, user, order, recorded, &sub,
        )
        .await
    } else {
        let p = g.get_product(product_id, token).await?;
        apply_product(app, g, token, product_id, product, plan, user, order, &p).await
    }
}

/// Records why a purchase was refused (on the order, when there is one) and ends the job.
async fn conflict(app: &App, order: Option<&Order>, reason: &str) -> Failure {
    tracing::warn!(reason, "Play purchase refused");
    if let Some(o) = order {
        if let Err(e) = app.store.record_error(&o.order_id, reason).await {
            return Failure::Retry(e.to_string());
        }
    }
    Failure::Permanent(reason.to_owned())
}

#[allow(clippy::too_many_arguments)]
async fn apply_subscription(
    app: &App,
    g: &Google,
    token: &str,
    product_id: &str,
    product: &Product,
    user: Option<&str>,
    order: Option<Order>,
    existing: Option<StorePurchase>,
    sub: &SubscriptionV2,
) -> Result<PurchaseStatus, Failure> {
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let owner = match (&existing, &order, user) {
        (Some(p), _, _) => p.user_id.clone(),
        (None, Some(o), _) => o.user_id.clone(),
        (None, None, Some(u)) => u.to_owned(),
        (None, None, None) => {
            tracing::warn!("Play subscription with no known owner yet");
            let source_id = format!("google:{}", short(token));
            purchase_changes::tell(
                app,
                EventType::PurchaseUnattributed,
                google::NAME,
                &source_id,
                "",
                &product.id,
                product_id,
                latest_order(sub).as_deref(),
                None,
                "no account is known for this subscription yet",
            )
            .await?;
            return Ok(PurchaseStatus::Unattributed);
        }
    };
    if let Some(claimant) = user.filter(|u| *u != owner) {
        tell_conflict(app, token, product, product_id, sub, claimant, &owner).await?;
        return Err(conflict(app, order.as_ref(), "purchase is bound to another account").await);
    }
    let account = sub
        .external_account_identifiers
        .as_ref()
        .and_then(|e| e.obfuscated_external_account_id.as_deref());
    if account.is_some_and(|a| a != g.account_id(&owner)) {
        return Err(conflict(
            app,
            order.as_ref(),
            "obfuscatedExternalAccountId names another account",
        )
        .await);
    }
    // The token must be for the product the client named (a cheaper subscription's token
    // must not unlock a dearer product).
    if !sub.line_items.iter().any(|l| l.product_id == product_id) {
        return Err(conflict(app, order.as_ref(), "purchase token is for another product").await);
    }
    let expiry = sub
        .line_items
        .iter()
        .filter_map(|l| l.expiry_time.as_deref().and_then(parse_rfc3339))
        .max()
        .unwrap_or(now);
    let (state, end) = match sub.subscription_state.as_str() {
        "SUBSCRIPTION_STATE_ACTIVE" => (PurchaseState::Active, expiry),
        // Cancelled but paid up: access to the end of the period.
        "SUBSCRIPTION_STATE_CANCELED" => (PurchaseState::Canceled, expiry),
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" => (PurchaseState::Grace, expiry),
        "SUBSCRIPTION_STATE_ON_HOLD" => (PurchaseState::OnHold, expiry.min(now)),
        "SUBSCRIPTION_STATE_PAUSED" => (PurchaseState::Paused, expiry.min(now)),
        "SUBSCRIPTION_STATE_EXPIRED" => (PurchaseState::Expired, expiry.min(now)),
        "SUBSCRIPTION_STATE_PENDING" => {
            if existing.is_none() {
                remember_pending(app, token, &owner, product, order.as_ref(), now_ms).await?;
            }
            return Ok(PurchaseStatus::Pending);
        }
        other => {
            return Err(Failure::Permanent(format!(
                "unknown subscription state {other}"
            )))
        }
    };
    let paid_at = sub
        .start_time
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    let source_id = format!("google:{}", short(token));
    let grants: Vec<Grant> = product
        .grants
        .iter()
        .map(|scope| Grant {
            scope: scope.clone(),
            product_id: product.id.clone(),
            source_id: source_id.clone(),
            paid_at,
            term: Term::Until(end),
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        })
        .collect();
    let purchase = StorePurchase {
        store: google::NAME.into(),
        purchase_id: token.to_owned(),
        user_id: owner.clone(),
        product_id: product.id.clone(),
        state,
        expires_at: Some(end),
        last_event_at: now_ms,
        last_txn_id: latest_order(sub),
        order_id: order.as_ref().map(|o| o.order_id.to_string()),
        grants,
    };
    let reported = purchase_changes::Reported {
        price: renewal_price(sub, product_id),
        auto_renew_off: false,
    };
    let (outcome, _) =
        purchase_changes::write(app, existing, &source_id, &reported, |_| purchase.clone())
            .await
            .map_err(Failure::from)?;
    let status = match outcome {
        PurchaseOutcome::Applied => PurchaseStatus::Subscription(state),
        PurchaseOutcome::Stale(_) => PurchaseStatus::Duplicate,
        PurchaseOutcome::OwnedByOther(stored) => {
            tell_conflict(
                app,
                token,
                product,
                product_id,
                sub,
                &owner,
                &stored.user_id,
            )
            .await?;
            return Err(
                conflict(app, order.as_ref(), "purchase is bound to another account").await,
            );
        }
    };
    // An upgrade, downgrade or re-signup replaces the old token: retire it so one payment
    // never entitles twice.
    if let Some(old) = sub.linked_purchase_token.as_deref() {
        retire(app, old, &owner, now_ms).await?;
    }
    if let Some(o) = &order {
        if OrderState::PAYABLE.contains(&o.state)
            && matches!(
                state,
                PurchaseState::Active | PurchaseState::Canceled | PurchaseState::Grace
            )
        {
            settle_order(app, o, token, paid_at).await?;
        }
    }
    // Paid for, so acknowledged whatever its state now: Google refunds a purchase left
    // unacknowledged for 3 days, cancelled, in grace or on hold alike.
    if sub.acknowledgement_state == "ACKNOWLEDGEMENT_STATE_PENDING" {
        queue(
            app,
            &Job::AcknowledgeGooglePurchase {
                purchase_token: token.to_owned(),
                product_id: product_id.to_owned(),
                subscription: true,
                consume: false,
            },
        )
        .await?;
    }
    Ok(status)
}

/// The Play order of the subscription's latest period paid (a renewal has a new one).
fn latest_order(sub: &SubscriptionV2) -> Option<String> {
    sub.line_items
        .iter()
        .find_map(|l| l.latest_successful_order_id.clone())
        .or_else(|| sub.latest_order_id.clone())
}

/// What the line item of `product_id` renews at, as Play reports it.
fn renewal_price(sub: &SubscriptionV2, product_id: &str) -> Option<crate::domain::Money> {
    let price = sub
        .line_items
        .iter()
        .find(|l| l.product_id == product_id)?
        .auto_renewing_plan
        .as_ref()?
        .recurring_price
        .as_ref()?;
    subscription::from_units_nanos(
        price.units.as_deref().unwrap_or("0"),
        price.nanos.unwrap_or(0),
        &price.currency_code,
    )
}

/// `purchase.conflict`: `claimant` handed over a subscription that is `owner`'s.
async fn tell_conflict(
    app: &App,
    token: &str,
    product: &Product,
    product_id: &str,
    sub: &SubscriptionV2,
    claimant: &str,
    owner: &str,
) -> Result<(), Failure> {
    purchase_changes::tell(
        app,
        EventType::PurchaseConflict,
        google::NAME,
        &format!("google:{}", short(token)),
        claimant,
        &product.id,
        product_id,
        latest_order(sub).as_deref(),
        Some(owner),
        "purchase is bound to another account",
    )
    .await
    .map_err(Failure::from)
}

/// A short, stable, key-safe name for a (long) purchase token in grant sort keys.
fn short(token: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(token.as_bytes())[..18])
}

async fn retire(app: &App, old: &str, owner: &str, now_ms: i64) -> Result<(), Failure> {
    let Some(p) = app
        .store
        .get_purchase(google::NAME, old)
        .await
        .map_err(ServiceError::from)?
    else {
        return Ok(());
    };
    if p.user_id != owner {
        tracing::warn!("linkedPurchaseToken belongs to another account: left alone");
        return Ok(());
    }
    if p.state == PurchaseState::Replaced {
        return Ok(());
    }
    end_subscription(app, old, p, PurchaseState::Replaced, now_ms).await
}

/// Ends a stored Play subscription (replaced by a newer token, or voided) with what that
/// changed: one conditional write, decided again if the record moved meanwhile.
async fn end_subscription(
    app: &App,
    token: &str,
    read: StorePurchase,
    state: PurchaseState,
    now_ms: i64,
) -> Result<(), Failure> {
    let source_id = format!("google:{}", short(token));
    purchase_changes::write(
        app,
        Some(read.clone()),
        &source_id,
        &purchase_changes::Reported::default(),
        |stored| {
            let mut p = stored.cloned().unwrap_or_else(|| read.clone());
            p.end(state, now_ms);
            p
        },
    )
    .await
    .map_err(Failure::from)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn apply_product(
    app: &App,
    g: &Google,
    token: &str,
    product_id: &str,
    product: &Product,
    plan: Option<&Plan>,
    user: Option<&str>,
    order: Option<Order>,
    p: &ProductPurchase,
) -> Result<PurchaseStatus, Failure> {
    if p.quantity.unwrap_or(1) != 1 {
        return Err(Failure::Permanent(
            "quantity above 1 is not supported".into(),
        ));
    }
    let order = match order {
        Some(o) => o,
        None => {
            let id = derived_order_id(token);
            match app.store.get_order(&id).await.map_err(ServiceError::from)? {
                Some(o) => o,
                None => match (user, p.purchase_state) {
                    (Some(u), 0) => {
                        create_bound_order(app, id, u, product, plan, google::NAME).await?
                    }
                    (Some(u), 2) => {
                        check_account(app, g, p, u, None).await?;
                        remember_pending(app, token, u, product, None, app.clock.now_ms()).await?;
                        return Ok(PurchaseStatus::Pending);
                    }
                    _ => {
                        purchase_changes::tell(
                            app,
                            EventType::PurchaseUnattributed,
                            google::NAME,
                            &format!("google:{}", short(token)),
                            "",
                            &product.id,
                            product_id,
                            p.order_id.as_deref(),
                            None,
                            "no account is known for this purchase yet",
                        )
                        .await?;
                        return Ok(PurchaseStatus::Unattributed);
                    }
                },
            }
        }
    };
    if user.is_some_and(|u| u != order.user_id) {
        return Err(conflict(app, Some(&order), "purchase is bound to another account").await);
    }
    check_account(app, g, p, &order.user_id, Some(&order)).await?;
    match p.purchase_state {
        0 => {
            let paid_at = p
                .purchase_time_millis
                .as_deref()
                .and_then(|t| t.parse::<i64>().ok())
                .map(|ms| ms.div_euclid(1000))
                .unwrap_or_else(|| app.clock.now());
            let applied = settle_order(app, &order, token, paid_at).await?;
            // Remember which order the token paid, so voids and re-fetches find a pre-order.
            let record = StorePurchase {
                store: google::NAME.into(),
                purchase_id: token.to_owned(),
                user_id: order.user_id.clone(),
                product_id: product.id.clone(),
                state: PurchaseState::Purchased,
                expires_at: None,
                // Newer than a pending record (0), so it replaces it once; repeats are stale.
                last_event_at: 1,
                last_txn_id: p.order_id.clone(),
                order_id: Some(order.order_id.to_string()),
                grants: Vec::new(),
            };
            match app
                .store
                .put_purchase(&record)
                .await
                .map_err(ServiceError::from)?
            {
                PurchaseOutcome::OwnedByOther(_) => {
                    tracing::error!("Play token recorded for another account")
                }
                PurchaseOutcome::Applied | PurchaseOutcome::Stale(_) => {}
            }
            let consume = product.kind == ProductKind::Credits && p.consumption_state == 0;
            if p.acknowledgement_state == 0 || consume {
                queue(
                    app,
                    &Job::AcknowledgeGooglePurchase {
                        purchase_token: token.to_owned(),
                        product_id: product_id.to_owned(),
                        subscription: false,
                        consume,
                    },
                )
                .await?;
            }
            Ok(if applied == payments::Applied::Duplicate {
                PurchaseStatus::Duplicate
            } else {
                PurchaseStatus::Granted
            })
        }
        1 => revoke_order(app, &order, token).await,
        _ => {
            remember_pending(
                app,
                token,
                &order.user_id,
                product,
                Some(&order),
                app.clock.now_ms(),
            )
            .await?;
            Ok(PurchaseStatus::Pending)
        }
    }
}

/// A one-time purchase's `obfuscatedExternalAccountId`, when it has one, must be `user`'s.
async fn check_account(
    app: &App,
    g: &Google,
    p: &ProductPurchase,
    user: &str,
    order: Option<&Order>,
) -> Result<(), Failure> {
    if p.obfuscated_external_account_id
        .as_deref()
        .is_some_and(|a| a != g.account_id(user))
    {
        return Err(conflict(
            app,
            order,
            "obfuscatedExternalAccountId names another account",
        )
        .await);
    }
    Ok(())
}

/// Remembers a purchase Google has not been paid for yet: who handed its token over and
/// which order it is for (none: the order derived from the token), so the notification
/// that it completed settles that order. The record is written only where none exists
/// (`last_event_at` 0 for a one-time product, which its paid record replaces); one for
/// another account is refused.
async fn remember_pending(
    app: &App,
    token: &str,
    user: &str,
    product: &Product,
    order: Option<&Order>,
    now_ms: i64,
) -> Result<(), Failure> {
    let record = StorePurchase {
        store: google::NAME.into(),
        purchase_id: token.to_owned(),
        user_id: user.to_owned(),
        product_id: product.id.clone(),
        state: PurchaseState::Pending,
        expires_at: None,
        last_event_at: if product.kind == ProductKind::Subscription {
            now_ms
        } else {
            0
        },
        last_txn_id: None,
        order_id: order.map(|o| o.order_id.to_string()),
        grants: Vec::new(),
    };
    match app
        .store
        .put_purchase(&record)
        .await
        .map_err(ServiceError::from)?
    {
        PurchaseOutcome::OwnedByOther(_) => {
            Err(conflict(app, order, "purchase is bound to another account").await)
        }
        PurchaseOutcome::Applied | PurchaseOutcome::Stale(_) => {
            tracing::info!(order_id = ?order.map(|o| o.order_id.to_string()), "Play purchase pending: remembered until it completes");
            Ok(())
        }
    }
}

async fn revoke_order(app: &App, order: &Order, token: &str) -> Result<PurchaseStatus, Failure> {
    let event = ProviderEvent::Refunded {
        order_id: order.order_id.clone(),
        provider_txn_id: token.to_owned(),
        // A voided purchase is taken back whole.
        refunded: order.amount,
        order_total: order.amount,
        refund: RefundRef::SoFar(None),
    };
    match payments::apply(app, google::NAME, event).await {
        Ok(_) | Err(ApplyError::Rejected(Rejected::NotRefundable(_))) => {
            Ok(PurchaseStatus::Revoked)
        }
        Err(e) => map_apply(Err(e))
            .map(|_| PurchaseStatus::Revoked)
            .map_err(Failure::from),
    }
}

/// The acknowledge job: acknowledge, then consume a consumable.
pub async fn acknowledge(
    app: &App,
    token: &str,
    product_id: &str,
    subscription: bool,
    consume: bool,
) -> Result<(), Failure> {
    let g = client(app)?;
    g.acknowledge(product_id, token, subscription).await?;
    if consume {
        g.consume(product_id, token).await?;
    }
    tracing::info!(subscription, consume, "Play purchase acknowledged");
    Ok(())
}

/// A voided purchase (refund, chargeback): revoke at once, then re-fetch the state.
async fn void(app: &App, token: &str, product_type: i64, now_ms: i64) -> Result<(), Failure> {
    if product_type == 1 {
        if let Some(p) = app
            .store
            .get_purchase(google::NAME, token)
            .await
            .map_err(ServiceError::from)?
        {
            end_subscription(app, token, p, PurchaseState::Revoked, now_ms).await?;
        }
    } else {
        let recorded = app
            .store
            .get_purchase(google::NAME, token)
            .await
            .map_err(ServiceError::from)?;
        if let Some(o) = order_of(app, token, recorded.as_ref()).await? {
            revoke_order(app, &o, token).await?;
        }
    }
    Ok(())
}

/// The order a Play purchase pays: the one its purchase record names (a pre-order, paid or
/// still pending), else the order derived from the token.
async fn order_of(
    app: &App,
    token: &str,
    recorded: Option<&StorePurchase>,
) -> Result<Option<Order>, Failure> {
    let named = recorded
        .and_then(|p| p.order_id.as_deref())
        .and_then(|id| OrderId::parse(id).ok());
    let id = named.unwrap_or_else(|| derived_order_id(token));
    Ok(app
        .store
        .get_order(&id)
        .await
        .map_err(ServiceError::from)?
        .filter(|o| o.provider == google::NAME))
}

/// Why a push was refused (the answer is 4xx: Pub/Sub redelivers, an attacker learns
/// nothing).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("unauthenticated push: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// `POST /notifications/google`: Pub/Sub push of a Play RTDN.
pub async fn notification(
    app: &App,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<&'static str, PushError> {
    let g = client(app)?;
    let unauthenticated = |e: google::PushRejected| PushError::Unauthenticated(e.to_string());
    let token = g.push_key(authorization).await.map_err(unauthenticated)?;
    // The signature check, on the app's CPU pool: anyone can send this route a token.
    let checker = app
        .google
        .clone()
        .ok_or_else(|| ServiceError::ProviderNotEnabled(google::NAME.into()))?;
    app.cpu
        .run(move || checker.check_push(&token))
        .await
        .map_err(|busy| ServiceError::Busy(busy.to_string()))?
        .map_err(unauthenticated)?;
    let push = wire::decode_push(body, &g.config.package_name).map_err(PushError::Malformed)?;
    let n = &push.notification;
    let id = &push.message_id;
    let now = app.clock.now();
    if app
        .store
        .note_seen(google::NAME, id, now)
        .await
        .map_err(ServiceError::from)?
    {
        return Ok("duplicate");
    }
    let (kind, job) = if let Some(s) = &n.subscription_notification {
        (
            "subscription",
            Some((s.purchase_token.clone(), s.subscription_id.clone())),
        )
    } else if let Some(o) = &n.one_time_product_notification {
        ("one_time", Some((o.purchase_token.clone(), o.sku.clone())))
    } else if let Some(v) = &n.voided_purchase_notification {
        if !wire::valid_token(&v.purchase_token) {
            return Err(PushError::Malformed("bad purchase token".into()));
        }
        match void(
            app,
            &v.purchase_token,
            v.product_type.unwrap_or(2),
            app.clock.now_ms(),
        )
        .await
        {
            Ok(()) => {}
            Err(Failure::Retry(r)) => return Err(ServiceError::Unavailable(r).into()),
            Err(Failure::Permanent(r)) => tracing::warn!(reason = r, "voided purchase not applied"),
        }
        ("voided", None)
    } else if n.test_notification.is_some() {
        ("test", None)
    } else {
        ("unknown", None)
    };
    if let Some((token, product_id)) = job {
        if !wire::valid_token(&token) {
            return Err(PushError::Malformed("bad purchase token".into()));
        }
        queue(
            app,
            &Job::VerifyGooglePurchase {
                purchase_token: token,
                product_id,
                user_id: None,
                order_id: None,
            },
        )
        .await?;
    }
    app.store
        .record_note(google::NAME, id, kind, now)
        .await
        .map_err(ServiceError::from)?;
    Ok(kind)
}

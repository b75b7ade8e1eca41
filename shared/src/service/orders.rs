//! Creating, reading and cancelling orders.

use super::ServiceError;
use crate::app::App;
use crate::crypto::random_bytes;
use crate::domain::{Order, OrderId, OrderState};
use crate::store::{CreateOutcome, IdempotencyRecord, TransitionOutcome, IDEMPOTENCY_TTL};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    pub product_id: String,
    pub plan_id: Option<String>,
    pub provider: String,
    pub channel: Option<String>,
    /// The payer's openid, for WeChat JSAPI payments (Official Account / Mini Program).
    pub openid: Option<String>,
    /// The stream whose paywall this purchase comes from (preview → purchase figures).
    #[serde(default)]
    pub stream_id: Option<String>,
}

pub enum Created {
    New(Order),
    /// The same Idempotency-Key and body were seen before: the order they created.
    Replayed(Order),
}

/// Keys are opaque to us but end up in a store key: printable ASCII, bounded.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic())
}

pub(super) fn request_hash(req: &CreateOrder) -> String {
    // Canonical form of what the client asked for; field order and whitespace don't matter.
    let mut canonical = match &req.openid {
        None => serde_json::json!([req.product_id, req.plan_id, req.provider, req.channel]),
        Some(o) => {
            serde_json::json!([req.product_id, req.plan_id, req.provider, req.channel, o])
        }
    };
    // Only when given, so the hashes of requests without it stay as they were.
    if let (Some(st), Some(parts)) = (&req.stream_id, canonical.as_array_mut()) {
        parts.push(serde_json::json!({ "stream_id": st }));
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

pub async fn create(
    app: &App,
    user_id: &str,
    req: CreateOrder,
    idempotency_key: Option<&str>,
) -> Result<Created, ServiceError> {
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    if let Some(k) = idempotency_key {
        if !valid_idempotency_key(k) {
            return Err(ServiceError::BadRequest(
                "Idempotency-Key must be 1-128 printable ASCII characters".into(),
            ));
        }
    }
    if req.provider == super::coin_orders::PROVIDER {
        return super::coin_orders::create(app, user_id, req, idempotency_key).await;
    }
    let Some(provider) = app.providers.creator(&req.provider).cloned() else {
        if app.providers.is_enabled(&req.provider) {
            return Err(ServiceError::BadRequest(format!(
                "{} takes no orders here: its sales arrive by callback",
                req.provider
            )));
        }
        return Err(ServiceError::ProviderNotEnabled(req.provider));
    };
    if let Some(c) = &req.channel {
        if c.is_empty()
            || c.len() > 32
            || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ServiceError::BadRequest(
                "channel must be 1-32 characters of [A-Za-z0-9_]".into(),
            ));
        }
    }
    if let Some(o) = &req.openid {
        if o.is_empty()
            || o.len() > 128
            || !o
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ServiceError::BadRequest(
                "openid must be 1-128 characters of [A-Za-z0-9_-]".into(),
            ));
        }
    }
    let payer = crate::providers::Payer {
        openid: req.openid.clone(),
    };
    provider
        .check_request(req.channel.as_deref(), &payer)
        .map_err(ServiceError::BadRequest)?;
    let catalog = app.catalog.current();
    let offer = match catalog.offer(&req.product_id, req.plan_id.as_deref(), now) {
        // A store-only product (a subscription the store prices) can be pre-ordered
        // through that store: the order records no money of ours.
        Err(crate::domain::OfferError::StoreOnly(_)) if provider.sells_store_products() => {
            super::store_products::store_only_offer(&catalog, &req.product_id)?
        }
        other => other?,
    };
    let stream_id =
        super::stream_attribution::check(&catalog, req.stream_id.as_deref(), &req.product_id)?;
    if let Err(owned) = super::lifetime::refuse_if_owned(app, user_id, offer.product).await {
        // A retry of the purchase that made it owned is answered with that order.
        if let Some(k) = idempotency_key {
            if let Some(existing) = app.store.get_idempotency(user_id, k, now).await? {
                return replay(app, existing, &request_hash(&req)).await;
            }
        }
        return Err(owned);
    }
    let store_product = if provider.sells_store_products() {
        Some(
            super::store_products::store_product_id(&offer, &req.provider).ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "product {:?} is not sold through {}",
                    req.product_id, req.provider
                ))
            })?,
        )
    } else {
        None
    };
    let order_id = OrderId::from_parts(now_ms.max(0) as u64, random_bytes());
    let mut order = Order::pending(
        order_id.clone(),
        user_id,
        &offer,
        &req.provider,
        req.channel.clone(),
        now,
        now + app.config.order_ttl_seconds,
    );
    order.stream_id = stream_id;
    // A provider that prepares payments remotely (a prepay) is asked only once per key: a
    // retried create finds the key first. Local ones skip this read.
    if let Some(k) = idempotency_key.filter(|_| provider.prepares_remotely()) {
        if let Some(existing) = app.store.get_idempotency(user_id, k, now).await? {
            return replay(app, existing, &request_hash(&req)).await;
        }
    }
    let mut payment = provider
        .payment_params(&order, &payer)
        .await
        .map_err(ServiceError::Provider)?;
    if let (Some(id), Some(map)) = (store_product, payment.as_object_mut()) {
        map.insert("store_product_id".into(), serde_json::json!(id));
    }
    order.payment = Some(payment);
    let idem = idempotency_key.map(|key| IdempotencyRecord {
        user_id: user_id.to_owned(),
        key: key.to_owned(),
        request_hash: request_hash(&req),
        order_id: order_id.clone(),
        expires_at: now + IDEMPOTENCY_TTL,
    });
    let quota = app.config.order_quota();
    // The quota is counted inside the create's own transaction (no extra round trip), so a
    // remote prepay above was already made for an order refused here: it is never paid and
    // lapses at the provider with the order's expiry.
    let created = if crate::store::claims_lifetime(&order) {
        app.store
            .create_lifetime_order(&order, idem.as_ref(), &quota, now)
            .await?
    } else {
        app.store
            .create_order(&order, idem.as_ref(), &quota, now)
            .await?
    };
    match created {
        CreateOutcome::Created => {
            tracing::info!(order_id = %order.order_id, provider = %order.provider, product = %order.product_id, "order created");
            super::order_metrics::count(app, "OrdersCreated", &order.provider, &order.product_id);
            Ok(Created::New(order))
        }
        CreateOutcome::KeyExists(existing) => replay(app, existing, &request_hash(&req)).await,
        CreateOutcome::QuotaReached { until } => Err(too_many_orders(app, now, until)),
        CreateOutcome::Claimed(c) => Err(super::lifetime::in_progress(&c)),
    }
}

/// The refusal of a create whose user's window (ending at `until`) is full.
pub(super) fn too_many_orders(app: &App, now: i64, until: i64) -> ServiceError {
    let quota = app.config.order_quota();
    ServiceError::TooManyOrders {
        limit: quota.limit.unwrap_or(u32::MAX),
        window_seconds: quota.window_seconds,
        retry_after: crate::domain::order_quota::retry_after(now, until),
    }
}

pub(super) async fn replay(
    app: &App,
    existing: IdempotencyRecord,
    hash: &str,
) -> Result<Created, ServiceError> {
    if existing.request_hash != hash {
        return Err(ServiceError::IdempotencyMismatch);
    }
    let order = app
        .store
        .get_order(&existing.order_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound("order of this Idempotency-Key".into()))?;
    Ok(Created::Replayed(order))
}

/// The caller's own order; anyone else's is indistinguishable from a missing one.
pub async fn get(app: &App, user_id: &str, id: &str) -> Result<Order, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("order {id:?} not found"));
    let id = OrderId::parse(id).map_err(|_| not_found())?;
    match app.store.get_order(&id).await? {
        Some(o) if o.user_id == user_id => Ok(o),
        _ => Err(not_found()),
    }
}

pub async fn cancel(app: &App, user_id: &str, id: &str) -> Result<Order, ServiceError> {
    let order = get(app, user_id, id).await?;
    if order.state != OrderState::Pending {
        return Err(ServiceError::Conflict(format!(
            "only a PENDING order can be cancelled; this one is {}",
            order.state.as_str()
        )));
    }
    // Close at the provider first, so that the customer can no longer pay what we are about
    // to call cancelled. Providers without orders of their own (sandbox) have nothing to close.
    // If the provider cannot be reached or refuses (e.g. already paid), nothing is cancelled.
    if let Some(p) = app.providers.query(&order.provider) {
        p.close(&order).await.map_err(ServiceError::Provider)?;
    }
    let now = app.clock.now();
    match app
        .store
        .close_order(
            &order,
            OrderState::Cancelled,
            now,
            app.config.order_retained_until(now),
        )
        .await?
    {
        TransitionOutcome::Done(o) => {
            tracing::info!(order_id = %o.order_id, "order cancelled");
            if crate::store::claims_lifetime(&o) {
                // The product may be bought again at once (another provider, say). Should
                // this write fail, the claim still ends with the order's expiry.
                if let Err(e) = app.store.release_lifetime_claim(&o, now).await {
                    tracing::warn!(order_id = %o.order_id, error = %e, "lifetime claim not released");
                }
            }
            Ok(*o)
        }
        TransitionOutcome::Conflict(o) => Err(ServiceError::Conflict(format!(
            "only a PENDING order can be cancelled; this one is {}",
            o.state.as_str()
        ))),
        TransitionOutcome::UnknownOrder => {
            Err(ServiceError::NotFound(format!("order {id:?} not found")))
        }
    }
}

/// How often one order may be re-queried on a client's request.
pub const CONFIRM_MIN_INTERVAL_S: i64 = 30;

/// "I paid but see nothing": queue a re-query of the provider now. Repeated taps within
/// [`CONFIRM_MIN_INTERVAL_S`] queue nothing more, so a user cannot flood the provider.
pub async fn confirm(app: &App, user_id: &str, id: &str) -> Result<Order, ServiceError> {
    let order = get(app, user_id, id).await?;
    if !OrderState::PAYABLE.contains(&order.state) {
        return Ok(order);
    }
    let Some(queue) = &app.queue else {
        return Err(ServiceError::Unavailable(
            "no job queue is configured".into(),
        ));
    };
    let now = app.clock.now();
    if app
        .store
        .mark_requery(&order.order_id, user_id, now, CONFIRM_MIN_INTERVAL_S)
        .await?
    {
        let job = crate::queue::Job::RequeryOrder {
            order_id: order.order_id.to_string(),
        };
        queue
            .jobs()
            .send(&job, 0)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        tracing::info!(order_id = %order.order_id, "re-query queued on the client's request");
    }
    Ok(order)
}

//! Domain types ⇄ DynamoDB items: what each stored kind of item holds, attribute by
//! attribute, and how it is read back (a malformed item is `Corrupt`, never a panic).

use super::attrs::{get_n, get_s, json_attr, n, opt_n, opt_s, s, Item};
use super::keys::{
    archived_grant_sk, ban_sk, checkpoint_sk, due_pk, due_sk, grant_sk, idem_pk, key, order_pk,
    purchase_pk, stream_pk, user_orders_pk, user_pk,
};
use crate::domain::ban::Ban;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::publish_key::PublishKey;
use crate::domain::session::{DeviceSession, Sessions};
use crate::domain::{Currency, Grant, Money, Order, OrderId, OrderState, PurchaseState};
use crate::store::{IdempotencyRecord, StoreError, StorePurchase};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap};

pub(super) fn order_item(o: &Order) -> Item {
    let mut item = key(order_pk(&o.order_id), "ORDER");
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put("order_id", s(o.order_id.as_str()));
    put("user_id", s(&o.user_id));
    put("product_id", s(&o.product_id));
    if let Some(p) = &o.plan_id {
        put("plan_id", s(p));
    }
    put("amount", n(o.amount.amount));
    put("currency", s(o.amount.currency.as_str()));
    put("provider", s(&o.provider));
    if let Some(c) = &o.channel {
        put("channel", s(c));
    }
    put(
        "grants",
        AttributeValue::L(o.grants.iter().map(s).collect()),
    );
    if let Some(t) = &o.term {
        put("term", s(serde_json::to_string(t).unwrap_or_default()));
    }
    put("credits", n(o.credits));
    if let Some(m) = o.max_views {
        put("max_views", n(i64::from(m)));
    }
    put("state", s(o.state.as_str()));
    put("created_at", n(o.created_at));
    put("expires_at", n(o.expires_at));
    if let Some(v) = o.paid_at {
        put("paid_at", n(v));
    }
    put("late", AttributeValue::Bool(o.late));
    if let Some(v) = &o.provider_txn_id {
        put("provider_txn_id", s(v));
    }
    if let Some(v) = o.closed_at {
        put("closed_at", n(v));
    }
    // Only unpaid closed orders have one: DynamoDB's TTL then deletes them.
    if let Some(v) = o.retain_until {
        put("ttl", n(v));
    }
    if let Some(v) = o.refunded_at {
        put("refunded_at", n(v));
    }
    if o.refunded_amount != 0 {
        put("refunded_amount", n(o.refunded_amount));
    }
    // A string set: DynamoDB has no empty sets, so an order without refunds has none.
    if !o.refund_ids.is_empty() {
        put(
            "refund_ids",
            AttributeValue::Ss(o.refund_ids.iter().cloned().collect()),
        );
    }
    if let Some(v) = o.access_revoked_at {
        put("access_revoked_at", n(v));
    }
    if o.refund_requested != 0 {
        put("refund_requested", n(o.refund_requested));
    }
    if let Some(p) = &o.payment {
        put("payment", s(p.to_string()));
    }
    put("sweep_attempts", n(i64::from(o.sweep_attempts)));
    if let Some(e) = &o.last_error {
        put("last_error", s(e));
    }
    // Every order is in its user's history (newest first: ULIDs sort by creation time).
    put("gsi2pk", s(user_orders_pk(&o.user_id)));
    put("gsi2sk", s(o.order_id.as_str()));
    if let Some(v) = o.refund_reversed_at {
        put("refund_reversed_at", n(v));
    }
    if let Some(r) = &o.refund_reversal_reason {
        put("refund_reversal_reason", s(r));
    }
    if let Some(st) = &o.stream_id {
        put("stream_id", s(st));
    }
    if o.state == OrderState::Pending {
        put("gsi1pk", s(due_pk(o.due_shard())));
        put("gsi1sk", s(due_sk(o.expires_at, &o.order_id)));
    }
    item
}

pub(super) fn order_from_item(item: &Item) -> Result<Order, StoreError> {
    let currency = Currency::parse(get_s(item, "currency")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let grants = match item.get("grants") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => Ok(s.clone()),
                _ => Err(StoreError::Corrupt("grants holds a non-string".into())),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(Order {
        order_id: OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        user_id: get_s(item, "user_id")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        plan_id: opt_s(item, "plan_id"),
        amount: Money::new(get_n(item, "amount")?, currency)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        provider: get_s(item, "provider")?.to_owned(),
        channel: opt_s(item, "channel"),
        grants,
        term: json_attr(item, "term")?,
        credits: opt_n(item, "credits")?.unwrap_or(0),
        state: OrderState::parse(get_s(item, "state")?)
            .ok_or_else(|| StoreError::Corrupt("unknown order state".into()))?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        paid_at: opt_n(item, "paid_at")?,
        late: matches!(item.get("late"), Some(AttributeValue::Bool(true))),
        provider_txn_id: opt_s(item, "provider_txn_id"),
        closed_at: opt_n(item, "closed_at")?,
        retain_until: opt_n(item, "ttl")?,
        refunded_at: opt_n(item, "refunded_at")?,
        // Absent until a refund is counted (and on orders refunded before refunds were).
        refunded_amount: opt_n(item, "refunded_amount")?.unwrap_or(0),
        refund_ids: match item.get("refund_ids") {
            Some(AttributeValue::Ss(ids)) => ids.iter().cloned().collect(),
            Some(_) => return Err(StoreError::Corrupt("refund_ids is not a string set".into())),
            None => BTreeSet::new(),
        },
        refund_requested: opt_n(item, "refund_requested")?.unwrap_or(0),
        access_revoked_at: opt_n(item, "access_revoked_at")?,
        payment: json_attr(item, "payment")?,
        sweep_attempts: opt_n(item, "sweep_attempts")?
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        last_error: opt_s(item, "last_error"),
        refund_reversed_at: opt_n(item, "refund_reversed_at")?,
        refund_reversal_reason: opt_s(item, "refund_reversal_reason"),
        stream_id: opt_s(item, "stream_id"),
        max_views: max_views_of(item)?,
    })
}

/// A `max_views` attribute (absent: unlimited).
fn max_views_of(item: &Item) -> Result<Option<u32>, StoreError> {
    opt_n(item, "max_views")?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("max_views out of range".into())))
        .transpose()
}

pub(super) fn idem_item(r: &IdempotencyRecord) -> Item {
    let mut item = key(idem_pk(&r.user_id, &r.key), "IDEM");
    item.insert("user_id".into(), s(&r.user_id));
    item.insert("idempotency_key".into(), s(&r.key));
    item.insert("request_hash".into(), s(&r.request_hash));
    item.insert("order_id".into(), s(r.order_id.as_str()));
    item.insert("expires_at".into(), n(r.expires_at));
    // TTL is garbage collection only (it deletes days late); logic reads expires_at.
    item.insert("ttl".into(), n(r.expires_at));
    item
}

pub(super) fn idem_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    Ok(IdempotencyRecord {
        user_id: get_s(item, "user_id")?.to_owned(),
        key: get_s(item, "idempotency_key")?.to_owned(),
        request_hash: get_s(item, "request_hash")?.to_owned(),
        order_id: OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        expires_at: get_n(item, "expires_at")?,
    })
}

pub(super) fn grant_item(user: &str, g: &Grant) -> Item {
    let mut item = key(user_pk(user), &grant_sk(&g.scope, &g.source_id));
    item.insert("scope".into(), s(&g.scope));
    item.insert("product_id".into(), s(&g.product_id));
    item.insert("source_id".into(), s(&g.source_id));
    item.insert("paid_at".into(), n(g.paid_at));
    item.insert(
        "term".into(),
        s(serde_json::to_string(&g.term).unwrap_or_default()),
    );
    if let Some(r) = g.revoked_at {
        item.insert("revoked_at".into(), n(r));
    }
    if let Some(by) = &g.revoked_by {
        item.insert("revoked_by".into(), s(by));
    }
    if let Some(why) = &g.revoke_reason {
        item.insert("revoke_reason".into(), s(why));
    }
    if let Some(m) = g.max_views {
        item.insert("max_views".into(), n(i64::from(m)));
    }
    if let Some(p) = &g.provider {
        item.insert("provider".into(), s(p));
    }
    item
}

/// The same grant at its archived key: the archive holds grants exactly as they were live.
pub(super) fn archived_grant_item(user: &str, g: &Grant) -> Item {
    let mut item = grant_item(user, g);
    item.insert("sk".into(), s(archived_grant_sk(&g.scope, &g.source_id)));
    item
}

/// An update expression's parts: the expression, its names and its values.
pub(super) struct Expression {
    pub text: String,
    pub names: HashMap<String, String>,
    pub values: Item,
}

/// The grant's attributes other than its key, and `revoked_at`, as [`grant_item`] writes
/// them: `(name, value)`.
fn grant_attributes(user: &str, g: &Grant) -> Vec<(String, AttributeValue)> {
    let mut attrs: Vec<_> = grant_item(user, g)
        .into_iter()
        .filter(|(name, _)| !matches!(name.as_str(), "pk" | "sk" | "revoked_at"))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    attrs
}

/// A condition that holds while the stored grant is still `g` (as read): every attribute
/// [`grant_item`] writes is equal, and `revoked_at` equal or absent alike.
pub(super) fn grant_unchanged(user: &str, g: &Grant) -> Expression {
    let mut e = Expression {
        text: String::new(),
        names: HashMap::new(),
        values: HashMap::new(),
    };
    let mut parts = Vec::new();
    for (i, (name, value)) in grant_attributes(user, g).into_iter().enumerate() {
        parts.push(format!("#g{i} = :g{i}"));
        e.names.insert(format!("#g{i}"), name);
        e.values.insert(format!(":g{i}"), value);
    }
    match g.revoked_at {
        Some(r) => {
            parts.push("revoked_at = :revoked".into());
            e.values.insert(":revoked".into(), n(r));
        }
        None => parts.push("attribute_not_exists(revoked_at)".into()),
    }
    e.text = parts.join(" AND ");
    e
}

/// `SET` of every attribute of `g` but `revoked_at`, followed by `then` (what the caller
/// does to `revoked_at`): an update that writes the whole grant back at its live key,
/// creating it when it was archived (or missing), and leaves other attributes alone.
pub(super) fn grant_written_whole(user: &str, g: &Grant, then: &str) -> Expression {
    let mut e = Expression {
        text: String::new(),
        names: HashMap::new(),
        values: HashMap::new(),
    };
    let mut sets = Vec::new();
    for (i, (name, value)) in grant_attributes(user, g).into_iter().enumerate() {
        sets.push(format!("#g{i} = :g{i}"));
        e.names.insert(format!("#g{i}"), name);
        e.values.insert(format!(":g{i}"), value);
    }
    e.text = format!("SET {}{then}", sets.join(", "));
    e
}

/// A scope's `CHECKPOINT#<scope>` item.
pub(super) fn checkpoint_item(user: &str, c: &Checkpoint) -> Item {
    let mut item = key(user_pk(user), &checkpoint_sk(&c.scope));
    item.insert("scope".into(), s(&c.scope));
    item.insert("before_paid_at".into(), n(c.before.0));
    // Often empty (a cutoff at an instant): DynamoDB keeps empty strings outside keys.
    item.insert("before_source".into(), s(&c.before.1));
    if let Some(e) = c.chain_end {
        item.insert("chain_end".into(), n(e));
    }
    // A string set: DynamoDB has no empty sets, so none kept means no attribute.
    if !c.kept.is_empty() {
        item.insert(
            "kept".into(),
            AttributeValue::Ss(c.kept.iter().cloned().collect()),
        );
    }
    item.insert(
        "products".into(),
        AttributeValue::M(
            c.products
                .iter()
                .map(|(p, end)| (p.clone(), n(*end)))
                .collect(),
        ),
    );
    item.insert(
        "version".into(),
        n(i64::try_from(c.version).unwrap_or(i64::MAX)),
    );
    item
}

pub(super) fn checkpoint_from_item(item: &Item) -> Result<Checkpoint, StoreError> {
    let mut products = std::collections::BTreeMap::new();
    if let Some(AttributeValue::M(m)) = item.get("products") {
        for (p, v) in m {
            let AttributeValue::N(end) = v else {
                return Err(StoreError::Corrupt("checkpoint end is not a number".into()));
            };
            let end = end
                .parse()
                .map_err(|_| StoreError::Corrupt("checkpoint end is not an integer".into()))?;
            products.insert(p.clone(), end);
        }
    }
    Ok(Checkpoint {
        scope: get_s(item, "scope")?.to_owned(),
        before: (
            get_n(item, "before_paid_at")?,
            get_s(item, "before_source")?.to_owned(),
        ),
        chain_end: opt_n(item, "chain_end")?,
        kept: match item.get("kept") {
            Some(AttributeValue::Ss(ids)) => ids.iter().cloned().collect(),
            Some(_) => return Err(StoreError::Corrupt("kept is not a string set".into())),
            None => BTreeSet::new(),
        },
        products,
        version: u64::try_from(get_n(item, "version")?)
            .map_err(|_| StoreError::Corrupt("negative checkpoint version".into()))?,
    })
}

pub(super) fn grant_from_item(item: &Item) -> Result<Grant, StoreError> {
    Ok(Grant {
        scope: get_s(item, "scope")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        source_id: get_s(item, "source_id")?.to_owned(),
        paid_at: get_n(item, "paid_at")?,
        term: json_attr(item, "term")?
            .ok_or_else(|| StoreError::Corrupt("grant without term".into()))?,
        revoked_at: opt_n(item, "revoked_at")?,
        revoked_by: opt_s(item, "revoked_by"),
        revoke_reason: opt_s(item, "revoke_reason"),
        max_views: max_views_of(item)?,
        provider: opt_s(item, "provider"),
    })
}

/// The `SESSIONS` item: real DynamoDB maps, so an operator can read it in the console.
pub(super) fn sessions_item(user: &str, s: &Sessions, version: u64) -> Item {
    let mut item = key(user_pk(user), "SESSIONS");
    let devices = s
        .devices
        .iter()
        .map(|(device, d)| {
            (
                device.clone(),
                AttributeValue::M(
                    HashMap::from([
                        ("session_id".to_owned(), self::s(&d.session_id)),
                        ("last_seen".to_owned(), n(d.last_seen)),
                    ])
                    .into_iter()
                    .chain(d.stream.iter().map(|st| ("stream".to_owned(), self::s(st))))
                    .collect(),
                ),
            )
        })
        .collect();
    let previews = s
        .previews
        .iter()
        .map(|(stream, at)| (stream.clone(), n(*at)))
        .collect();
    item.insert("devices".into(), AttributeValue::M(devices));
    item.insert("previews".into(), AttributeValue::M(previews));
    if !s.views.is_empty() {
        let views = s
            .views
            .iter()
            .map(|(source, used)| (source.clone(), n(i64::from(*used))))
            .collect();
        item.insert("views".into(), AttributeValue::M(views));
    }
    if !s.accessed.is_empty() {
        item.insert(
            "accessed".into(),
            AttributeValue::Ss(s.accessed.iter().cloned().collect()),
        );
    }
    item.insert(
        "version".into(),
        n(i64::try_from(version).unwrap_or(i64::MAX)),
    );
    item
}

pub(super) fn sessions_from_item(item: &Item) -> Result<Sessions, StoreError> {
    let mut out = Sessions {
        version: u64::try_from(get_n(item, "version")?)
            .map_err(|_| StoreError::Corrupt("negative sessions version".into()))?,
        ..Sessions::default()
    };
    if let Some(AttributeValue::M(devices)) = item.get("devices") {
        for (device, v) in devices {
            let AttributeValue::M(d) = v else {
                return Err(StoreError::Corrupt("sessions device is not a map".into()));
            };
            out.devices.insert(
                device.clone(),
                DeviceSession {
                    session_id: get_s(d, "session_id")?.to_owned(),
                    last_seen: get_n(d, "last_seen")?,
                    stream: opt_s(d, "stream"),
                },
            );
        }
    }
    if let Some(AttributeValue::M(views)) = item.get("views") {
        for (source, v) in views {
            let used = match v {
                AttributeValue::N(used) => used.parse::<u32>().ok(),
                _ => None,
            }
            .ok_or_else(|| StoreError::Corrupt("views used is not a count".into()))?;
            out.views.insert(source.clone(), used);
        }
    }
    match item.get("accessed") {
        None => {}
        Some(AttributeValue::Ss(sources)) => out.accessed = sources.iter().cloned().collect(),
        Some(_) => return Err(StoreError::Corrupt("accessed is not a string set".into())),
    }
    if let Some(AttributeValue::M(previews)) = item.get("previews") {
        for (stream, v) in previews {
            let AttributeValue::N(at) = v else {
                return Err(StoreError::Corrupt("preview start is not a number".into()));
            };
            let at = at
                .parse()
                .map_err(|_| StoreError::Corrupt("preview start is not an integer".into()))?;
            out.previews.insert(stream.clone(), at);
        }
    }
    Ok(out)
}

pub(super) fn purchase_item(p: &StorePurchase) -> Item {
    let mut item = key(purchase_pk(&p.store, &p.purchase_id), "PURCHASE");
    item.insert("store".into(), s(&p.store));
    item.insert("purchase_id".into(), s(&p.purchase_id));
    item.insert("user_id".into(), s(&p.user_id));
    item.insert("product_id".into(), s(&p.product_id));
    item.insert("state".into(), s(p.state.as_str()));
    item.insert("last_event_at".into(), n(p.last_event_at));
    if let Some(e) = p.expires_at {
        item.insert("expires_at".into(), n(e));
    }
    if let Some(t) = &p.last_txn_id {
        item.insert("last_txn_id".into(), s(t));
    }
    if let Some(o) = &p.order_id {
        item.insert("order_id".into(), s(o));
    }
    item.insert(
        "grants".into(),
        s(serde_json::to_string(&p.grants).unwrap_or_default()),
    );
    item
}

pub(super) fn purchase_from_item(item: &Item) -> Result<StorePurchase, StoreError> {
    Ok(StorePurchase {
        store: get_s(item, "store")?.to_owned(),
        purchase_id: get_s(item, "purchase_id")?.to_owned(),
        user_id: get_s(item, "user_id")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        state: PurchaseState::parse(get_s(item, "state")?)
            .ok_or_else(|| StoreError::Corrupt("unknown purchase state".into()))?,
        expires_at: opt_n(item, "expires_at")?,
        last_event_at: get_n(item, "last_event_at")?,
        last_txn_id: opt_s(item, "last_txn_id"),
        order_id: opt_s(item, "order_id"),
        grants: json_attr(item, "grants")?.unwrap_or_default(),
    })
}

/// A `BAN#<scope>` item in the user's partition.
pub(super) fn ban_item(user: &str, b: &Ban) -> Item {
    let mut item = key(user_pk(user), &ban_sk(&b.scope));
    item.insert("scope".into(), s(&b.scope));
    item.insert("reason".into(), s(&b.reason));
    item.insert("created_at".into(), n(b.created_at));
    if let Some(u) = b.until {
        item.insert("until".into(), n(u));
    }
    if let Some(by) = &b.created_by {
        item.insert("created_by".into(), s(by));
    }
    item
}

pub(super) fn ban_from_item(item: &Item) -> Result<Ban, StoreError> {
    Ok(Ban {
        scope: get_s(item, "scope")?.to_owned(),
        until: opt_n(item, "until")?,
        reason: get_s(item, "reason")?.to_owned(),
        created_at: get_n(item, "created_at")?,
        created_by: opt_s(item, "created_by"),
    })
}

/// The sort key of a stream's publish key.
pub(super) const PUBLISH_KEY_SK: &str = "PUBLISH_KEY";

/// The `STREAM#<id>` / `PUBLISH_KEY` item holds only the key's hash.
pub(super) fn publish_key_item(stream_id: &str, k: &PublishKey) -> Item {
    let mut item = key(stream_pk(stream_id), PUBLISH_KEY_SK);
    item.insert("key_hash".into(), s(&k.hash));
    item.insert(
        "version".into(),
        n(i64::try_from(k.version).unwrap_or(i64::MAX)),
    );
    item.insert("rotated_at".into(), n(k.rotated_at));
    if let Some(by) = &k.rotated_by {
        item.insert("rotated_by".into(), s(by));
    }
    item
}

/// The `STREAM#<id>` / `PUBLISH_KEY` item holds only the key's hash.
pub(super) fn publish_key_from_item(item: &Item) -> Result<PublishKey, StoreError> {
    Ok(PublishKey {
        hash: get_s(item, "key_hash")?.to_owned(),
        version: u64::try_from(get_n(item, "version")?)
            .map_err(|_| StoreError::Corrupt("negative publish key version".into()))?,
        rotated_at: get_n(item, "rotated_at")?,
        rotated_by: opt_s(item, "rotated_by"),
    })
}

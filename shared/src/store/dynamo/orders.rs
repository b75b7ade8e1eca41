//! Orders: creating one (with its idempotency key), reading it, closing it unpaid, and the
//! due index the sweeper walks. Paying and refunding are in `payments`.

use super::attrs::{get_n, get_s, n, s, Item};
use super::errors::{condition_held, unavailable};
use super::items::{idem_from_item, idem_item, order_from_item, order_item};
use super::keys::{
    due_pk, due_sk, idem_pk, key, lifetime_claim_sk, order_pk, order_window_pk, order_window_sk,
};
use super::table::GSI1;
use super::DynamoStore;
use crate::domain::event::Event;
use crate::domain::{Order, OrderId, OrderQuota, OrderState};
use crate::store::{
    stats_shard, CreateOutcome, DueEntry, IdempotencyRecord, LifetimeClaim, StoreError,
    TransitionOutcome,
};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

pub(super) async fn create_order(
    db: &DynamoStore,
    order: &Order,
    idem: Option<&IdempotencyRecord>,
    quota: &OrderQuota,
    now: i64,
    claim: bool,
) -> Result<CreateOutcome, StoreError> {
    let window = quota.window(now);
    // Items in this order: the order, the idempotency key when given (before the claim and
    // the window, so that a replay is recognised even when they refuse too), the lifetime
    // claim when asked, the user's window counter, the day's counter.
    let mut items = vec![TransactWriteItem::builder()
        .put(db.put(order_item(order), "attribute_not_exists(pk)"))
        .build()];
    if let Some(rec) = idem {
        let idem_put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(idem_item(rec)))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set");
        items.push(TransactWriteItem::builder().put(idem_put).build());
    }
    let claim_at = items.len();
    if claim {
        items.push(claim_put(db, order, now));
    }
    let window_at = items.len();
    items.push(window_count(
        db,
        &order.user_id,
        quota,
        window.start,
        window.end,
    ));
    items.push(db.count(
        order.created_at,
        stats_shard(&order.order_id),
        &crate::domain::stats::created_counts(order),
    ));
    items.extend(db.event_puts(vec![Event::order_created(order)])?);
    let Some(failed) = db.transact("create order", items).await? else {
        return Ok(CreateOutcome::Created);
    };
    if let Some(rec) = idem {
        if let Some(Some(old)) = failed.get(1) {
            let old = match old {
                Some(item) => item.clone(),
                // Emulators may omit ALL_OLD: read the key instead.
                None => db
                    .get(idem_pk(&rec.user_id, &rec.key), "IDEM")
                    .await?
                    .ok_or_else(|| StoreError::Unavailable("idempotency key vanished".into()))?,
            };
            return Ok(CreateOutcome::KeyExists(idem_from_item(&old)?));
        }
    }
    if claim {
        if let Some(Some(old)) = failed.get(claim_at) {
            return Ok(CreateOutcome::Claimed(
                claim_held(db, order, old.as_ref()).await?,
            ));
        }
    }
    if let Some(Some(_)) = failed.get(window_at) {
        return Ok(CreateOutcome::QuotaReached { until: window.end });
    }
    Err(StoreError::Corrupt(format!(
        "order id {} generated twice",
        order.order_id
    )))
}

/// The put of `order`'s lifetime claim (`ORDERS#<user>` / `LIFETIME#<product>`, beside the
/// user's order windows, outside the partition entitlement checks read), conditioned on no
/// other claim being live; it expires (`ttl`) with the order.
pub(super) fn claim_put(db: &DynamoStore, order: &Order, now: i64) -> TransactWriteItem {
    let c = LifetimeClaim::of(order);
    let mut item = key(
        order_window_pk(&c.user_id),
        &lifetime_claim_sk(&c.product_id),
    );
    item.insert("order_id".into(), s(c.order_id.to_string()));
    item.insert("until".into(), n(c.until));
    item.insert("ttl".into(), n(c.until));
    let put = Put::builder()
        .table_name(&db.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #until <= :now")
        .expression_attribute_names("#until", "until")
        .expression_attribute_values(":now", n(now))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("table, item and condition are set");
    TransactWriteItem::builder().put(put).build()
}

/// The claim that refused `order`'s: from the failed condition's `ALL_OLD`, else read again.
pub(super) async fn claim_held(
    db: &DynamoStore,
    order: &Order,
    old: Option<&Item>,
) -> Result<LifetimeClaim, StoreError> {
    let read;
    let item = match old {
        Some(item) => item,
        None => {
            read = db
                .get(
                    order_window_pk(&order.user_id),
                    &lifetime_claim_sk(&order.product_id),
                )
                .await?
                .ok_or_else(|| StoreError::Unavailable("lifetime claim vanished".into()))?;
            &read
        }
    };
    let order_id = get_s(item, "order_id")?;
    Ok(LifetimeClaim {
        user_id: order.user_id.clone(),
        product_id: order.product_id.clone(),
        order_id: OrderId::parse(order_id)
            .map_err(|e| StoreError::Corrupt(format!("lifetime claim's order id: {e}")))?,
        until: get_n(item, "until")?,
    })
}

/// Ends `order`'s claim at `now`, only if it is still that order's.
pub(super) async fn release_lifetime_claim(
    db: &DynamoStore,
    order: &Order,
    now: i64,
) -> Result<(), StoreError> {
    let r = db
        .client
        .update_item()
        .table_name(&db.table)
        .set_key(Some(key(
            order_window_pk(&order.user_id),
            &lifetime_claim_sk(&order.product_id),
        )))
        .update_expression("SET #until = :now, #ttl = :now")
        .condition_expression("order_id = :id AND #until > :now")
        .expression_attribute_names("#until", "until")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":id", s(order.order_id.to_string()))
        .expression_attribute_values(":now", n(now))
        .send()
        .await;
    condition_held("release lifetime claim", r)?;
    Ok(())
}

/// Counts one more order in the user's window `start..end`, conditioned (when the quota
/// has a limit) on the window holding fewer than that. The item expires with its window.
fn window_count(
    db: &DynamoStore,
    user: &str,
    quota: &OrderQuota,
    start: i64,
    end: i64,
) -> TransactWriteItem {
    let mut update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_window_pk(user), &order_window_sk(start))))
        .update_expression("ADD created :one SET window_ends_at = :end, #ttl = :end")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":end", n(end));
    if let Some(limit) = quota.limit {
        update = update
            .condition_expression("attribute_not_exists(created) OR created < :limit")
            .expression_attribute_values(":limit", n(i64::from(limit)));
    }
    let update = update.build().expect("key, expression and table are set");
    TransactWriteItem::builder().update(update).build()
}

pub(super) async fn get_idempotency(
    db: &DynamoStore,
    user_id: &str,
    key: &str,
    now: i64,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    match db.get(idem_pk(user_id, key), "IDEM").await? {
        Some(item) => Ok(Some(idem_from_item(&item)?).filter(|r| r.expires_at > now)),
        None => Ok(None),
    }
}

pub(super) async fn get_order(db: &DynamoStore, id: &OrderId) -> Result<Option<Order>, StoreError> {
    db.get(order_pk(id), "ORDER")
        .await?
        .map(|item| order_from_item(&item))
        .transpose()
}

/// The order as stored when a write's condition on it failed: from the failed condition's
/// `ALL_OLD` when it came back, else read again (emulators may omit it). `None`: there is
/// no such order.
pub(super) async fn order_as_stored(
    db: &DynamoStore,
    old: Option<&Item>,
    id: &OrderId,
) -> Result<Option<Order>, StoreError> {
    match old {
        Some(item) => order_from_item(item).map(Some),
        None => get_order(db, id).await,
    }
}

/// An `UpdateItem` of order `id`'s item; the caller adds the expressions.
pub(super) fn update_order(db: &DynamoStore, id: &OrderId) -> UpdateItemFluentBuilder {
    db.client
        .update_item()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(id), "ORDER")))
}

/// A refused order transition: the order as stored, or that there is none.
pub(super) fn conflict(stored: Option<Order>) -> TransitionOutcome {
    match stored {
        Some(o) => TransitionOutcome::Conflict(Box::new(o)),
        None => TransitionOutcome::UnknownOrder,
    }
}

/// One transaction: the order's conditional close and its `order.expired` or
/// `order.cancelled` event. The order written is the caller's read, closed.
pub(super) async fn close_order(
    db: &DynamoStore,
    order: &Order,
    to: OrderState,
    at: i64,
    retain_until: Option<i64>,
) -> Result<TransitionOutcome, StoreError> {
    let id = &order.order_id;
    let Some(event) = Event::order_closed(order, to, at) else {
        return Ok(conflict(get_order(db, id).await?));
    };
    let mut update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(id), "ORDER")))
        .condition_expression("#state = :pending")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":to", s(to.as_str()))
        .expression_attribute_values(":at", n(at))
        .expression_attribute_values(":pending", s(OrderState::Pending.as_str()));
    update = match retain_until {
        // DynamoDB's TTL deletes the unpaid order some time after this.
        Some(until) => update
            .update_expression(
                "SET #state = :to, closed_at = :at, #ttl = :until REMOVE gsi1pk, gsi1sk",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(until)),
        None => update.update_expression("SET #state = :to, closed_at = :at REMOVE gsi1pk, gsi1sk"),
    };
    let update = update
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![TransactWriteItem::builder().update(update).build()];
    items.extend(db.event_puts(vec![event])?);
    let Some(failed) = db.transact("close order", items).await? else {
        let mut done = order.clone();
        done.state = to;
        done.closed_at = Some(at);
        done.retain_until = retain_until;
        return Ok(TransitionOutcome::Done(Box::new(done)));
    };
    match failed.first() {
        Some(Some(old)) => Ok(conflict(order_as_stored(db, old.as_ref(), id).await?)),
        _ => Err(StoreError::Corrupt(format!(
            "close of {id} failed on its event record"
        ))),
    }
}

pub(super) async fn due_orders(
    db: &DynamoStore,
    shard: u32,
    now: i64,
    limit: usize,
) -> Result<Vec<DueEntry>, StoreError> {
    let out = db
        .client
        .query()
        .table_name(&db.table)
        .index_name(GSI1)
        .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :upto")
        .expression_attribute_values(":pk", s(due_pk(shard)))
        // '~' sorts after every id character, so orders due exactly at `now` are included.
        .expression_attribute_values(":upto", s(format!("{now:012}#~")))
        .limit(i32::try_from(limit).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| unavailable("due orders", e))?;
    out.items()
        .iter()
        .map(|item| {
            let sk = get_s(item, "gsi1sk")?;
            let (exp, id) = sk
                .split_once('#')
                .ok_or_else(|| StoreError::Corrupt("bad due index key".into()))?;
            Ok(DueEntry {
                order_id: OrderId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                due_at: exp
                    .parse()
                    .map_err(|_| StoreError::Corrupt("bad due index time".into()))?,
            })
        })
        .collect()
}

pub(super) async fn defer_due(
    db: &DynamoStore,
    id: &OrderId,
    attempts: u32,
    next_at: i64,
) -> Result<bool, StoreError> {
    let r = update_order(db, id)
        .update_expression("SET sweep_attempts = :a, gsi1sk = :sk")
        .condition_expression("#state = :pending")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":a", n(i64::from(attempts)))
        .expression_attribute_values(":sk", s(due_sk(next_at, id)))
        .expression_attribute_values(":pending", s(OrderState::Pending.as_str()))
        .send()
        .await;
    condition_held("defer due", r)
}

pub(super) async fn mark_requery(
    db: &DynamoStore,
    id: &OrderId,
    user_id: &str,
    now: i64,
    min_interval: i64,
) -> Result<bool, StoreError> {
    let r = update_order(db, id)
        .update_expression("SET requery_requested_at = :now")
        .condition_expression(
            "user_id = :user AND (attribute_not_exists(requery_requested_at) OR requery_requested_at <= :cutoff)",
        )
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":user", s(user_id))
        .expression_attribute_values(":cutoff", n(now - min_interval))
        .send()
        .await;
    condition_held("mark requery", r)
}

pub(super) async fn record_error(
    db: &DynamoStore,
    id: &OrderId,
    reason: &str,
) -> Result<(), StoreError> {
    let r = update_order(db, id)
        .update_expression("SET last_error = :e")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":e", s(reason.chars().take(500).collect::<String>()))
        .send()
        .await;
    // An order that does not exist has nowhere to note the error: nothing to do.
    condition_held("record error", r)?;
    Ok(())
}

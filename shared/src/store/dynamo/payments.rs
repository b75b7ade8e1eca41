//! Payments: settling an order (or recording a sale made at the provider, order and payment
//! at once) and refunding one. Each is one transaction: the order's conditional change plus
//! the items every payment writes (the provider-transaction claim, grants, coins, figures).
//! A partial refund is counted on the order alone, with one conditional update.

use super::attrs::{get_s, n, s, Item};
use super::items::{grant_item, grant_written_whole, order_item};
use super::keys::{grant_sk, key, order_pk, txn_pk, user_pk};
use super::orders::{conflict, order_as_stored};
use super::DynamoStore;
use crate::domain::event::Event;
use crate::domain::ledger::LedgerSource;
use crate::domain::refund::{RefundCount, RefundReversal};
use crate::domain::{Order, OrderId, OrderState};
use crate::store::{
    order_ledger_entry, refund_write_events, settle_events, stats_shard, SettleOutcome, Settlement,
    StoreError, TransitionOutcome,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

/// The `order_id` of the `TXN#<provider>#<id>` claim: one consistent `GetItem`.
pub(super) async fn order_for_txn(
    db: &DynamoStore,
    provider: &str,
    txn_id: &str,
) -> Result<Option<OrderId>, StoreError> {
    let Some(item) = db.get(txn_pk(provider, txn_id), "TXN").await? else {
        return Ok(None);
    };
    let id = get_s(&item, "order_id")?;
    OrderId::parse(id)
        .map(Some)
        .map_err(|_| StoreError::Corrupt(format!("transaction claim names order {id:?}")))
}

pub(super) async fn settle(db: &DynamoStore, st: &Settlement) -> Result<SettleOutcome, StoreError> {
    let order_update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(&st.order_id), "ORDER")))
        .update_expression(
            // A paid order is a record: a late payment of an expired or cancelled order
            // takes away the `ttl` its close gave it.
            "SET #state = :paid, paid_at = :paid_at, late = :late, provider_txn_id = :txn \
             REMOVE gsi1pk, gsi1sk, #ttl",
        )
        .condition_expression("#state = :expected AND amount = :amount AND currency = :currency")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":paid", s(OrderState::Paid.as_str()))
        .expression_attribute_values(":paid_at", n(st.paid_at))
        .expression_attribute_values(
            ":late",
            AttributeValue::Bool(st.expected_state != OrderState::Pending),
        )
        .expression_attribute_values(":txn", s(&st.provider_txn_id))
        .expression_attribute_values(":expected", s(st.expected_state.as_str()))
        .expression_attribute_values(":amount", n(st.amount.amount))
        .expression_attribute_values(":currency", s(st.amount.currency.as_str()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![TransactWriteItem::builder().update(order_update).build()];
    let late = st.expected_state != OrderState::Pending;
    items.extend(db.payment_items(st, late, false));
    items.extend(db.event_puts(settle_events(st, late))?);
    let Some(failed) = db.transact("settle", items).await? else {
        return Ok(SettleOutcome::Settled);
    };
    if let Some(recorded) = txn_already_recorded(&failed, &st.order_id)? {
        return Ok(recorded);
    }
    match failed.first() {
        Some(Some(old)) => match order_as_stored(db, old.as_ref(), &st.order_id).await? {
            Some(order) => Ok(SettleOutcome::OrderChanged(Box::new(order))),
            None => Ok(SettleOutcome::UnknownOrder),
        },
        _ => Err(StoreError::Corrupt(format!(
            "settle of {} failed on a grant or event record that should not exist",
            st.order_id
        ))),
    }
}

pub(super) async fn settle_new_order(
    db: &DynamoStore,
    order: &Order,
    st: &Settlement,
) -> Result<SettleOutcome, StoreError> {
    let mut items = vec![TransactWriteItem::builder()
        .put(db.put(order_item(order), "attribute_not_exists(pk)"))
        .build()];
    // Sold and paid in one: both counters go in the one update of the day's shard (a
    // transaction may touch an item only once).
    items.extend(db.payment_items(st, false, true));
    let mut events = vec![Event::order_created(order)];
    events.extend(settle_events(st, false));
    items.extend(db.event_puts(events)?);
    let Some(failed) = db.transact("settle new order", items).await? else {
        return Ok(SettleOutcome::Settled);
    };
    if let Some(recorded) = txn_already_recorded(&failed, &order.order_id)? {
        return Ok(recorded);
    }
    match failed.first() {
        Some(Some(old)) => match order_as_stored(db, old.as_ref(), &order.order_id).await? {
            Some(o) => Ok(SettleOutcome::OrderChanged(Box::new(o))),
            None => Err(StoreError::Unavailable(
                "settle new order: condition failed on an order that is absent".into(),
            )),
        },
        _ => Err(StoreError::Corrupt(format!(
            "new order {} failed on a grant that should not exist",
            order.order_id
        ))),
    }
}

/// The order item's side of counting a refund: `ADD` the amount and the id, under the
/// conditions [`RefundCount`] states (PAID, id not recorded, total before within bounds).
/// `also_set` is what else the same update sets (the refund's state change), if anything.
struct RefundWrite {
    update: String,
    condition: String,
    values: Item,
}

impl RefundWrite {
    fn new(count: &RefundCount, also_set: Option<&str>) -> Self {
        let mut values: Item = HashMap::from([
            (":paid".to_owned(), s(OrderState::Paid.as_str())),
            (":add".to_owned(), n(count.add)),
            (
                ":ids".to_owned(),
                AttributeValue::Ss(vec![count.refund_id.clone()]),
            ),
            (":id".to_owned(), s(&count.refund_id)),
            (":before_max".to_owned(), n(count.before_max)),
        ]);
        // An order without counted refunds has no `refunded_amount` yet: it counts as 0.
        let before = if count.before_min <= 0 {
            "(attribute_not_exists(refunded_amount) OR refunded_amount <= :before_max)"
        } else {
            values.insert(":before_min".to_owned(), n(count.before_min));
            "refunded_amount BETWEEN :before_min AND :before_max"
        };
        let add = "ADD refunded_amount :add, refund_ids :ids";
        RefundWrite {
            update: match also_set {
                Some(set) => format!("SET {set} {add}"),
                None => add.to_owned(),
            },
            condition: format!("#state = :paid AND NOT contains(refund_ids, :id) AND {before}"),
            values,
        }
    }
}

/// One transaction: the order's count (under [`RefundCount`]'s conditions) and the
/// refund's `order.refunded` event. The order written back is the caller's read with the
/// refund added: concurrent partial refunds may have added others meanwhile.
pub(super) async fn count_refund(
    db: &DynamoStore,
    order: &Order,
    count: &RefundCount,
    at: i64,
) -> Result<TransitionOutcome, StoreError> {
    let id = &order.order_id;
    let w = RefundWrite::new(count, None);
    let update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(id), "ORDER")))
        .update_expression(w.update)
        .condition_expression(w.condition)
        .expression_attribute_names("#state", "state")
        .set_expression_attribute_values(Some(w.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![TransactWriteItem::builder().update(update).build()];
    items.extend(db.event_puts(refund_write_events(order, count, at, false, false))?);
    // The money refunded, in the day's figures (the order stays PAID: no refund counted).
    items.push(refund_figures(db, order, count, at, false));
    let Some(failed) = db.transact("count refund", items).await? else {
        let mut done = order.clone();
        done.refunded_amount += count.add;
        done.refund_ids.insert(count.refund_id.clone());
        return Ok(TransitionOutcome::Done(Box::new(done)));
    };
    match failed.first() {
        Some(Some(old)) => Ok(conflict(order_as_stored(db, old.as_ref(), id).await?)),
        _ => Err(StoreError::Corrupt(format!(
            "refund count of {id} failed on its event record"
        ))),
    }
}

/// The day's figures of a refund of `order`: its money, and the refund itself when it
/// `completes` what was paid.
fn refund_figures(
    db: &DynamoStore,
    order: &Order,
    count: &RefundCount,
    at: i64,
    completes: bool,
) -> TransactWriteItem {
    db.count(
        at,
        stats_shard(&order.order_id),
        &crate::domain::stats::refund_counts(
            &order.product_id,
            &order.provider,
            order.amount.currency,
            count.add,
            completes,
        ),
    )
}

pub(super) async fn refund(
    db: &DynamoStore,
    order: &Order,
    count: &RefundCount,
    at: i64,
) -> Result<TransitionOutcome, StoreError> {
    revoke(db, order, count, at, true).await
}

pub(super) async fn count_refund_revoking(
    db: &DynamoStore,
    order: &Order,
    count: &RefundCount,
    at: i64,
) -> Result<TransitionOutcome, StoreError> {
    revoke(db, order, count, at, false).await
}

/// Counts `count` and ends `order`'s access in one transaction: the order (`completes`:
/// PAID → REFUNDED; otherwise it stays PAID with `access_revoked_at`), each of its grants
/// revoked, its coins taken back unless the order as read shows them taken already (the
/// condition holds the order to that), and the day's figures (the money refunded; the
/// refund itself when it completes).
async fn revoke(
    db: &DynamoStore,
    order: &Order,
    count: &RefundCount,
    at: i64,
    completes: bool,
) -> Result<TransitionOutcome, StoreError> {
    let set = if completes {
        "#state = :refunded, refunded_at = :at"
    } else {
        "access_revoked_at = if_not_exists(access_revoked_at, :at)"
    };
    let mut w = RefundWrite::new(count, Some(set));
    if completes {
        w.values
            .insert(":refunded".to_owned(), s(OrderState::Refunded.as_str()));
    }
    w.values.insert(":at".to_owned(), n(at));
    // Coins are taken back once: by the first refund that ends the access.
    let take_coins = order.credits != 0 && order.access_revoked_at.is_none();
    w.condition.push_str(match order.access_revoked_at {
        None => " AND attribute_not_exists(access_revoked_at)",
        Some(_) => " AND attribute_exists(access_revoked_at)",
    });
    let order_update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(&order.order_id), "ORDER")))
        .update_expression(w.update)
        .condition_expression(format!("{}{}", w.condition, unpaid_read(order)))
        .expression_attribute_names("#state", "state")
        .set_expression_attribute_values(Some(w.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![TransactWriteItem::builder().update(order_update).build()];
    items.extend(grant_updates(
        db,
        order,
        ", revoked_at = if_not_exists(revoked_at, :at)",
        Some(at),
    ));
    if take_coins {
        items.push(db.wallet_add(&order.user_id, -order.credits));
        items.push(db.ledger_put(
            &order.user_id,
            &order_ledger_entry(
                at,
                -order.credits,
                LedgerSource::Refund,
                "coins of a refunded order",
                &order.order_id,
            ),
        ));
    }
    if completes && order.coins_paid() > 0 {
        items.push(db.wallet_add(&order.user_id, order.coins_paid()));
        items.push(db.ledger_put(
            &order.user_id,
            &order_ledger_entry(
                at,
                order.coins_paid(),
                LedgerSource::Refund,
                "refund of an order paid with coins",
                &order.order_id,
            ),
        ));
    }
    items.push(refund_figures(db, order, count, at, completes));
    items.extend(db.event_puts(refund_write_events(order, count, at, completes, !completes))?);
    let what = if completes {
        "refund"
    } else {
        "refund revoking access"
    };
    let Some(failed) = db.transact(what, items).await? else {
        let mut done = order.clone();
        if completes {
            done.state = OrderState::Refunded;
            done.refunded_at = Some(at);
        } else {
            done.access_revoked_at.get_or_insert(at);
        }
        done.refunded_amount += count.add;
        done.refund_ids.insert(count.refund_id.clone());
        return Ok(TransitionOutcome::Done(Box::new(done)));
    };
    match failed.first() {
        Some(Some(old)) => Ok(conflict(
            order_as_stored(db, old.as_ref(), &order.order_id).await?,
        )),
        _ => Err(StoreError::Corrupt(format!(
            "refund of {} failed on an unconditional item",
            order.order_id
        ))),
    }
}

/// REFUNDED → PAID in one transaction: the order (condition: REFUNDED, paid by the
/// reversal's transaction, `refunded_at` as read) is PAID again with its refunds cleared and
/// the reversal recorded; each of its grants loses `revoked_at` (written whole); the
/// wallet gets its coins back. The day of the reversal counts the money back into net
/// revenue (the refund's day keeps its refund).
pub(super) async fn reverse_refund(
    db: &DynamoStore,
    order: &Order,
    r: &RefundReversal,
) -> Result<TransitionOutcome, StoreError> {
    let order_update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(&order.order_id), "ORDER")))
        .update_expression(
            "SET #state = :paid, refunded_amount = :zero, refund_reversed_at = :at, \
             refund_reversal_reason = :reason REMOVE refund_ids, access_revoked_at",
        )
        .condition_expression(format!(
            "#state = :refunded AND provider_txn_id = :txn AND refunded_at = :refunded_at{}",
            unpaid_read(order)
        ))
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":paid", s(OrderState::Paid.as_str()))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":at", n(r.reversed_at))
        .expression_attribute_values(":reason", s(&r.reason))
        .expression_attribute_values(":refunded", s(OrderState::Refunded.as_str()))
        .expression_attribute_values(":txn", s(&r.provider_txn_id))
        .expression_attribute_values(":refunded_at", n(r.refunded_at))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![TransactWriteItem::builder().update(order_update).build()];
    items.extend(grant_updates(db, order, " REMOVE revoked_at", None));
    if order.credits != 0 {
        items.push(db.wallet_add(&order.user_id, order.credits));
        items.push(db.ledger_put(
            &order.user_id,
            &order_ledger_entry(
                r.reversed_at,
                order.credits,
                LedgerSource::Refund,
                "refund reversed: coins back",
                &order.order_id,
            ),
        ));
    }
    items.push(db.count(
        r.reversed_at,
        stats_shard(&order.order_id),
        &crate::domain::stats::reversal_counts(
            &order.product_id,
            &order.provider,
            order.amount.currency,
            order.refunded_amount,
        ),
    ));
    let first_event = items.len();
    items.extend(db.event_puts(crate::store::reversal_events(order, r)?)?);
    let Some(failed) = db.transact("reverse refund", items).await? else {
        let mut done = order.clone();
        done.state = OrderState::Paid;
        done.refunded_amount = 0;
        done.refund_ids.clear();
        done.refund_reversed_at = Some(r.reversed_at);
        done.refund_reversal_reason = Some(r.reason.clone());
        done.access_revoked_at = None;
        return Ok(TransitionOutcome::Done(Box::new(done)));
    };
    match failed.first() {
        Some(Some(old)) => Ok(conflict(
            order_as_stored(db, old.as_ref(), &order.order_id).await?,
        )),
        _ if failed.iter().skip(first_event).any(Option::is_some) => {
            Err(StoreError::Corrupt(format!(
                "an event of the refund reversal of {} is recorded already",
                order.order_id
            )))
        }
        _ => Err(StoreError::Corrupt(format!(
            "refund reversal of {} failed on an unconditional item",
            order.order_id
        ))),
    }
}

/// The provider transaction was already claimed (item 1 of a payment transaction): by
/// which order, from the failed condition's `ALL_OLD`.
fn txn_already_recorded(
    failed: &[Option<Option<Item>>],
    this_order: &OrderId,
) -> Result<Option<SettleOutcome>, StoreError> {
    let Some(Some(old)) = failed.get(1) else {
        return Ok(None);
    };
    let order_id = match old {
        Some(item) => OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => this_order.clone(),
    };
    Ok(Some(SettleOutcome::TxnAlreadyRecorded { order_id }))
}

impl DynamoStore {
    /// What every payment writes besides the order itself, always right after it (index 1
    /// is the provider-transaction claim, see [`txn_already_recorded`]): the claim, the
    /// grants, the coins and the day's figures.
    pub(super) fn payment_items(
        &self,
        st: &Settlement,
        late: bool,
        created: bool,
    ) -> Vec<TransactWriteItem> {
        let mut txn = key(txn_pk(&st.provider, &st.provider_txn_id), "TXN");
        txn.insert("order_id".into(), s(st.order_id.as_str()));
        txn.insert("user_id".into(), s(&st.user_id));
        txn.insert("amount".into(), n(st.amount.amount));
        txn.insert("currency".into(), s(st.amount.currency.as_str()));
        txn.insert("recorded_at".into(), n(st.paid_at));
        let mut items = vec![TransactWriteItem::builder()
            .put(self.put(txn, "attribute_not_exists(pk)"))
            .build()];
        for g in &st.grants {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put(grant_item(&st.user_id, g), "attribute_not_exists(pk)"))
                    .build(),
            );
        }
        if st.credits != 0 {
            items.push(self.wallet_add(&st.user_id, st.credits));
            items.push(self.ledger_put(
                &st.user_id,
                &order_ledger_entry(
                    st.paid_at,
                    st.credits,
                    LedgerSource::Order,
                    "coins bought",
                    &st.order_id,
                ),
            ));
        }
        items.extend(self.count_paid(st, late, created));
        items
    }

    pub(super) fn wallet_add(&self, user: &str, delta: i64) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), "WALLET")))
            .update_expression("ADD balance :delta")
            .expression_attribute_values(":delta", n(delta))
            .build()
            .expect("key, expression and table are set");
        TransactWriteItem::builder().update(update).build()
    }
}

/// One update of each grant `order` made, writing the whole grant back at its live key
/// (created when a fold archived it) and then `then` to its `revoked_at`: how a refund
/// revokes them and a reversal restores them. A grant brought back live this way marks its
/// scope's checkpoint stale until the next fold (see `Store::user_items`).
fn grant_updates(
    db: &DynamoStore,
    order: &Order,
    then: &str,
    at: Option<i64>,
) -> Vec<TransactWriteItem> {
    // A read without a payment time is of an unpaid order: the order's condition fails
    // (see `unpaid_read`), so there is nothing to write.
    let grants = match order.paid_at {
        Some(at) => order.grants_at(at),
        None => Vec::new(),
    };
    grants
        .iter()
        .map(|g| {
            let mut e = grant_written_whole(&order.user_id, g, then);
            if let Some(at) = at {
                e.values.insert(":at".to_owned(), n(at));
            }
            let update = Update::builder()
                .table_name(&db.table)
                .set_key(Some(key(
                    user_pk(&order.user_id),
                    &grant_sk(&g.scope, &g.source_id),
                )))
                .update_expression(e.text)
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values))
                .build()
                .expect("key, expression and table are set");
            TransactWriteItem::builder().update(update).build()
        })
        .collect()
}

/// A condition that fails when the caller's read of the order has no payment time: such a
/// read names no grants to revoke or restore, so the change must not apply (every paid
/// order has one; the stored order comes back as the conflict).
fn unpaid_read(order: &Order) -> &'static str {
    if order.paid_at.is_none() {
        " AND attribute_not_exists(paid_at)"
    } else {
        ""
    }
}

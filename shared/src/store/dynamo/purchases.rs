//! App Store and Google Play purchases: each rewritten whole, with its grants, only by a
//! newer store message for the same user.

use super::attrs::{n, s};
use super::items::{grant_item, purchase_from_item, purchase_item};
use super::keys::purchase_pk;
use super::transact::ConditionFailures;
use super::DynamoStore;
use crate::domain::event::Event;
use crate::domain::subscription::PurchaseChange;
use crate::store::{stats_shard_of, PurchaseOutcome, StoreError, StorePurchase};
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

pub(super) async fn get_purchase(
    db: &DynamoStore,
    store: &str,
    purchase_id: &str,
) -> Result<Option<StorePurchase>, StoreError> {
    db.get(purchase_pk(store, purchase_id), "PURCHASE")
        .await?
        .map(|item| purchase_from_item(&item))
        .transpose()
}

pub(super) async fn put_purchase(
    db: &DynamoStore,
    p: &StorePurchase,
) -> Result<PurchaseOutcome, StoreError> {
    let purchase_put = Put::builder()
        .table_name(&db.table)
        .set_item(Some(purchase_item(p)))
        .condition_expression("attribute_not_exists(pk) OR (last_event_at < :t AND user_id = :u)")
        .expression_attribute_values(":t", n(p.last_event_at))
        .expression_attribute_values(":u", s(&p.user_id))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("table, item and condition are set");
    let mut items = vec![TransactWriteItem::builder().put(purchase_put).build()];
    items.extend(grant_puts(db, p));
    match db.transact("put purchase", items).await? {
        None => Ok(PurchaseOutcome::Applied),
        Some(failed) => refused(db, p, &failed, None).await,
    }
}

/// The purchase, its grants, the change's counters and events: one transaction,
/// conditioned on the record read (item 0).
pub(super) async fn put_purchase_change(
    db: &DynamoStore,
    p: &StorePurchase,
    change: &PurchaseChange,
) -> Result<PurchaseOutcome, StoreError> {
    let mut purchase_put = Put::builder()
        .table_name(&db.table)
        .set_item(Some(purchase_item(p)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    purchase_put = match change.read {
        None => purchase_put.condition_expression("attribute_not_exists(pk)"),
        Some(read) => purchase_put
            .condition_expression("last_event_at = :r AND user_id = :u")
            .expression_attribute_values(":r", n(read))
            .expression_attribute_values(":u", s(&p.user_id)),
    };
    let purchase_put = purchase_put
        .build()
        .expect("table, item and condition are set");
    let mut items = vec![TransactWriteItem::builder().put(purchase_put).build()];
    items.extend(grant_puts(db, p));
    if !change.counts.is_empty() {
        items.push(db.count(
            change.counted_at,
            stats_shard_of(&p.purchase_id),
            &change.counts,
        ));
    }
    let first_event = items.len();
    items.extend(db.event_puts(change.events.clone())?);
    match db.transact("put purchase change", items).await? {
        None => Ok(PurchaseOutcome::Applied),
        Some(failed) => refused(db, p, &failed, Some(first_event)).await,
    }
}

/// The puts of `p`'s grants: grants sourced by a purchase change only together with it
/// (the same transaction).
fn grant_puts<'a>(
    db: &'a DynamoStore,
    p: &'a StorePurchase,
) -> impl Iterator<Item = TransactWriteItem> + 'a {
    p.grants.iter().map(move |g| {
        let put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(grant_item(&p.user_id, g)))
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    })
}

/// Why a write of `p` conditioned on its record (item 0) was refused: the record as stored,
/// another user's or newer. The record's condition is looked at first: a change decided on
/// an older read also finds the events the winning write recorded (from `first_event` on).
async fn refused(
    db: &DynamoStore,
    p: &StorePurchase,
    failed: &ConditionFailures,
    first_event: Option<usize>,
) -> Result<PurchaseOutcome, StoreError> {
    let old = match failed.first() {
        Some(Some(Some(item))) => purchase_from_item(item)?,
        Some(Some(None)) => get_purchase(db, &p.store, &p.purchase_id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("purchase vanished".into()))?,
        _ if first_event.is_some_and(|i| failed.iter().skip(i).any(Option::is_some)) => {
            return Err(StoreError::Corrupt(format!(
                "an event of purchase {} is recorded already",
                p.purchase_id
            )))
        }
        _ => {
            return Err(StoreError::Corrupt(format!(
                "put purchase {} failed on an unconditional item",
                p.purchase_id
            )))
        }
    };
    if old.user_id != p.user_id {
        Ok(PurchaseOutcome::OwnedByOther(Box::new(old)))
    } else {
        Ok(PurchaseOutcome::Stale(Box::new(old)))
    }
}

/// Events on their own: one transaction of their conditional puts.
pub(super) async fn put_events(db: &DynamoStore, events: &[Event]) -> Result<bool, StoreError> {
    if events.is_empty() {
        return Ok(true);
    }
    let items = db.event_puts(events.to_vec())?;
    Ok(db.transact("put events", items).await?.is_none())
}

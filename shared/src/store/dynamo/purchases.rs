//! App Store and Google Play purchases: each rewritten whole, with its grants, only by a
//! newer store message for the same user.

use super::attrs::{n, s};
use super::items::{grant_item, purchase_from_item, purchase_item};
use super::keys::purchase_pk;
use super::DynamoStore;
use crate::store::{PurchaseOutcome, StoreError, StorePurchase};
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
    for g in &p.grants {
        // Grants sourced by a purchase change only together with it (this transaction).
        let put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(grant_item(&p.user_id, g)))
            .build()
            .expect("table and item are set");
        items.push(TransactWriteItem::builder().put(put).build());
    }
    let Some(failed) = db.transact("put purchase", items).await? else {
        return Ok(PurchaseOutcome::Applied);
    };
    let old = match failed.first() {
        Some(Some(Some(item))) => purchase_from_item(item)?,
        Some(Some(None)) => get_purchase(db, &p.store, &p.purchase_id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("purchase vanished".into()))?,
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

//! Short-lived markers: one `MARK#<key>` item per claim, conditioned on no unexpired claim,
//! so a burst of identical requests starts one piece of work. `expires_at` is what the
//! condition reads; `ttl` only lets DynamoDB delete the item later.

use super::attrs::n;
use super::errors::{condition_held, unavailable};
use super::keys::{key, marker_pk};
use super::DynamoStore;
use crate::store::StoreError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;

pub(super) async fn claim_marker(
    db: &DynamoStore,
    marker: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    let mut item = key(marker_pk(marker), "MARK");
    item.insert("expires_at".into(), n(until));
    item.insert("ttl".into(), n(until));
    let r = db
        .client
        .put_item()
        .table_name(&db.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
        .expression_attribute_values(":now", n(now))
        .send()
        .await;
    condition_held("claim marker", r)
}

pub(super) async fn release_marker(
    db: &DynamoStore,
    marker: &str,
    until: i64,
) -> Result<(), StoreError> {
    let r = db
        .client
        .delete_item()
        .table_name(&db.table)
        .set_key(Some(key(marker_pk(marker), "MARK")))
        .condition_expression("expires_at = :until")
        .expression_attribute_values(":until", n(until))
        .send()
        .await;
    match r {
        Ok(_) => Ok(()),
        // Claimed again since (or gone): not ours to release.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable("release marker", e)),
    }
}

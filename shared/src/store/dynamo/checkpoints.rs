//! Folding a user's ended grants into their scope's checkpoint: one transaction per step,
//! conditioned on the checkpoint's version and on every grant it moves being as read.

use super::attrs::n;
use super::items::{archived_grant_item, checkpoint_item, grant_item, grant_unchanged};
use super::keys::{archived_grant_sk, grant_sk, key, user_pk};
use super::DynamoStore;
use crate::domain::checkpoint::FoldStep;
use crate::domain::Grant;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

pub(super) async fn fold_grants(
    db: &DynamoStore,
    user_id: &str,
    step: &FoldStep,
) -> Result<bool, StoreError> {
    let checkpoint = Put::builder()
        .table_name(&db.table)
        .set_item(Some(checkpoint_item(user_id, &step.checkpoint)));
    let checkpoint = if step.expected_version == 0 {
        checkpoint.condition_expression("attribute_not_exists(pk)")
    } else {
        checkpoint
            .condition_expression("version = :v")
            .expression_attribute_values(
                ":v",
                n(i64::try_from(step.expected_version).unwrap_or(i64::MAX)),
            )
    };
    let mut items = vec![TransactWriteItem::builder()
        .put(
            checkpoint
                .build()
                .expect("table, item and condition are set"),
        )
        .build()];
    for g in &step.archive {
        items.push(delete_unchanged(
            db,
            user_id,
            g,
            &grant_sk(&g.scope, &g.source_id),
        ));
        let put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(archived_grant_item(user_id, g)))
            .build()
            .expect("table and item are set");
        items.push(TransactWriteItem::builder().put(put).build());
    }
    for g in &step.restore {
        items.push(
            TransactWriteItem::builder()
                .put(db.put(grant_item(user_id, g), "attribute_not_exists(pk)"))
                .build(),
        );
        items.push(delete_unchanged(
            db,
            user_id,
            g,
            &archived_grant_sk(&g.scope, &g.source_id),
        ));
    }
    for g in &step.drop {
        items.push(delete_unchanged(
            db,
            user_id,
            g,
            &archived_grant_sk(&g.scope, &g.source_id),
        ));
    }
    Ok(db.transact("fold grants", items).await?.is_none())
}

/// Deletes the grant item at `sk` only while it is still `g`.
fn delete_unchanged(db: &DynamoStore, user_id: &str, g: &Grant, sk: &str) -> TransactWriteItem {
    let e = grant_unchanged(user_id, g);
    let delete = Delete::builder()
        .table_name(&db.table)
        .set_key(Some(key(user_pk(user_id), sk)))
        .condition_expression(e.text)
        .set_expression_attribute_names(Some(e.names))
        .set_expression_attribute_values(Some(e.values))
        .build()
        .expect("table, key and condition are set");
    TransactWriteItem::builder().delete(delete).build()
}

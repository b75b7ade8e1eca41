//! Stream publish keys: `STREAM#<id>` / `PUBLISH_KEY`, read by the publish check and
//! replaced by an operator's rotation.

use super::attrs::n;
use super::items::{publish_key_from_item, publish_key_item, PUBLISH_KEY_SK};
use super::keys::stream_pk;
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::publish_key::PublishKey;
use crate::store::{Guarded, StoreError};
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

pub(super) async fn publish_key(
    db: &DynamoStore,
    stream_id: &str,
) -> Result<Option<PublishKey>, StoreError> {
    db.get(stream_pk(stream_id), PUBLISH_KEY_SK)
        .await?
        .map(|item| publish_key_from_item(&item))
        .transpose()
}

/// Item 0: the key, whole, conditioned on the stored version being `replaces`' (or on no
/// key yet), so two rotations never share a version and the previous key is gone once it
/// returns; item 1: the audit record.
pub(super) async fn rotate_publish_key(
    db: &DynamoStore,
    stream_id: &str,
    k: &PublishKey,
    replaces: Option<&PublishKey>,
    audit: &AuditRecord,
) -> Result<Guarded<Option<PublishKey>>, StoreError> {
    let put = Put::builder()
        .table_name(&db.table)
        .set_item(Some(publish_key_item(stream_id, k)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    let put = match replaces {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(old) => put
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(i64::try_from(old.version).unwrap_or(i64::MAX))),
    };
    let put = put.build().expect("table, item and condition are set");
    let items = vec![
        TransactWriteItem::builder().put(put).build(),
        db.audit_put(audit),
    ];
    let Some(failed) = db.transact("rotate publish key", items).await? else {
        return Ok(Guarded::Written);
    };
    match failed.first() {
        Some(Some(Some(old))) => Ok(Guarded::Changed(Some(publish_key_from_item(old)?))),
        Some(Some(None)) => Ok(Guarded::Changed(publish_key(db, stream_id).await?)),
        _ => Err(StoreError::Corrupt(format!(
            "rotation of {stream_id:?} failed on its audit record"
        ))),
    }
}

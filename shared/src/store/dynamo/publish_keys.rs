//! Stream publish keys: `STREAM#<id>` / `PUBLISH_KEY`, read by the publish check and
//! replaced by an operator's rotation.

use super::attrs::{n, s};
use super::errors::unavailable;
use super::items::publish_key_from_item;
use super::keys::{key, stream_pk};
use super::DynamoStore;
use crate::domain::publish_key::PublishKey;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::ReturnValue;

const SK: &str = "PUBLISH_KEY";

pub(super) async fn publish_key(
    db: &DynamoStore,
    stream_id: &str,
) -> Result<Option<PublishKey>, StoreError> {
    db.get(stream_pk(stream_id), SK)
        .await?
        .map(|item| publish_key_from_item(&item))
        .transpose()
}

/// One `UpdateItem`: the new hash and `version + 1` land together, so two rotations never
/// share a version and the previous key is gone once it returns.
pub(super) async fn rotate_publish_key(
    db: &DynamoStore,
    stream_id: &str,
    hash: &str,
    by: &str,
    now: i64,
) -> Result<PublishKey, StoreError> {
    let out = db
        .client
        .update_item()
        .table_name(&db.table)
        .set_key(Some(key(stream_pk(stream_id), SK)))
        .update_expression("SET key_hash = :h, rotated_at = :t, rotated_by = :by ADD version :one")
        .expression_attribute_values(":h", s(hash))
        .expression_attribute_values(":by", s(by))
        .expression_attribute_values(":t", n(now))
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .map_err(|e| unavailable("rotate publish key", e))?;
    match out.attributes() {
        Some(item) => publish_key_from_item(item),
        None => Err(StoreError::Corrupt("rotation returned no item".into())),
    }
}

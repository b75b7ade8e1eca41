//! Processed store notifications: one `NOTE` item per notification id, remembered for
//! [`NOTE_TTL`] so a redelivery is recognised and skipped.

use super::attrs::{n, opt_n, s};
use super::errors::condition_held;
use super::keys::{key, note_pk};
use super::DynamoStore;
use crate::store::{StoreError, NOTE_TTL};

pub(super) async fn note_seen(
    db: &DynamoStore,
    source: &str,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(db
        .get(note_pk(source, id), "NOTE")
        .await?
        .map(|item| opt_n(&item, "ttl"))
        .transpose()?
        .flatten()
        .is_some_and(|until| until > now))
}

pub(super) async fn record_note(
    db: &DynamoStore,
    source: &str,
    id: &str,
    kind: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut item = key(note_pk(source, id), "NOTE");
    item.insert("kind".into(), s(kind));
    item.insert("processed_at".into(), n(now));
    item.insert("ttl".into(), n(now + NOTE_TTL));
    let r = db
        .client
        .put_item()
        .table_name(&db.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":now", n(now))
        .send()
        .await;
    condition_held("record note", r)
}

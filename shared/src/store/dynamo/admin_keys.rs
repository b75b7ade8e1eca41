//! Operators' Idempotency-Keys: `OPKEY#<user>` / `<key>`, put (conditioned on not existing)
//! in the transaction of the change it guards, and read back to answer a replay.

use super::attrs::{get_n, get_s, json_attr, n, s, Item};
use super::keys::{admin_key_pk, key};
use super::DynamoStore;
use crate::store::{AdminKey, StoreError};
use aws_sdk_dynamodb::types::TransactWriteItem;

fn admin_key_item(k: &AdminKey) -> Item {
    let mut item = key(admin_key_pk(&k.user_id), &k.key);
    item.insert("user_id".into(), s(&k.user_id));
    item.insert("idempotency_key".into(), s(&k.key));
    item.insert("request_hash".into(), s(&k.request_hash));
    item.insert("result".into(), s(k.result.to_string()));
    item.insert("at".into(), n(k.at));
    item
}

pub(super) fn admin_key_from_item(item: &Item) -> Result<AdminKey, StoreError> {
    Ok(AdminKey {
        user_id: get_s(item, "user_id")?.to_owned(),
        key: get_s(item, "idempotency_key")?.to_owned(),
        request_hash: get_s(item, "request_hash")?.to_owned(),
        result: json_attr(item, "result")?
            .ok_or_else(|| StoreError::Corrupt("operator key without result".into()))?,
        at: get_n(item, "at")?,
    })
}

impl DynamoStore {
    /// The key's put for the transaction of its change: fails when the key was used.
    pub(super) fn admin_key_put(&self, k: &AdminKey) -> TransactWriteItem {
        TransactWriteItem::builder()
            .put(self.put(admin_key_item(k), "attribute_not_exists(pk)"))
            .build()
    }

    /// The stored key after its put failed: from the failure's `ALL_OLD`, or read (emulators
    /// may omit it).
    pub(super) async fn used_key(
        &self,
        old: Option<&Item>,
        k: &AdminKey,
    ) -> Result<AdminKey, StoreError> {
        match old {
            Some(item) => admin_key_from_item(item),
            None => admin_key(self, &k.user_id, &k.key)
                .await?
                .ok_or_else(|| StoreError::Unavailable("operator key vanished".into())),
        }
    }
}

pub(super) async fn admin_key(
    db: &DynamoStore,
    user_id: &str,
    k: &str,
) -> Result<Option<AdminKey>, StoreError> {
    db.get(admin_key_pk(user_id), k)
        .await?
        .map(|item| admin_key_from_item(&item))
        .transpose()
}

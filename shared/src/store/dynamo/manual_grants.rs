//! Operators' grants: a promotion's grants written with the operator's key and the audit
//! record, and revocations by hand, each one transaction. Grant items are written with the
//! one grant item builder, like every other grant.

use super::attrs::n;
use super::items::grant_item;
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::Grant;
use crate::store::{granted_events, revoked_events, AdminKey, Guarded, KeyedOutcome, StoreError};
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

/// Item 0: the operator's key; then the grants (each new); last the audit record.
pub(super) async fn grant(
    db: &DynamoStore,
    user_id: &str,
    grants: &[Grant],
    k: &AdminKey,
    audit: &AuditRecord,
) -> Result<KeyedOutcome, StoreError> {
    let mut items = vec![db.admin_key_put(k)];
    for g in grants {
        items.push(
            TransactWriteItem::builder()
                .put(db.put(grant_item(user_id, g), "attribute_not_exists(pk)"))
                .build(),
        );
    }
    items.push(db.audit_put(audit));
    items.extend(db.event_puts(granted_events(user_id, grants, audit))?);
    let Some(failed) = db.transact("grant", items).await? else {
        return Ok(KeyedOutcome::Written);
    };
    match failed.first() {
        Some(Some(old)) => Ok(KeyedOutcome::KeyUsed(db.used_key(old.as_ref(), k).await?)),
        _ => Err(StoreError::Corrupt(format!(
            "grant of user {user_id:?} exists before its key was used"
        ))),
    }
}

/// Each grant put whole (as read, now revoked), conditioned on the stored one being that
/// grant, unrevoked; then the audit record.
pub(super) async fn revoke_grants(
    db: &DynamoStore,
    user_id: &str,
    revoked: &[Grant],
    audit: &AuditRecord,
) -> Result<Guarded<()>, StoreError> {
    let mut items = Vec::with_capacity(revoked.len() + 1);
    for g in revoked {
        let put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(grant_item(user_id, g)))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(revoked_at) AND paid_at = :paid_at",
            )
            .expression_attribute_values(":paid_at", n(g.paid_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .expect("table, item and condition are set");
        items.push(TransactWriteItem::builder().put(put).build());
    }
    items.push(db.audit_put(audit));
    items.extend(db.event_puts(revoked_events(user_id, revoked, audit))?);
    match db.transact("revoke grants", items).await? {
        None => Ok(Guarded::Written),
        Some(_) => Ok(Guarded::Changed(())),
    }
}

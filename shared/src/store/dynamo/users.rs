//! One user's partition: the single query that answers what they may watch (live grants,
//! checkpoints, wallet, device sessions, bans), the same with the archive for support, the
//! versioned write of their sessions, and bans (each with its audit record).

use super::attrs::{get_s, n, opt_n, s, Item};
use super::errors::unavailable;
use super::items::{
    ban_from_item, ban_item, checkpoint_from_item, grant_from_item, sessions_from_item,
    sessions_item,
};
use super::keys::{ban_sk, key, user_pk, ARCHIVE_END};
use super::transact::ConditionFailures;
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::ban::Ban;
use crate::domain::session::Sessions;
use crate::store::{Guarded, PutSessions, StoreError, UserItems};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

/// The user's partition after the archive (`with_archive` false: what a check reads), or
/// all of it: one strongly consistent query, paged.
pub(super) async fn user_items(
    db: &DynamoStore,
    user_id: &str,
    with_archive: bool,
) -> Result<UserItems, StoreError> {
    let mut result = UserItems::default();
    let mut start: Option<Item> = None;
    loop {
        let query = db
            .client
            .query()
            .table_name(&db.table)
            .expression_attribute_values(":pk", s(user_pk(user_id)))
            .consistent_read(true)
            .set_exclusive_start_key(start.take());
        let query = if with_archive {
            query.key_condition_expression("pk = :pk")
        } else {
            query
                .key_condition_expression("pk = :pk AND sk > :archive_end")
                .expression_attribute_values(":archive_end", s(ARCHIVE_END))
        };
        let out = crate::metrics::timed("StoreCallMs", &[("Call", "user items")], query.send())
            .await
            .map_err(|e| unavailable("user items", e))?;
        for item in out.items() {
            let sk = get_s(item, "sk")?;
            if sk.starts_with("GRANT#") {
                result.grants.push(grant_from_item(item)?);
            } else if sk.starts_with("ARCHIVE#GRANT#") {
                result.archived.push(grant_from_item(item)?);
            } else if sk.starts_with("CHECKPOINT#") {
                result.checkpoints.push(checkpoint_from_item(item)?);
            } else if sk == "WALLET" {
                result.credits = opt_n(item, "balance")?.unwrap_or(0);
            } else if sk == "SESSIONS" {
                result.sessions = sessions_from_item(item)?;
            } else if sk.starts_with("BAN#") {
                result.bans.push(ban_from_item(item)?);
            }
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(result),
        }
    }
}

pub(super) async fn put_sessions(
    db: &DynamoStore,
    user_id: &str,
    sessions: &Sessions,
    expected_version: u64,
) -> Result<PutSessions, StoreError> {
    let put = db
        .client
        .put_item()
        .table_name(&db.table)
        .set_item(Some(sessions_item(user_id, sessions, expected_version + 1)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    let put = if expected_version == 0 {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("version = :v")
            .expression_attribute_values(
                ":v",
                n(i64::try_from(expected_version).unwrap_or(i64::MAX)),
            )
    };
    match put.send().await {
        Ok(_) => Ok(PutSessions::Written),
        Err(e) => match e.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(c)) => {
                Ok(PutSessions::Stale(match c.item() {
                    Some(item) => sessions_from_item(item)?,
                    // Emulators may omit ALL_OLD: read the item instead.
                    None => match db.get(user_pk(user_id), "SESSIONS").await? {
                        Some(item) => sessions_from_item(&item)?,
                        None => Sessions::default(),
                    },
                }))
            }
            _ => Err(unavailable("put sessions", e)),
        },
    }
}

/// Item 0: the ban, conditioned on the stored ban of its scope being `replaces` (none, or
/// the same `created_at` and `reason`); item 1: the audit record.
pub(super) async fn put_ban(
    db: &DynamoStore,
    user_id: &str,
    ban: &Ban,
    replaces: Option<&Ban>,
    audit: &AuditRecord,
) -> Result<Guarded<Option<Ban>>, StoreError> {
    let put = Put::builder()
        .table_name(&db.table)
        .set_item(Some(ban_item(user_id, ban)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    let put = match replaces {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(old) => put
            .condition_expression("created_at = :c AND reason = :r")
            .expression_attribute_values(":c", n(old.created_at))
            .expression_attribute_values(":r", s(&old.reason)),
    };
    let put = put.build().expect("table, item and condition are set");
    let items = vec![
        TransactWriteItem::builder().put(put).build(),
        db.audit_put(audit),
    ];
    ban_outcome(
        db,
        user_id,
        &ban.scope,
        db.transact("put ban", items).await?,
    )
    .await
}

/// Item 0: the ban's delete, conditioned on it being the ban read; item 1: the audit record.
pub(super) async fn lift_ban(
    db: &DynamoStore,
    user_id: &str,
    ban: &Ban,
    audit: &AuditRecord,
) -> Result<Guarded<Option<Ban>>, StoreError> {
    let delete = Delete::builder()
        .table_name(&db.table)
        .set_key(Some(key(user_pk(user_id), &ban_sk(&ban.scope))))
        .condition_expression("created_at = :c AND reason = :r")
        .expression_attribute_values(":c", n(ban.created_at))
        .expression_attribute_values(":r", s(&ban.reason))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("table, key and condition are set");
    let items = vec![
        TransactWriteItem::builder().delete(delete).build(),
        db.audit_put(audit),
    ];
    ban_outcome(
        db,
        user_id,
        &ban.scope,
        db.transact("lift ban", items).await?,
    )
    .await
}

/// What a ban transaction's failure says: the ban stored now (from `ALL_OLD`, or read when
/// an emulator omits it).
async fn ban_outcome(
    db: &DynamoStore,
    user_id: &str,
    scope: &str,
    failed: Option<ConditionFailures>,
) -> Result<Guarded<Option<Ban>>, StoreError> {
    let Some(failed) = failed else {
        return Ok(Guarded::Written);
    };
    match failed.first() {
        Some(Some(Some(old))) => Ok(Guarded::Changed(Some(ban_from_item(old)?))),
        Some(Some(None)) => Ok(Guarded::Changed(
            db.get(user_pk(user_id), &ban_sk(scope))
                .await?
                .map(|item| ban_from_item(&item))
                .transpose()?,
        )),
        _ => Err(StoreError::Corrupt(format!(
            "ban change of {user_id:?} failed on its audit record"
        ))),
    }
}

//! The versioned write of a user's `SESSIONS` item together with an `ADD` to the day
//! counters, in one transaction: the first token of a paid grant (its first access).
//! Simultaneous writers meet on the sessions' version, so a count is made once.

use super::attrs::n;
use super::items::{sessions_from_item, sessions_item};
use super::keys::user_pk;
use super::DynamoStore;
use crate::domain::session::Sessions;
use crate::store::{stats_shard_of, PutSessions, StoreError};
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

/// Item 0: the sessions, conditioned as [`super::users::put_sessions`] conditions them;
/// item 1: the counters of `at`'s day, no condition.
pub(super) async fn put_sessions_counted(
    db: &DynamoStore,
    user_id: &str,
    sessions: &Sessions,
    expected_version: u64,
    at: i64,
    counts: &[(String, i64)],
) -> Result<PutSessions, StoreError> {
    let put = Put::builder()
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
    }
    .build()
    .expect("table, item and condition are set");
    let mut items = vec![TransactWriteItem::builder().put(put).build()];
    if !counts.is_empty() {
        items.push(db.count(at, stats_shard_of(user_id), counts));
    }
    let Some(failed) = db.transact("put_sessions_counted", items).await? else {
        return Ok(PutSessions::Written);
    };
    match failed.into_iter().next().flatten() {
        Some(Some(item)) => Ok(PutSessions::Stale(sessions_from_item(&item)?)),
        // Emulators may omit ALL_OLD (and a missing item has none): read it instead.
        Some(None) => Ok(PutSessions::Stale(
            match db.get(user_pk(user_id), "SESSIONS").await? {
                Some(item) => sessions_from_item(&item)?,
                None => Sessions::default(),
            },
        )),
        // Cancelled for another reason (throttled, say): nothing was written.
        None => Err(StoreError::Unavailable(
            "put sessions counted: transaction cancelled".into(),
        )),
    }
}

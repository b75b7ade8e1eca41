//! The audit trail: `AUDIT#<subject>` / `<sort key>` items, each also in the audit index
//! (`gsi3`, one `AUDIT` partition by time). [`DynamoStore::audit_put`] is the one way an
//! operator change adds its record to its own transaction; the two reads are one query each.

use super::attrs::{get_n, get_s, json_attr, n, opt_s, s, Item};
use super::errors::unavailable;
use super::keys::{audit_pk, key, AUDIT_LOG_PK};
use super::table::GSI3;
use super::DynamoStore;
use crate::domain::audit::{sort_key_from, AuditAction, AuditRecord, AuditSubject};
use crate::store::{AuditPage, StoreError};
use aws_sdk_dynamodb::types::TransactWriteItem;

fn audit_item(r: &AuditRecord) -> Item {
    let sk = r.sort_key();
    let mut item = key(audit_pk(r.subject()), &sk);
    item.insert("gsi3pk".into(), s(AUDIT_LOG_PK));
    item.insert("gsi3sk".into(), s(&sk));
    item.insert("id".into(), s(&r.id));
    item.insert("at".into(), n(r.at));
    item.insert("actor".into(), s(&r.actor));
    item.insert("action".into(), s(r.action.as_str()));
    if let Some(u) = &r.user_id {
        item.insert("user_id".into(), s(u));
    }
    if let Some(o) = &r.order_id {
        item.insert("order_id".into(), s(o));
    }
    if let Some(st) = &r.stream_id {
        item.insert("stream_id".into(), s(st));
    }
    item.insert("before".into(), s(r.before.to_string()));
    item.insert("after".into(), s(r.after.to_string()));
    if let Some(why) = &r.reason {
        item.insert("reason".into(), s(why));
    }
    item.insert("request_id".into(), s(&r.request_id));
    item
}

fn audit_from_item(item: &Item) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: get_s(item, "id")?.to_owned(),
        at: get_n(item, "at")?,
        actor: get_s(item, "actor")?.to_owned(),
        action: AuditAction::parse(get_s(item, "action")?)
            .ok_or_else(|| StoreError::Corrupt("unknown audit action".into()))?,
        user_id: opt_s(item, "user_id"),
        order_id: opt_s(item, "order_id"),
        stream_id: opt_s(item, "stream_id"),
        before: json_attr(item, "before")?.unwrap_or(serde_json::Value::Null),
        after: json_attr(item, "after")?.unwrap_or(serde_json::Value::Null),
        reason: opt_s(item, "reason"),
        request_id: get_s(item, "request_id")?.to_owned(),
    })
}

impl DynamoStore {
    /// The audit record's put, for the transaction of the change it records. Conditioned on
    /// the item not existing: records are never overwritten.
    pub(super) fn audit_put(&self, r: &AuditRecord) -> TransactWriteItem {
        TransactWriteItem::builder()
            .put(self.put(audit_item(r), "attribute_not_exists(pk)"))
            .build()
    }
}

fn page(items: &[Item], limit: usize) -> Result<AuditPage, StoreError> {
    let mut records = items
        .iter()
        .map(audit_from_item)
        .collect::<Result<Vec<_>, _>>()?;
    let more = records.len() > limit;
    records.truncate(limit);
    Ok(AuditPage { records, more })
}

/// One query of the user's history partition, newest first (strongly consistent).
pub(super) async fn user_audit(
    db: &DynamoStore,
    user_id: &str,
    limit: usize,
    before: Option<&str>,
    since: Option<i64>,
) -> Result<AuditPage, StoreError> {
    let mut q = db
        .client
        .query()
        .table_name(&db.table)
        .expression_attribute_values(":pk", s(audit_pk(AuditSubject::User(user_id))))
        .scan_index_forward(false)
        .consistent_read(true)
        // One more than asked for: whether it exists says if there is a next page.
        .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX));
    let from = since.map(sort_key_from);
    // One comparison per key condition: the cursor bounds the query, and `since` ends it
    // (records older than it are dropped, so the page is the last one).
    q = match (before, &from) {
        (Some(b), _) => q
            .key_condition_expression("pk = :pk AND sk < :before")
            .expression_attribute_values(":before", s(b)),
        (None, Some(f)) => q
            .key_condition_expression("pk = :pk AND sk >= :from")
            .expression_attribute_values(":from", s(f)),
        (None, None) => q.key_condition_expression("pk = :pk"),
    };
    let out = q.send().await.map_err(|e| unavailable("user audit", e))?;
    let items: Vec<Item> = out
        .items()
        .iter()
        .filter(|i| {
            from.as_ref()
                .is_none_or(|f| get_s(i, "sk").is_ok_and(|sk| sk >= f.as_str()))
        })
        .cloned()
        .collect();
    page(&items, limit)
}

/// One query of the audit index, oldest first, from `since` (or after the cursor).
pub(super) async fn audit_since(
    db: &DynamoStore,
    since: i64,
    limit: usize,
    after: Option<&str>,
) -> Result<AuditPage, StoreError> {
    let from = sort_key_from(since);
    let out = db
        .client
        .query()
        .table_name(&db.table)
        .index_name(GSI3)
        .key_condition_expression("gsi3pk = :pk AND gsi3sk > :from")
        .expression_attribute_values(":pk", s(AUDIT_LOG_PK))
        // Past the cursor, never before `since`; the `#` of a `since` key sorts before
        // every record of that second.
        .expression_attribute_values(
            ":from",
            s(match after {
                Some(a) if a > from.as_str() => a.to_owned(),
                _ => from,
            }),
        )
        .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| unavailable("audit since", e))?;
    page(out.items(), limit)
}

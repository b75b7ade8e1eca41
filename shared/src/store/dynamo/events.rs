//! The outbox: event records `EVENT#<id>` / `EVENT`, put in the transaction of the change
//! they describe, and the event index (`gsi3`, one partition per UTC day `EVENTS#<day>`,
//! sorted by time) that operators list them by. The attribute `record = EVENT` is what the
//! table's stream is filtered on, so the dispatcher sees event records only.

use super::attrs::{get_n, get_s, n, s, Item};
use super::errors::unavailable;
use super::keys::key;
use super::table::GSI3;
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::event::{sort_key, Event, EventRecord};
use crate::domain::stats::day_of;
use crate::store::{EventPage, Guarded, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use sha2::{Digest, Sha256};

/// The value of `record` on event items: what the stream's filter matches.
pub const EVENT_RECORD: &str = "EVENT";

/// At most this many days are read by one listing: events are kept a few days after they
/// were delivered, so an older `since` finds nothing anyway.
pub const MAX_LISTED_DAYS: i64 = 35;

pub(super) fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

fn events_day_pk(day: &str) -> String {
    format!("EVENTS#{day}")
}

fn event_item(r: &EventRecord) -> Result<Item, StoreError> {
    let e = &r.event;
    let mut item = key(event_pk(&e.id), "EVENT");
    item.insert("record".into(), s(EVENT_RECORD));
    item.insert("id".into(), s(&e.id));
    item.insert("type".into(), s(e.kind.as_str()));
    item.insert("occurred_at".into(), n(e.occurred_at));
    item.insert("user_id".into(), s(&e.user_id));
    if let Some(p) = &e.product_id {
        item.insert("product_id".into(), s(p));
    }
    let body = serde_json::to_string(e).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    item.insert("event".into(), s(body));
    let deliveries =
        serde_json::to_string(&r.deliveries).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    item.insert("deliveries".into(), s(deliveries));
    item.insert(
        "version".into(),
        n(i64::try_from(r.version).unwrap_or(i64::MAX)),
    );
    item.insert("gsi3pk".into(), s(events_day_pk(&day_of(e.occurred_at))));
    item.insert("gsi3sk".into(), s(sort_key(e)));
    Ok(item)
}

pub(super) fn event_from_item(item: &Item) -> Result<EventRecord, StoreError> {
    let event: Event = serde_json::from_str(get_s(item, "event")?)
        .map_err(|e| StoreError::Corrupt(format!("event record: {e}")))?;
    let deliveries = serde_json::from_str(get_s(item, "deliveries")?)
        .map_err(|e| StoreError::Corrupt(format!("event deliveries: {e}")))?;
    let version = u64::try_from(get_n(item, "version")?)
        .map_err(|_| StoreError::Corrupt("negative event version".into()))?;
    Ok(EventRecord {
        event,
        deliveries,
        version,
    })
}

impl DynamoStore {
    /// The puts of a change's events, for the change's own transaction: each conditioned
    /// on its absence (an id names one change, which happens once).
    pub(super) fn event_puts(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        events
            .into_iter()
            .map(|e| {
                Ok(TransactWriteItem::builder()
                    .put(self.put(
                        event_item(&EventRecord::new(e))?,
                        "attribute_not_exists(pk)",
                    ))
                    .build())
            })
            .collect()
    }
}

/// One query of the event index per UTC day from `since` to `until`, oldest first, until
/// `limit` + 1 records are found.
pub(super) async fn events_since(
    db: &DynamoStore,
    since: i64,
    until: i64,
    limit: usize,
    after: Option<&str>,
) -> Result<EventPage, StoreError> {
    let from = format!("{:012}#", since.max(0));
    let upto = format!("{:012}#~", until.max(0));
    // Sort keys have one length, so the cursor followed by `!` is just past it.
    let lower = match after {
        Some(a) if a > from.as_str() => format!("{a}!"),
        _ => from,
    };
    let mut items: Vec<Item> = Vec::new();
    let first_day = since.max(0).div_euclid(86_400);
    let last_day = until
        .max(0)
        .div_euclid(86_400)
        .min(first_day + MAX_LISTED_DAYS);
    for d in first_day..=last_day {
        let want = limit.saturating_add(1).saturating_sub(items.len());
        if want == 0 {
            break;
        }
        let out = db
            .client
            .query()
            .table_name(&db.table)
            .index_name(GSI3)
            .key_condition_expression("gsi3pk = :pk AND gsi3sk BETWEEN :from AND :upto")
            .expression_attribute_values(":pk", s(events_day_pk(&day_of(d * 86_400))))
            .expression_attribute_values(":from", s(&lower))
            .expression_attribute_values(":upto", s(&upto))
            .limit(i32::try_from(want).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| unavailable("events since", e))?;
        // BETWEEN includes the cursor itself: skip it.
        items.extend(
            out.items()
                .iter()
                .filter(|i| after.is_none_or(|a| get_s(i, "gsi3sk").is_ok_and(|sk| sk > a)))
                .cloned(),
        );
    }
    let mut records = items
        .iter()
        .map(event_from_item)
        .collect::<Result<Vec<_>, _>>()?;
    let more = records.len() > limit;
    records.truncate(limit);
    Ok(EventPage { records, more })
}

pub(super) async fn get_event(
    db: &DynamoStore,
    id: &str,
) -> Result<Option<EventRecord>, StoreError> {
    db.get(event_pk(id), "EVENT")
        .await?
        .map(|item| event_from_item(&item))
        .transpose()
}

/// One conditional update of the record's delivery state: `version` must still be the one
/// it was read at; `expires_at` becomes its `ttl`.
pub(super) async fn put_event_deliveries(
    db: &DynamoStore,
    r: &EventRecord,
    expires_at: Option<i64>,
) -> Result<Guarded<Option<EventRecord>>, StoreError> {
    let deliveries =
        serde_json::to_string(&r.deliveries).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let version = i64::try_from(r.version)
        .map_err(|_| StoreError::Corrupt("event version out of range".into()))?;
    let mut update = db
        .client
        .update_item()
        .table_name(&db.table)
        .set_key(Some(key(event_pk(&r.event.id), "EVENT")))
        .condition_expression("attribute_exists(pk) AND version = :before")
        .expression_attribute_values(":before", n(version - 1))
        .expression_attribute_values(":version", n(version))
        .expression_attribute_values(":deliveries", s(deliveries))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    update = match expires_at {
        Some(at) => update
            .update_expression("SET deliveries = :deliveries, version = :version, #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":ttl", n(at)),
        None => update.update_expression("SET deliveries = :deliveries, version = :version"),
    };
    match update.send().await {
        Ok(_) => Ok(Guarded::Written),
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                Some(item) => Ok(Guarded::Changed(Some(event_from_item(item)?))),
                None => Ok(Guarded::Changed(get_event(db, &r.event.id).await?)),
            },
            _ => Err(unavailable("put event deliveries", e)),
        },
    }
}

/// Disabled endpoints are items of one partition, keyed by the SHA-256 of their URL (a URL
/// may be longer than a key and contain anything).
const ENDPOINTS_PK: &str = "WEBHOOKS";

fn endpoint_sk(url: &str) -> String {
    format!("DISABLED#{}", hex::encode(Sha256::digest(url.as_bytes())))
}

pub(super) async fn disable_endpoint(
    db: &DynamoStore,
    url: &str,
    at: i64,
) -> Result<(), StoreError> {
    db.client
        .update_item()
        .table_name(&db.table)
        .set_key(Some(key(ENDPOINTS_PK.to_owned(), &endpoint_sk(url))))
        .update_expression("SET #url = :url, disabled_at = if_not_exists(disabled_at, :at)")
        .expression_attribute_names("#url", "url")
        .expression_attribute_values(":url", s(url))
        .expression_attribute_values(":at", n(at))
        .send()
        .await
        .map_err(|e| unavailable("disable endpoint", e))?;
    Ok(())
}

pub(super) async fn disabled_endpoints(db: &DynamoStore) -> Result<Vec<(String, i64)>, StoreError> {
    let out = db
        .client
        .query()
        .table_name(&db.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
        .expression_attribute_values(":pk", s(ENDPOINTS_PK))
        .expression_attribute_values(":d", s("DISABLED#"))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| unavailable("disabled endpoints", e))?;
    out.items()
        .iter()
        .map(|i| Ok((get_s(i, "url")?.to_owned(), get_n(i, "disabled_at")?)))
        .collect()
}

/// The disabled item's delete, conditioned on it existing, and the audit record.
pub(super) async fn enable_endpoint(
    db: &DynamoStore,
    url: &str,
    audit: &AuditRecord,
) -> Result<bool, StoreError> {
    let delete = Delete::builder()
        .table_name(&db.table)
        .set_key(Some(key(ENDPOINTS_PK.to_owned(), &endpoint_sk(url))))
        .condition_expression("attribute_exists(pk)")
        .build()
        .expect("table, key and condition are set");
    let items = vec![
        TransactWriteItem::builder().delete(delete).build(),
        db.audit_put(audit),
    ];
    match db.transact("enable endpoint", items).await? {
        None => Ok(true),
        Some(failed) if matches!(failed.first(), Some(Some(_))) => Ok(false),
        Some(_) => Err(StoreError::Corrupt(
            "an audit record id was written twice".into(),
        )),
    }
}

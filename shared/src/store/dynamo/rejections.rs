//! Refused callbacks per day and provider: one item each (`REJECTS#<day>` / `<provider>`,
//! a number per reason), on keys nothing else writes, so a flood of bad callbacks meets
//! neither the orders nor the day's counter shards that settlements update.

use super::attrs::{get_s, n, s, Item};
use super::errors::unavailable;
use super::keys::key;
use super::DynamoStore;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;

fn rejects_pk(day: &str) -> String {
    format!("REJECTS#{day}")
}

/// One `UpdateItem`: `ADD <reason> 1` on the day's item of the provider.
pub(super) async fn count_rejection(
    db: &DynamoStore,
    provider: &str,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    let day = db.stats_zone.day_of(at);
    crate::metrics::timed(
        "StoreCallMs",
        &[("Call", "count_rejection")],
        db.client
            .update_item()
            .table_name(&db.table)
            .set_key(Some(key(rejects_pk(&day), provider)))
            .update_expression("ADD #r :one")
            .expression_attribute_names("#r", reason)
            .expression_attribute_values(":one", n(1))
            .send(),
    )
    .await
    .map_err(|e| unavailable("count rejection", e))?;
    Ok(())
}

/// Provider → reason → refusals of `day`: one query of the day's partition (a handful of
/// providers).
pub(super) async fn day_rejections(
    db: &DynamoStore,
    day: &str,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, StoreError> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut start: Option<Item> = None;
    loop {
        let page = db
            .client
            .query()
            .table_name(&db.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(rejects_pk(day)))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable("day rejections", e))?;
        for item in page.items() {
            let provider = get_s(item, "sk")?.to_owned();
            let reasons = out.entry(provider.clone()).or_default();
            for (name, value) in item {
                if let AttributeValue::N(v) = value {
                    let v = v.parse::<i64>().map_err(|_| {
                        StoreError::Corrupt(format!(
                            "rejection count {name} of {provider} on {day} is not an integer"
                        ))
                    })?;
                    reasons.insert(name.clone(), v);
                }
            }
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

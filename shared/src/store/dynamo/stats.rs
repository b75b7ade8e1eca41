//! The daily figures: counter shards and payment records written inside the transactions
//! that create, settle and refund orders, and the reads that add them up per day.

use super::attrs::{get_n, get_s, n, opt_n, opt_s, s, Item};
use super::errors::unavailable;
use super::keys::{key, paid_pk, stats_pk, user_pk};
use super::DynamoStore;
use crate::domain::stats::{DayRecord, Payment};
use crate::store::{stats_shard, Settlement, StoreError, STATS_SHARDS};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::HashMap;

impl DynamoStore {
    /// `ADD` to one day's counter shard (the day of `at` in the store's zone); no condition,
    /// so it never fails its transaction. The names are [`crate::domain::stats`]'s.
    pub(super) fn count(&self, at: i64, shard: u32, adds: &[(String, i64)]) -> TransactWriteItem {
        let day = self.stats_zone.day_of(at);
        let mut expr = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(stats_pk(&day, shard), "STATS")));
        for (i, (name, value)) in adds.iter().enumerate() {
            expr.push(format!("#c{i} :v{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":v{i}"), n(*value));
        }
        let update = update
            .update_expression(format!("ADD {}", expr.join(", ")))
            .build()
            .expect("key, expression and table are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// The items a payment adds for the daily figures: counters, the day's payment record
    /// and the payer's first-payment time.
    pub(super) fn count_paid(
        &self,
        st: &Settlement,
        late: bool,
        created: bool,
    ) -> Vec<TransactWriteItem> {
        let shard = stats_shard(&st.order_id);
        let day = self.stats_zone.day_of(st.paid_at);
        // One item per payment (distinct items never conflict), in the day's partition.
        let mut paid = key(paid_pk(&day), st.order_id.as_str());
        paid.insert("user_id".into(), s(&st.user_id));
        paid.insert("amount".into(), n(st.amount.amount));
        paid.insert("currency".into(), s(st.amount.currency.as_str()));
        paid.insert("paid_at".into(), n(st.paid_at));
        paid.insert("product_id".into(), s(&st.product_id));
        paid.insert("provider".into(), s(&st.provider));
        let payer = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(&st.user_id), "PAYER")))
            .update_expression("SET first_paid_at = if_not_exists(first_paid_at, :t)")
            .expression_attribute_values(":t", n(st.paid_at))
            .build()
            .expect("key, expression and table are set");
        vec![
            self.count(
                st.paid_at,
                shard,
                &[
                    crate::domain::stats::paid_counts(
                        &st.product_id,
                        &st.provider,
                        st.amount,
                        late,
                        created,
                    ),
                    crate::domain::stats::stream_purchase_counts(st.stream_id.as_deref()),
                ]
                .concat(),
            ),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(paid))
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            TransactWriteItem::builder().update(payer).build(),
        ]
    }
}

pub(super) async fn day_records(
    db: &DynamoStore,
    days: &[String],
) -> Result<Vec<DayRecord>, StoreError> {
    let mut records: Vec<DayRecord> = days.iter().map(|d| DayRecord::new(d)).collect();
    let keys = days
        .iter()
        .flat_map(|d| (0..STATS_SHARDS).map(move |sh| key(stats_pk(d, sh), "STATS")))
        .collect();
    for item in db.batch_get(keys).await? {
        let pk = get_s(&item, "pk")?;
        let Some(rec) = records
            .iter_mut()
            .find(|r| pk.starts_with(&format!("STATS#{}#", r.day)))
        else {
            continue;
        };
        // Every number on a counter shard is a counter.
        for (name, value) in &item {
            if let AttributeValue::N(v) = value {
                let v = v.parse::<i64>().map_err(|_| {
                    StoreError::Corrupt(format!("counter {name} of {pk} is not an integer"))
                })?;
                *rec.counters.entry(name.clone()).or_default() += v;
            }
        }
    }
    let mut users = std::collections::BTreeSet::new();
    for rec in &mut records {
        let mut start: Option<Item> = None;
        loop {
            let out = db
                .client
                .query()
                .table_name(&db.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(paid_pk(&rec.day)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("day payments", e))?;
            for item in out.items() {
                let user = get_s(item, "user_id")?.to_owned();
                rec.payments.push(Payment {
                    order_id: get_s(item, "sk")?.to_owned(),
                    user_id: user.clone(),
                    // Payments recorded before products and providers were kept.
                    product_id: opt_s(item, "product_id").unwrap_or_else(|| "unknown".into()),
                    provider: opt_s(item, "provider").unwrap_or_else(|| "unknown".into()),
                    amount: get_n(item, "amount")?,
                    currency: get_s(item, "currency")?.to_owned(),
                    paid_at: get_n(item, "paid_at")?,
                });
                users.insert(user);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
    }
    let mut first: HashMap<String, i64> = HashMap::new();
    for item in db
        .batch_get(users.iter().map(|u| key(user_pk(u), "PAYER")).collect())
        .await?
    {
        let pk = get_s(&item, "pk")?;
        let user = pk
            .strip_prefix("USER#")
            .ok_or_else(|| StoreError::Corrupt(format!("payer item {pk}")))?;
        if let Some(t) = opt_n(&item, "first_paid_at")? {
            first.insert(user.to_owned(), t);
        }
    }
    for rec in &mut records {
        rec.rejections = super::rejections::day_rejections(db, &rec.day).await?;
    }
    for rec in &mut records {
        rec.first_paid = rec
            .payments
            .iter()
            .filter_map(|p| Some((p.user_id.clone(), *first.get(&p.user_id)?)))
            .collect();
    }
    Ok(records)
}

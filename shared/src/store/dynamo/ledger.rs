//! The wallet's ledger: the entry every balance change writes in its own transaction, the
//! one query that reads the balance with the newest entries, a user's spend (debit) and an
//! order paid with coins.

use super::attrs::{get_n, get_s, n, opt_n, opt_s, s, Item};
use super::errors::unavailable;
use super::items::{idem_from_item, idem_item, order_item};
use super::keys::{debit_key_pk, idem_pk, key, ledger_sk, user_pk, WALLET_SK};
use super::DynamoStore;
use crate::domain::ledger::{position, LedgerCursor, LedgerEntry, LedgerSource};
use crate::domain::Order;
use crate::store::{
    CoinPayment, DebitOutcome, DebitRecord, IdempotencyRecord, LedgerPage, Settlement, StoreError,
};
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

fn ledger_item(user: &str, e: &LedgerEntry) -> Item {
    let mut item = key(user_pk(user), &ledger_sk(&e.position()));
    item.insert("id".into(), s(&e.id));
    item.insert("at".into(), n(e.at_ms));
    item.insert("amount".into(), n(e.amount));
    item.insert("source".into(), s(e.source.as_str()));
    item.insert("reason".into(), s(&e.reason));
    if let Some(r) = &e.reference {
        item.insert("reference".into(), s(r));
    }
    item
}

fn ledger_from_item(item: &Item) -> Result<LedgerEntry, StoreError> {
    let source = get_s(item, "source")?;
    Ok(LedgerEntry {
        id: get_s(item, "id")?.to_owned(),
        at_ms: get_n(item, "at")?,
        amount: get_n(item, "amount")?,
        source: LedgerSource::parse(source)
            .ok_or_else(|| StoreError::Corrupt(format!("ledger source {source:?}")))?,
        reason: get_s(item, "reason")?.to_owned(),
        reference: opt_s(item, "reference"),
    })
}

fn debit_key_item(r: &DebitRecord) -> Result<Item, StoreError> {
    let mut item = key(debit_key_pk(&r.user_id), &r.key);
    item.insert("user_id".into(), s(&r.user_id));
    item.insert("idempotency_key".into(), s(&r.key));
    item.insert("request_hash".into(), s(&r.request_hash));
    let entry = serde_json::to_string(&r.entry)
        .map_err(|e| StoreError::Corrupt(format!("ledger entry: {e}")))?;
    item.insert("entry".into(), s(entry));
    item.insert("at".into(), n(r.entry.at_ms));
    Ok(item)
}

fn debit_key_from_item(item: &Item) -> Result<DebitRecord, StoreError> {
    Ok(DebitRecord {
        user_id: get_s(item, "user_id")?.to_owned(),
        key: get_s(item, "idempotency_key")?.to_owned(),
        request_hash: get_s(item, "request_hash")?.to_owned(),
        entry: super::attrs::json_attr(item, "entry")?
            .ok_or_else(|| StoreError::Corrupt("spend key without its entry".into()))?,
    })
}

impl DynamoStore {
    /// The entry's put, beside the balance change it records (conditioned on absent: ids
    /// are fresh, so a failure is corruption).
    pub(super) fn ledger_put(&self, user: &str, e: &LedgerEntry) -> TransactWriteItem {
        TransactWriteItem::builder()
            .put(self.put(ledger_item(user, e), "attribute_not_exists(pk)"))
            .build()
    }

    /// `ADD balance -amount` conditioned on the balance covering `amount` (a missing wallet
    /// or a debt never does), returning the wallet when it does not.
    fn wallet_debit(&self, user: &str, amount: i64) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), WALLET_SK)))
            .update_expression("ADD balance :delta")
            .condition_expression("balance >= :amount")
            .expression_attribute_values(":delta", n(-amount))
            .expression_attribute_values(":amount", n(amount))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("key, expression and table are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// The balance after a failed debit: from `ALL_OLD`, or read when it is absent (no
    /// wallet yet, or an emulator that omits it).
    async fn balance_of(&self, user: &str, old: Option<&Item>) -> Result<i64, StoreError> {
        let item = match old {
            Some(item) => Some(item.clone()),
            None => self.get(user_pk(user), WALLET_SK).await?,
        };
        Ok(match item {
            Some(item) => opt_n(&item, "balance")?.unwrap_or(0),
            None => 0,
        })
    }
}

/// One query of the user's partition from the wallet item on: the balance (first page) and
/// the newest entries, strongly consistent.
pub(super) async fn wallet_ledger(
    db: &DynamoStore,
    user_id: &str,
    limit: usize,
    after: Option<&LedgerCursor>,
) -> Result<LedgerPage, StoreError> {
    // The wallet item, `limit` entries and one more to know whether more follow.
    let wanted = limit.saturating_add(if after.is_none() { 2 } else { 1 });
    let start = after.map(|c| key(user_pk(user_id), &ledger_sk(&position(c.at_ms, &c.id))));
    let out = db
        .client
        .query()
        .table_name(&db.table)
        .key_condition_expression("pk = :pk AND sk >= :wallet")
        .expression_attribute_values(":pk", s(user_pk(user_id)))
        .expression_attribute_values(":wallet", s(WALLET_SK))
        .consistent_read(true)
        .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| unavailable("wallet ledger", e))?;
    let mut balance = after.is_none().then_some(0);
    let mut entries = Vec::new();
    for item in out.items() {
        if get_s(item, "sk")? == WALLET_SK {
            if after.is_none() {
                balance = Some(opt_n(item, "balance")?.unwrap_or(0));
            }
        } else {
            entries.push(ledger_from_item(item)?);
        }
    }
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok(LedgerPage {
        balance,
        entries,
        more,
    })
}

/// Item 0: the wallet, conditioned on covering the amount; item 1: the key, conditioned on
/// absent; item 2: the entry; then its event. A used key wins over a short balance, so a replay is answered
/// as the first request was.
pub(super) async fn debit_wallet(
    db: &DynamoStore,
    rec: &DebitRecord,
) -> Result<DebitOutcome, StoreError> {
    let mut items = vec![
        db.wallet_debit(&rec.user_id, -rec.entry.amount),
        TransactWriteItem::builder()
            .put(db.put(debit_key_item(rec)?, "attribute_not_exists(pk)"))
            .build(),
        db.ledger_put(&rec.user_id, &rec.entry),
    ];
    items.extend(db.event_puts(crate::store::debit_events(rec))?);
    let Some(failed) = db.transact("debit wallet", items).await? else {
        return Ok(DebitOutcome::Debited);
    };
    if let Some(Some(old)) = failed.get(1) {
        let item = match old {
            Some(item) => item.clone(),
            None => db
                .get(debit_key_pk(&rec.user_id), &rec.key)
                .await?
                .ok_or_else(|| StoreError::Unavailable("spend key vanished".into()))?,
        };
        return Ok(DebitOutcome::KeyUsed(debit_key_from_item(&item)?));
    }
    match failed.first() {
        Some(Some(old)) => Ok(DebitOutcome::Insufficient {
            balance: db.balance_of(&rec.user_id, old.as_ref()).await?,
        }),
        _ => Err(StoreError::Corrupt(format!(
            "debit of {:?} failed on its ledger entry",
            rec.user_id
        ))),
    }
}

/// Item 0: the order, already PAID (condition absent); item 1: the wallet, conditioned on
/// covering the price; item 2: the Idempotency-Key when given (absent or expired); then the
/// lifetime claim for a lifetime product, the entry, the grants, the day's figures and the events.
pub(super) async fn pay_with_coins(
    db: &DynamoStore,
    order: &Order,
    idem: Option<&IdempotencyRecord>,
    entry: &LedgerEntry,
    now: i64,
) -> Result<CoinPayment, StoreError> {
    let paid_at = order.paid_at.ok_or_else(|| {
        StoreError::Corrupt(format!("coin order {} has no payment time", order.order_id))
    })?;
    let mut items = vec![
        TransactWriteItem::builder()
            .put(db.put(order_item(order), "attribute_not_exists(pk)"))
            .build(),
        db.wallet_debit(&order.user_id, -entry.amount),
    ];
    if let Some(rec) = idem {
        let idem_put = Put::builder()
            .table_name(&db.table)
            .set_item(Some(idem_item(rec)))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set");
        items.push(TransactWriteItem::builder().put(idem_put).build());
    }
    let claim = crate::store::claims_lifetime(order);
    let claim_at = items.len();
    if claim {
        items.push(super::orders::claim_put(db, order, now));
    }
    items.push(db.ledger_put(&order.user_id, entry));
    for g in order.grants_at(paid_at) {
        items.push(
            TransactWriteItem::builder()
                .put(db.put(
                    super::items::grant_item(&order.user_id, &g),
                    "attribute_not_exists(pk)",
                ))
                .build(),
        );
    }
    let st = Settlement::of_coin_order(order, paid_at, now);
    items.extend(db.count_paid(&st, false, true));
    items.extend(db.event_puts(crate::store::coin_payment_events(order, entry, now))?);
    let Some(failed) = db.transact("pay with coins", items).await? else {
        return Ok(CoinPayment::Paid);
    };
    if let Some(rec) = idem {
        if let Some(Some(old)) = failed.get(2) {
            let old = match old {
                Some(item) => item.clone(),
                None => db
                    .get(idem_pk(&rec.user_id, &rec.key), "IDEM")
                    .await?
                    .ok_or_else(|| StoreError::Unavailable("idempotency key vanished".into()))?,
            };
            return Ok(CoinPayment::KeyExists(idem_from_item(&old)?));
        }
    }
    if claim {
        if let Some(Some(old)) = failed.get(claim_at) {
            return Ok(CoinPayment::Claimed(
                super::orders::claim_held(db, order, old.as_ref()).await?,
            ));
        }
    }
    match failed.get(1) {
        Some(Some(old)) => Ok(CoinPayment::Insufficient {
            balance: db.balance_of(&order.user_id, old.as_ref()).await?,
        }),
        _ => Err(StoreError::Corrupt(format!(
            "coin order {} failed on an item that cannot fail",
            order.order_id
        ))),
    }
}

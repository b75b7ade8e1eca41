//! An operator's change of a user's coins: the `WALLET` item set from the balance read to
//! the new one, with the operator's key, the audit record and the ledger entry, in one
//! transaction.

use super::attrs::{n, opt_n};
use super::keys::{key, user_pk};
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::ledger::{LedgerEntry, LedgerSource};
use crate::store::{wallet_events, AdminKey, StoreError, WalletOutcome};
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

/// Item 0: the wallet, conditioned on the balance read (a missing wallet is 0); item 1: the
/// operator's key; item 2: the audit record. A used key wins over a moved balance, so a
/// replay is answered as the first request was.
pub(super) async fn adjust_wallet(
    db: &DynamoStore,
    user_id: &str,
    before: i64,
    after: i64,
    k: &AdminKey,
    audit: &AuditRecord,
) -> Result<WalletOutcome, StoreError> {
    let condition = if before == 0 {
        "attribute_not_exists(balance) OR balance = :before"
    } else {
        "balance = :before"
    };
    let update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(user_pk(user_id), "WALLET")))
        .update_expression("SET balance = :after")
        .condition_expression(condition)
        .expression_attribute_values(":before", n(before))
        .expression_attribute_values(":after", n(after))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let mut items = vec![
        TransactWriteItem::builder().update(update).build(),
        db.admin_key_put(k),
        db.audit_put(audit),
        db.ledger_put(
            user_id,
            &LedgerEntry {
                id: audit.id.clone(),
                at_ms: audit.at.saturating_mul(1000),
                amount: after - before,
                source: LedgerSource::Admin,
                reason: audit
                    .reason
                    .clone()
                    .unwrap_or_else(|| "changed by an operator".into()),
                reference: Some(audit.id.clone()),
            },
        ),
    ];
    items.extend(db.event_puts(wallet_events(user_id, before, after, audit))?);
    let Some(failed) = db.transact("adjust wallet", items).await? else {
        return Ok(WalletOutcome::Written);
    };
    if let Some(Some(old)) = failed.get(1) {
        return Ok(WalletOutcome::KeyUsed(db.used_key(old.as_ref(), k).await?));
    }
    match failed.first() {
        Some(Some(Some(old))) => Ok(WalletOutcome::BalanceMoved(
            opt_n(old, "balance")?.unwrap_or(0),
        )),
        // Emulators may omit ALL_OLD: read the balance instead.
        Some(Some(None)) => Ok(WalletOutcome::BalanceMoved(
            match db.get(user_pk(user_id), "WALLET").await? {
                Some(item) => opt_n(&item, "balance")?.unwrap_or(0),
                None => 0,
            },
        )),
        _ => Err(StoreError::Corrupt(format!(
            "wallet change of {user_id:?} failed on its audit record"
        ))),
    }
}

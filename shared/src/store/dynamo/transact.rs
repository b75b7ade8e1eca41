//! Transactions: building their conditional puts, running them with retries on conflicts
//! with other transactions, and reading which items' conditions failed and why.

use super::attrs::Item;
use super::errors::unavailable;
use super::DynamoStore;
use crate::store::StoreError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

/// Per item of a cancelled transaction: `Some(old item or None)` where its condition
/// failed, `None` where it did not.
pub(super) type ConditionFailures = Vec<Option<Option<Item>>>;

/// What a cancelled transaction says about each of its items.
enum TxnFailure {
    Conditions(ConditionFailures),
    /// Another transaction touched the same items: retry.
    Conflict,
}

fn classify(reasons: &[CancellationReason]) -> TxnFailure {
    if reasons
        .iter()
        .any(|r| matches!(r.code(), Some("TransactionConflict")))
    {
        return TxnFailure::Conflict;
    }
    TxnFailure::Conditions(
        reasons
            .iter()
            .map(|r| match r.code() {
                Some("ConditionalCheckFailed") => Some(r.item().cloned()),
                _ => None,
            })
            .collect(),
    )
}

const TXN_ATTEMPTS: u32 = 5;

impl DynamoStore {
    /// A conditional put that returns the stored item when its condition fails.
    pub(super) fn put(&self, item: Item, condition: &str) -> Put {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set")
    }

    /// Runs a transaction, retrying only on conflicts with other transactions.
    /// `None` when it applied; otherwise which conditions failed (nothing was written).
    pub(super) async fn transact(
        &self,
        op: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<ConditionFailures>, StoreError> {
        for attempt in 1..=TXN_ATTEMPTS {
            let result = crate::metrics::timed(
                "StoreCallMs",
                &[("Call", op)],
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send(),
            )
            .await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            if let SdkError::ServiceError(service) = &err {
                if let TransactWriteItemsError::TransactionCanceledException(c) = service.err() {
                    match classify(c.cancellation_reasons()) {
                        TxnFailure::Conditions(per_item) => return Ok(Some(per_item)),
                        TxnFailure::Conflict if attempt < TXN_ATTEMPTS => {
                            let pause = 10 * u64::from(attempt) + u64::from(jitter_ms());
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                            continue;
                        }
                        TxnFailure::Conflict => {}
                    }
                }
            }
            return Err(unavailable(op, err));
        }
        Err(StoreError::Unavailable(format!(
            "{op}: transaction conflicts persisted"
        )))
    }
}

/// A few milliseconds of jitter for conflict retries; not security relevant.
fn jitter_ms() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        % 16) as u8
}

//! `POST /wallet/debits`: the caller spends coins on something that is not a product (a
//! gift to the streamer, a tip). One transaction takes the coins only while the balance
//! covers them, writes the ledger entry and remembers the Idempotency-Key (required), so a
//! retry never debits twice and concurrent spends never take the balance below zero; a
//! debt left by a refund blocks every spend until it is repaid.

use super::manual_grants::{check_key, hash_of};
use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::crypto::random_bytes;
use crate::domain::ledger::{LedgerEntry, LedgerSource};
use crate::domain::OrderId;
use crate::store::{DebitOutcome, DebitRecord};
use serde::Deserialize;
use serde_json::json;

/// The largest spend one request makes.
pub const MAX_AMOUNT: i64 = 1_000_000_000;
/// Longest `reason` and `reference`, in bytes.
pub const MAX_TEXT: usize = 200;

/// `POST /wallet/debits`, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    /// Coins to take, a positive whole number.
    pub amount: i64,
    /// What they are spent on, in words ("gift: rocket").
    pub reason: String,
    /// The client's own id of the thing bought (a gift id, a message id).
    pub reference: String,
}

pub enum Debited {
    New(LedgerEntry),
    /// The same key and request were seen before: the entry they wrote.
    Replayed(LedgerEntry),
}

fn text(value: &str, what: &str) -> Result<String, ServiceError> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(format!(
            "{what} must be 1-{MAX_TEXT} bytes of printable text"
        )));
    }
    Ok(v.to_owned())
}

pub async fn debit(
    app: &App,
    user_id: &str,
    req: DebitRequest,
    key: Option<&str>,
) -> Result<Debited, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let key = check_key(key)?;
    if !(1..=MAX_AMOUNT).contains(&req.amount) {
        return Err(ServiceError::BadRequest(format!(
            "amount must be a whole number of coins from 1 to {MAX_AMOUNT}"
        )));
    }
    let reason = text(&req.reason, "reason")?;
    let reference = text(&req.reference, "reference")?;
    let request_hash = hash_of(&json!(["debit", req.amount, reason, reference]));
    let at_ms = app.clock.now_ms();
    let entry = LedgerEntry {
        id: OrderId::from_parts(at_ms.max(0) as u64, random_bytes()).to_string(),
        at_ms,
        amount: -req.amount,
        source: LedgerSource::Spend,
        reason,
        reference: Some(reference),
    };
    let rec = DebitRecord {
        user_id: user_id.to_owned(),
        key: key.to_owned(),
        request_hash: request_hash.clone(),
        entry: entry.clone(),
    };
    match app.store.debit_wallet(&rec).await? {
        DebitOutcome::Debited => {
            tracing::info!(user = %user_id, amount = req.amount, entry = %entry.id, "coins spent");
            crate::metrics::count("CoinsSpent", req.amount, &[]);
            Ok(Debited::New(entry))
        }
        DebitOutcome::KeyUsed(used) if used.request_hash == request_hash => {
            Ok(Debited::Replayed(used.entry))
        }
        DebitOutcome::KeyUsed(_) => Err(ServiceError::IdempotencyMismatch),
        DebitOutcome::Insufficient { balance } => Err(ServiceError::InsufficientCoins {
            balance,
            price: req.amount,
        }),
    }
}

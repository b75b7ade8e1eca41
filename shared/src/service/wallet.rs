//! Coins by hand: an operator adds to or takes from a user's wallet under an
//! Idempotency-Key. The balance is read, then set from that balance to the new one with the
//! key and the audit record (before and after) in one transaction conditioned on the
//! balance read, so concurrent changes apply one at a time and never take the balance
//! below zero unless the operator says so.

use super::manual_grants::{check_key, hash_of, reason_of, replay};
use super::operator::Operator;
use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::audit::{AuditAction, AuditRecord};
use crate::domain::time::rfc3339;
use crate::store::{AdminKey, WalletOutcome};
use serde::Deserialize;
use serde_json::{json, Value};

/// The largest change one request makes, either way.
pub const MAX_AMOUNT: i64 = 1_000_000_000;

/// How many times a change is tried again after another change of the same wallet won:
/// each loss is another change applied, so this bounds a burst, not a wait.
const ATTEMPTS: usize = 64;

/// `POST /admin/users/{user}/wallet`, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletRequest {
    /// Coins to add (negative: to take).
    pub amount: i64,
    pub reason: String,
    /// Let the balance go below zero (taking back coins already spent).
    #[serde(default)]
    pub allow_negative: bool,
}

pub enum Adjusted {
    New(Value),
    Replayed(Value),
}

pub async fn adjust(
    app: &App,
    user_id: &str,
    req: WalletRequest,
    key: Option<&str>,
    op: &Operator,
) -> Result<Adjusted, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let key = check_key(key)?;
    let reason = reason_of(&req.reason)?;
    if req.amount == 0 || req.amount.abs() > MAX_AMOUNT {
        return Err(ServiceError::Unprocessable(format!(
            "amount must be a non-zero whole number of coins within ±{MAX_AMOUNT}"
        )));
    }
    let request_hash = hash_of(&json!(["wallet", req.amount, reason, req.allow_negative]));
    let mut balance = app.store.user_items(user_id).await?.credits;
    for _ in 0..ATTEMPTS {
        let after = balance
            .checked_add(req.amount)
            .ok_or_else(|| ServiceError::Unprocessable("the balance would overflow".into()))?;
        if after < 0 && !req.allow_negative {
            // A repeat of a change that applied is answered as it was, whatever the
            // balance is now.
            if let Some(used) = app.store.admin_key(user_id, key).await? {
                return Ok(Adjusted::Replayed(replay(used, &request_hash)?));
            }
            return Err(ServiceError::Unprocessable(format!(
                "the balance is {balance}: taking {} would leave {after} (send \
                 allow_negative: true to allow it)",
                -req.amount
            )));
        }
        let now_ms = app.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let result = json!({
            "user_id": user_id,
            "amount": req.amount,
            "balance_before": balance,
            "balance_after": after,
            "reason": reason,
            "changed_at": rfc3339(now),
            "changed_by": op.actor,
        });
        let admin_key = AdminKey {
            user_id: user_id.to_owned(),
            key: key.to_owned(),
            request_hash: request_hash.clone(),
            result: result.clone(),
            at: now,
        };
        let audit = AuditRecord {
            user_id: Some(user_id.to_owned()),
            before: json!({ "balance": balance }),
            after: json!({ "balance": after }),
            reason: Some(reason.clone()),
            ..op.record(AuditAction::Wallet, now_ms)
        };
        match app
            .store
            .adjust_wallet(user_id, balance, after, &admin_key, &audit)
            .await?
        {
            WalletOutcome::Written => {
                tracing::info!(user = %user_id, amount = req.amount, after, actor = %op.actor, "wallet changed");
                return Ok(Adjusted::New(result));
            }
            WalletOutcome::KeyUsed(used) => {
                return Ok(Adjusted::Replayed(replay(used, &request_hash)?))
            }
            WalletOutcome::BalanceMoved(now) => balance = now,
        }
    }
    Err(ServiceError::Busy(
        "the wallet kept changing under this request; retry".into(),
    ))
}

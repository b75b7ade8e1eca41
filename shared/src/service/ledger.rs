//! `GET /wallet`: the caller's balance and the movements of their coins, newest first, a
//! page at a time. One store query per page; the balance after each entry is derived from
//! the balance read with the first page (see [`crate::domain::ledger`]) and carried by the
//! cursor to the next.

use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::ledger::{with_balances, LedgerCursor, LedgerEntry};

/// Entries per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The most a caller may ask for in one page.
pub const MAX_LIMIT: usize = 100;

pub struct WalletPage {
    /// The balance now: on the first page only.
    pub balance: Option<i64>,
    /// Newest first, each with the balance it left.
    pub entries: Vec<(LedgerEntry, i64)>,
    pub next_cursor: Option<String>,
}

pub async fn read(
    app: &App,
    user_id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<WalletPage, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ServiceError::BadRequest(format!("limit must be 1-{MAX_LIMIT}")))?,
    };
    let after = cursor
        .map(|c| {
            LedgerCursor::parse(c).ok_or_else(|| {
                ServiceError::BadRequest("cursor is not one this API handed out".into())
            })
        })
        .transpose()?;
    let page = app
        .store
        .wallet_ledger(user_id, limit, after.as_ref())
        .await?;
    let start = match (&after, page.balance) {
        (Some(c), _) => c.balance,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ServiceError::Internal(
                "the first page of a ledger came without the balance".into(),
            ))
        }
    };
    let entries = with_balances(start, &page.entries).ok_or_else(|| {
        ServiceError::Internal(format!("the ledger of {user_id:?} does not add up"))
    })?;
    let next_cursor = match (page.more, entries.last()) {
        (true, Some((last, after_last))) => Some(
            LedgerCursor {
                at_ms: last.at_ms,
                id: last.id.clone(),
                balance: after_last.saturating_sub(last.amount),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(WalletPage {
        balance: page.balance,
        entries,
        next_cursor,
    })
}

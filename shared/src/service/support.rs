//! Customer support, read-only: any user's order, the order behind a provider's transaction
//! id (what a customer's receipt shows), and everything a user holds. Each answer is what the
//! store holds, with no provider call, so support sees what Tollgate decided and why.

use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::checkpoint;
use crate::domain::grant::{self, GrantWindow};
use crate::domain::{Order, OrderId};
use crate::store::UserItems;

/// Any user's order: one read.
pub async fn order(app: &App, id: &str) -> Result<Order, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("order {id:?} not found"));
    let id = OrderId::parse(id).map_err(|_| not_found())?;
    app.store.get_order(&id).await?.ok_or_else(not_found)
}

/// Provider names are short lowercase words; transaction ids become part of a store key.
fn valid_lookup(provider: &str, txn_id: &str) -> bool {
    !provider.is_empty()
        && provider.len() <= 32
        && provider.bytes().all(|b| b.is_ascii_lowercase())
        && !txn_id.is_empty()
        && txn_id.len() <= 512
        && txn_id.bytes().all(|b| b.is_ascii_graphic())
}

/// The order a provider's transaction paid: the transaction's claim, then the order (two
/// reads). The id is the one each provider reports with the payment: WeChat Pay's
/// `transaction_id`, Alipay's `trade_no`, Huya's `orderId`, the App Store's `transactionId`,
/// a Play one-time purchase's token, the sandbox's `transaction_id`.
pub async fn order_by_transaction(
    app: &App,
    provider: &str,
    txn_id: &str,
) -> Result<Order, ServiceError> {
    if !valid_lookup(provider, txn_id) {
        return Err(ServiceError::BadRequest(
            "provider must be a provider's name and transaction_id 1-512 printable characters"
                .into(),
        ));
    }
    let not_found = || {
        ServiceError::NotFound(format!(
            "no payment of {provider} with transaction id {txn_id:?}"
        ))
    };
    let id = app
        .store
        .order_for_txn(provider, txn_id)
        .await?
        .ok_or_else(not_found)?;
    app.store.get_order(&id).await?.ok_or_else(|| {
        ServiceError::Internal(format!(
            "transaction {provider} {txn_id:?} names order {id}, which is missing"
        ))
    })
}

/// What a user holds: every grant ever (revoked and archived ones too), what they may watch now,
/// coins, device sessions and bans.
pub struct UserView {
    pub items: UserItems,
    /// The unrevoked grants still running or to come, with their stacked validity.
    pub live: Vec<GrantWindow>,
}

/// One query of the user's whole partition, archived grants included: `items.grants` is
/// the whole history (a live copy of an archived grant being the newer), `items.archived`
/// is left empty.
pub async fn user(app: &App, user_id: &str) -> Result<UserView, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let mut items = app.store.user_history(user_id).await?;
    items.grants = checkpoint::merge_history(&items.grants, &std::mem::take(&mut items.archived));
    let live = grant::live(&items.grants, app.clock.now());
    Ok(UserView { items, live })
}

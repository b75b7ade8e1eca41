//! Lifetime products (kind `lifetime`: a course, a non-consumable) are bought once: a
//! second purchase by a user who owns one is refused with 409 before any payment is
//! prepared. The check reads the user's partition (one query; the whole history while a
//! checkpoint is stale), only for lifetime products; every other create keeps its budget.
//!
//! The read alone cannot stop two purchases racing each other (both read "not owned"), so
//! the create's own transaction also claims the product for the user
//! ([`crate::store::LifetimeClaim`]) while the order can still be paid: of concurrent
//! purchases one is created, the others are refused with 409 and nothing written. What is
//! left: a payment that arrives after its order expired unpaid (a late payment) is still
//! recorded, whatever was bought since; such an order is refundable.

use super::ServiceError;
use crate::app::App;
use crate::domain::checkpoint;
use crate::domain::grant::product_status_with;
use crate::domain::{Product, ProductKind};

pub async fn refuse_if_owned(
    app: &App,
    user_id: &str,
    product: &Product,
) -> Result<(), ServiceError> {
    if product.kind != ProductKind::Lifetime {
        return Ok(());
    }
    let mut items = app.store.user_items(user_id).await?;
    if checkpoint::is_stale(&items.grants, &items.checkpoints) {
        items = app.store.user_history(user_id).await?;
        items.grants = checkpoint::merge_history(&items.grants, &items.archived);
        items.checkpoints.clear();
    }
    let status = product_status_with(
        &items.grants,
        &items.checkpoints,
        &product.id,
        app.clock.now(),
    );
    if status.can_use {
        return Err(ServiceError::Conflict(format!(
            "product {:?} is a lifetime product this user already owns",
            product.id
        )));
    }
    Ok(())
}

/// The refusal of a purchase while another order of the same lifetime product is in
/// progress for the user.
pub fn in_progress(claim: &crate::store::LifetimeClaim) -> ServiceError {
    ServiceError::Conflict(format!(
        "a purchase of lifetime product {:?} is already in progress (order {}); pay or cancel it",
        claim.product_id, claim.order_id
    ))
}

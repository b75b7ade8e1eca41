//! Lifetime products (kind `lifetime`: a course, a non-consumable) are bought once: a
//! second purchase by a user who owns one is refused with 409 before any payment is
//! prepared. The check reads the user's partition (one query; the whole history while a
//! checkpoint is stale), only for lifetime products; every other create keeps its budget.
//!
//! It is a check before payment, not a condition of the payment's write: two purchases
//! racing each other may both be paid (the second is then refundable, and its grant is a
//! duplicate of a forever grant, harmless for access).

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

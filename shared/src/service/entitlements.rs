//! What a user may watch: one store read of the user's partition, then pure rules.

use super::ServiceError;
use crate::app::App;
use crate::domain::grant::{self, GrantWindow, ProductStatus};

pub struct Entitlements {
    pub grants: Vec<GrantWindow>,
    pub credits: i64,
}

pub async fn list(app: &App, user_id: &str) -> Result<Entitlements, ServiceError> {
    let items = app.store.user_items(user_id).await?;
    Ok(Entitlements {
        grants: grant::live(&items.grants, app.clock.now()),
        credits: items.credits,
    })
}

pub async fn product(
    app: &App,
    user_id: &str,
    product_id: &str,
) -> Result<ProductStatus, ServiceError> {
    if app.catalog.current().product(product_id).is_none() {
        return Err(ServiceError::NotFound(format!(
            "unknown product {product_id:?}"
        )));
    }
    let items = app.store.user_items(user_id).await?;
    Ok(grant::product_status(
        &items.grants,
        product_id,
        app.clock.now(),
    ))
}

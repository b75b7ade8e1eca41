//! What a user may watch: one store read of the user's live grants and checkpoints (the whole
//! history only while a checkpoint is stale), then pure rules; and folding ended grants into
//! checkpoints, so that the read stays the same size however long the history grows.

use super::ServiceError;
use crate::app::App;
use crate::domain::checkpoint::{self, Checkpoint};
use crate::domain::grant::{self, Grant, GrantWindow, ProductStatus};
use crate::store::UserItems;
use std::borrow::Cow;

pub struct Entitlements {
    pub grants: Vec<GrantWindow>,
    pub credits: i64,
}

/// A user's items as a check reads them.
pub struct Reading {
    pub items: UserItems,
    /// Whether a checkpoint was stale, so `items` holds the archive too.
    history: bool,
}

impl Reading {
    /// The grants and checkpoints the rules fold: the live grants after the checkpoints, or
    /// the whole history without them.
    pub fn ledger(&self) -> (Cow<'_, [Grant]>, &[Checkpoint]) {
        if self.history {
            (
                Cow::Owned(checkpoint::merge_history(
                    &self.items.grants,
                    &self.items.archived,
                )),
                &[],
            )
        } else {
            (Cow::Borrowed(&self.items.grants), &self.items.checkpoints)
        }
    }
}

/// One query of the user's partition after the archive; a second, of the whole partition,
/// only when a grant was written before a checkpoint's cutoff since it was made (an old order
/// refunded or its refund reversed, a purchase reported as paid long ago) until a fold
/// repairs the checkpoint.
pub async fn read(app: &App, user_id: &str) -> Result<Reading, ServiceError> {
    let items = app.store.user_items(user_id).await?;
    if checkpoint::is_stale(&items.grants, &items.checkpoints) {
        let items = app.store.user_history(user_id).await?;
        return Ok(Reading {
            items,
            history: true,
        });
    }
    Ok(Reading {
        items,
        history: false,
    })
}

/// Folds one step when the reading shows it is due ([`checkpoint::fold_due`]): at least
/// [`checkpoint::FOLD_AT`] ended grants, or a stale checkpoint. One transaction; a fold
/// that finds something moved on since the read writes nothing and is left to the next
/// check. Never fails the caller: a failure is logged.
pub async fn fold_if_due(app: &App, user_id: &str, reading: &Reading) {
    let now = app.clock.now();
    let items = &reading.items;
    if !checkpoint::fold_due(&items.grants, &items.checkpoints, now) {
        return;
    }
    let archived = reading.history.then_some(items.archived.as_slice());
    let Some(step) = checkpoint::plan(&items.grants, archived, &items.checkpoints, now) else {
        return;
    };
    match app.store.fold_grants(user_id, &step).await {
        Ok(true) => tracing::info!(
            scope = %step.checkpoint.scope,
            archived = step.archive.len(),
            writes = step.writes(),
            "grants folded"
        ),
        Ok(false) => {
            tracing::debug!(scope = %step.checkpoint.scope, "fold skipped: grants changed")
        }
        Err(e) => tracing::warn!(scope = %step.checkpoint.scope, error = %e, "fold failed"),
    }
}

pub async fn list(app: &App, user_id: &str) -> Result<Entitlements, ServiceError> {
    let reading = read(app, user_id).await?;
    let (grants, checkpoints) = reading.ledger();
    Ok(Entitlements {
        grants: grant::live_with(&grants, checkpoints, app.clock.now()),
        credits: reading.items.credits,
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
    let reading = read(app, user_id).await?;
    let (grants, checkpoints) = reading.ledger();
    Ok(grant::product_status_with(
        &grants,
        checkpoints,
        product_id,
        app.clock.now(),
    ))
}

//! The dispatcher function's use case: deliver one event record, read from the table (the
//! stream's image or a retry message only names it), and say what is left to do. The
//! delivery itself, and the state it writes, is `webhook::deliver`, shared with the local
//! runner and an operator's redelivery.

use super::ServiceError;
use crate::app::App;
use crate::webhook::deliver::{Dispatcher, Pass};
use std::collections::BTreeSet;

/// The endpoints a 410 disabled: read once per batch.
pub async fn disabled_endpoints(app: &App) -> Result<BTreeSet<String>, ServiceError> {
    Ok(app
        .store
        .disabled_endpoints()
        .await?
        .into_iter()
        .map(|(url, _)| url)
        .collect())
}

/// One pass over event `id`: the deliveries due are sent and their state written. `None`
/// when there is no such record any more (it expired once every delivery was certain).
pub async fn deliver(
    app: &App,
    id: &str,
    disabled: &BTreeSet<String>,
) -> Result<Option<Pass>, ServiceError> {
    let Some(record) = app.store.get_event(id).await? else {
        return Ok(None);
    };
    let catalog = app.catalog.current();
    let http = app.http.client().map_err(ServiceError::Unavailable)?;
    let dispatcher =
        Dispatcher::new(http, app.config.webhook_retry).with_secrets(app.webhook_secrets.clone());
    let pass = dispatcher
        .deliver(
            &*app.store,
            catalog.lines(),
            record,
            disabled,
            app.clock.now(),
            false,
        )
        .await?;
    Ok(Some(pass))
}

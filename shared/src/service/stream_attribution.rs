//! The stream a purchase is attributed to: the paywall of a stream (its preview ended, or it
//! was never free) sends `stream_id` with `POST /orders`, and the order keeps it so that the
//! day's figures count the purchase under that stream when it is paid (preview → purchase).

use super::ServiceError;
use crate::domain::Catalog;

/// `stream_id` as given, checked against the catalog in force: a stream it has, which the
/// product unlocks. Anything else is refused (422) before anything is written.
pub(super) fn check(
    catalog: &Catalog,
    stream_id: Option<&str>,
    product_id: &str,
) -> Result<Option<String>, ServiceError> {
    let Some(id) = stream_id else {
        return Ok(None);
    };
    let shown: String = id.chars().take(64).collect();
    let stream = catalog
        .stream(id)
        .ok_or_else(|| ServiceError::Unprocessable(format!("unknown stream {shown:?}")))?;
    if !catalog
        .products_unlocking(stream)
        .iter()
        .any(|p| p.id == product_id)
    {
        return Err(ServiceError::Unprocessable(format!(
            "product {:?} does not unlock stream {shown:?}",
            product_id.chars().take(64).collect::<String>()
        )));
    }
    Ok(Some(id.to_owned()))
}

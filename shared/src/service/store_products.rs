//! The catalog as the app stores see it: which catalog product (and plan) a store's own
//! product id sells, the store product id of an offer, and the offer of a store-only product
//! (one the store prices, so the catalog has no price for it).

use super::ServiceError;
use crate::domain::catalog::{Offer, Plan, Product, StoreIds};
use crate::domain::{Catalog, Currency, Money};
use crate::providers::{apple, google};

/// The product id `store` ("apple" or "google") knows `ids` by.
fn id_in<'a>(ids: &'a StoreIds, store: &str) -> Option<&'a str> {
    match store {
        apple::NAME => ids.apple.as_deref(),
        google::NAME => ids.google.as_deref(),
        _ => None,
    }
}

/// The store's own product id for an offer (`store_ids` on the plan, or on the product).
pub fn store_product_id(offer: &Offer<'_>, store: &str) -> Option<String> {
    let ids = offer
        .plan
        .map(|p| &p.store_ids)
        .unwrap_or(&offer.product.store_ids);
    id_in(ids, store).map(str::to_owned)
}

/// The catalog product (and plan) that `store`'s product id `id` sells: a product's own
/// store id, else one of its plans'.
pub fn by_store_id<'a>(
    catalog: &'a Catalog,
    store: &str,
    id: &str,
) -> Option<(&'a Product, Option<&'a Plan>)> {
    catalog.products().iter().find_map(|p| {
        if id_in(&p.store_ids, store) == Some(id) {
            return Some((p, None));
        }
        p.plans
            .iter()
            .find(|pl| id_in(&pl.store_ids, store) == Some(id))
            .map(|pl| (p, Some(pl)))
    })
}

/// The offer of a store-only product (no catalog price): the order carries 0 XXX.
pub fn store_only_offer<'a>(
    catalog: &'a Catalog,
    product_id: &str,
) -> Result<Offer<'a>, ServiceError> {
    let product = catalog.product(product_id).ok_or_else(|| {
        ServiceError::Offer(crate::domain::OfferError::UnknownProduct(
            product_id.to_owned(),
        ))
    })?;
    let xxx = Currency::parse("XXX").map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    let price = Money::new(0, xxx).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    Ok(Offer {
        product,
        plan: None,
        price,
    })
}

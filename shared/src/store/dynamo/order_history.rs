//! A user's orders, newest first, a page at a time: one query of the sparse order-history
//! index (`gsi2`), which every order item carries from its first write, so listing costs
//! nothing at create or settle time. The index is eventually consistent: an order created a
//! moment ago may be missing from the first page for that moment.

use super::attrs::s;
use super::errors::unavailable;
use super::items::order_from_item;
use super::keys::user_orders_pk;
use super::table::GSI2;
use super::DynamoStore;
use crate::domain::OrderId;
use crate::store::{OrderPage, StoreError};

pub(super) async fn user_orders(
    db: &DynamoStore,
    user_id: &str,
    limit: usize,
    before: Option<&OrderId>,
) -> Result<OrderPage, StoreError> {
    let mut q = db
        .client
        .query()
        .table_name(&db.table)
        .index_name(GSI2)
        .expression_attribute_values(":pk", s(user_orders_pk(user_id)))
        .scan_index_forward(false)
        // One more than asked for: whether it exists says if there is a next page, where
        // DynamoDB's own `LastEvaluatedKey` also appears when the page is merely full.
        .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX));
    q = match before {
        Some(id) => q
            .key_condition_expression("gsi2pk = :pk AND gsi2sk < :before")
            .expression_attribute_values(":before", s(id.as_str())),
        None => q.key_condition_expression("gsi2pk = :pk"),
    };
    let out = q.send().await.map_err(|e| unavailable("user orders", e))?;
    let mut orders = out
        .items()
        .iter()
        .map(order_from_item)
        .collect::<Result<Vec<_>, _>>()?;
    let more = orders.len() > limit;
    orders.truncate(limit);
    Ok(OrderPage { orders, more })
}

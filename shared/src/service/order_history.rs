//! A user's orders, newest first, a page at a time: what `GET /orders` shows the user and
//! `GET /admin/users/{user}/orders` shows support. One store query per page.

use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::{Order, OrderId};

/// Orders per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The most a caller may ask for in one page.
pub const MAX_LIMIT: usize = 100;

pub struct Page {
    pub orders: Vec<Order>,
    /// Where the next page starts; `None` on the last page. Opaque to callers (today the id
    /// of the last order shown).
    pub next_cursor: Option<String>,
}

/// One page of `user_id`'s orders; `limit` and `cursor` as the caller sent them.
pub async fn list(
    app: &App,
    user_id: &str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page, ServiceError> {
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
    let before = cursor
        .map(|c| {
            OrderId::parse(c).map_err(|_| {
                ServiceError::BadRequest("cursor is not one this API handed out".into())
            })
        })
        .transpose()?;
    let page = app
        .store
        .user_orders(user_id, limit, before.as_ref())
        .await?;
    let next_cursor = if page.more {
        page.orders.last().map(|o| o.order_id.as_str().to_owned())
    } else {
        None
    };
    Ok(Page {
        orders: page.orders,
        next_cursor,
    })
}

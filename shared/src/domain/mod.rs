//! Pure types and rules. No I/O, no async: anything that needs the time takes `now`.

pub mod audit;
pub mod ban;
pub mod catalog;
pub mod checkpoint;
pub mod event;
pub mod first_access;
pub mod fnv;
pub mod grant;
pub mod ids;
pub mod ledger;
pub mod line;
pub mod money;
pub mod order;
pub mod order_quota;
pub mod publish_key;
pub mod purchase;
pub mod refund;
pub mod refund_request;
pub mod retry;
pub mod session;
pub mod stats;
pub mod subscription;
#[cfg(test)]
mod test_rng;
pub mod time;

pub use catalog::{Catalog, Offer, OfferError, Product, ProductKind, Stream};
pub use grant::{Grant, GrantWindow, Term};
pub use ids::OrderId;
pub use money::{Currency, Money};
pub use order::{Order, OrderEvent, OrderState};
pub use order_quota::OrderQuota;
pub use purchase::{PurchaseState, PurchaseStatus};

//! Use cases. Nothing here knows whether the store is DynamoDB or memory, or whether the
//! caller is a Lambda or the local server.

pub mod apple_purchases;
pub mod audit;
pub mod coin_orders;
pub mod debits;
pub mod dispatch;
pub mod entitlements;
pub mod events;
pub mod google_purchases;
pub mod jobs;
pub mod ledger;
pub mod lifetime;
pub mod manual_grants;
pub mod moderation;
pub mod operator;
pub mod order_history;
pub mod order_metrics;
pub mod orders;
pub mod payments;
pub mod paywall;
mod purchase_changes;
pub mod refund_requests;
pub mod refunds;
pub mod rejections;
pub mod stats;
pub mod store_orders;
pub mod store_products;
pub mod stream_attribution;
pub mod streams;
pub mod support;
pub mod sweep;
pub mod wallet;

use crate::domain::catalog::OfferError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("provider {0:?} is not enabled")]
    ProviderNotEnabled(String),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but not acceptable (an unknown product, a balance that would go
    /// negative): 422.
    #[error("{0}")]
    Unprocessable(String),
    #[error("not entitled to stream {stream_id:?} and no free preview left")]
    PaymentRequired {
        stream_id: String,
        /// (product id, title) of every product that unlocks the stream.
        products: Vec<(String, String)>,
    },
    /// An operator banned the user from the stream (or from every stream).
    #[error("banned: {}", .0.reason)]
    Banned(crate::domain::ban::Ban),
    #[error("this account already plays on {0} devices")]
    DeviceLimit(u32),
    #[error("unknown stream token format {0:?} (native, nginx, tencent, aliyun)")]
    UnknownFormat(String),
    #[error("stream token format {} is not configured ({} is unset)", .0.as_str(), .0.key_variable())]
    FormatNotConfigured(crate::stream::Format),
    /// The user created their quota of orders in this window (`MAX_NEW_ORDERS_PER_USER`).
    #[error(
        "too many new orders: at most {limit} every {window_seconds} s; retry in {retry_after} s"
    )]
    TooManyOrders {
        limit: u32,
        window_seconds: i64,
        /// Seconds until the window ends and orders may be created again.
        retry_after: i64,
    },
    /// A refund an operator asked for that cannot be made (more than remains, an order
    /// not paid, a store's purchase): nothing was recorded.
    #[error("{detail}")]
    RefundRefused {
        detail: String,
        /// What remains refundable, when the amount was the problem.
        remaining: Option<crate::domain::Money>,
    },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(crate::providers::ProviderError),
    /// A dependency (the queue) is down or missing: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Entitled only by grants with `max_views`, and every view was served.
    #[error("every view of stream {stream_id:?} that was bought has been used")]
    ViewsUsed {
        stream_id: String,
        /// (product id, title) of every product that unlocks the stream.
        products: Vec<(String, String)>,
    },
    /// A spend of coins the balance does not cover (or a debt blocks): nothing changed.
    #[error("the balance of {balance} coins does not cover {price}")]
    InsufficientCoins { balance: i64, price: i64 },
}

//! Payment providers: one module each, holding that provider's wire format and nothing else.
//! A verified notification becomes a [`ProviderEvent`]; what to do with it is `service/`'s
//! job. The sweeper and the verifier use [`Provider::query`] and [`Provider::close`], so they
//! work for every provider that implements them.

pub mod alipay;
pub mod apple;
pub mod apple_jws;
pub mod common;
pub mod google;
pub mod huya;
pub mod outbound;
pub mod sandbox;
pub mod wechat;

use crate::domain::{Money, Order, OrderId};
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a verified provider notification (or query) says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    Paid {
        order_id: OrderId,
        provider_txn_id: String,
        amount: Money,
        /// When the provider says the payment happened, if it says.
        paid_at: Option<i64>,
    },
    Refunded {
        order_id: OrderId,
        provider_txn_id: String,
        amount: Money,
    },
    /// A sale the provider made through its own storefront (Huya's panel): no order of ours
    /// exists yet, so the callback creates it already paid.
    Sold(Sale),
}

/// What a provider-side sale bought, resolved against the catalog by the provider module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    /// Derived from the provider's own order id, so every retry names the same order.
    pub order_id: OrderId,
    pub user_id: String,
    pub product_id: String,
    pub plan_id: Option<String>,
    pub provider_txn_id: String,
    /// The catalog price: the provider reports none.
    pub amount: Money,
    pub paid_at: i64,
}

impl ProviderEvent {
    pub fn order_id(&self) -> &OrderId {
        match self {
            ProviderEvent::Paid { order_id, .. } | ProviderEvent::Refunded { order_id, .. } => {
                order_id
            }
            ProviderEvent::Sold(sale) => &sale.order_id,
        }
    }
}

/// A callback exactly as received: verification works on these raw bytes, never on a
/// re-serialised body.
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl CallbackRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a callback was refused before touching any state (bad signature, stale, malformed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CallbackRejection {
    /// A short, stable label for logs and metrics ("bad_signature", "stale_timestamp", ...).
    pub code: &'static str,
    /// Safe to log and to answer with: never secrets.
    pub reason: String,
    /// Whether the answer is a client error (4xx) or a transient failure.
    pub status: StatusCode,
}

/// What a provider says about an order when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    Paid(ProviderEvent),
    NotPaid,
    /// Closed at the provider (or never known to it): it can no longer be paid.
    Closed,
    /// This provider has no query API (sandbox, Huya, the stores' own flows).
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Network trouble, timeouts, 5xx, garbage: try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused for good (bad request, unknown merchant): retrying won't help.
    #[error("provider refused: {0}")]
    Refused(String),
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Whether `payment_params` calls the provider (a prepay), so creates check their
    /// Idempotency-Key before it rather than only when writing.
    fn prepares_remotely(&self) -> bool {
        false
    }

    /// Whether this provider is an app store, which may sell store-only products
    /// (subscriptions priced by the store, not the catalog).
    fn sells_store_products(&self) -> bool {
        false
    }

    /// Whether callbacks may arrive as `GET` with the data in the query string (Huya).
    fn accepts_get_callbacks(&self) -> bool {
        false
    }

    /// Refuses a create request this provider cannot serve (unknown channel, missing openid)
    /// before anything is written or sent, so the client gets a 400, not a provider error.
    fn check_request(&self, _channel: Option<&str>, _payer: &Payer) -> Result<(), String> {
        Ok(())
    }

    /// What the client needs to pay a new order (may call the provider, e.g. a prepay).
    async fn payment_params(
        &self,
        order: &Order,
        payer: &Payer,
    ) -> Result<serde_json::Value, ProviderError>;

    /// Verifies a callback and parses it. `Ok(None)`: genuine, but nothing to apply (e.g.
    /// "waiting for the buyer"): acknowledge it.
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection>;

    /// The provider's "got it, stop retrying" answer.
    fn acknowledge(&self) -> Response<Bytes>;

    /// The provider's failure answer, so that a genuine notification is retried.
    fn refuse(&self, status: StatusCode, reason: &str) -> Response<Bytes>;

    /// What the provider says about `order`. The default is for providers with no query API
    /// (sandbox, Huya, the stores' own flows): the sweeper then simply expires the order.
    async fn query(&self, _order: &Order) -> Result<QueryResult, ProviderError> {
        Ok(QueryResult::Unsupported)
    }

    /// Makes the order unpayable at the provider. The default is for providers without
    /// orders of their own: nothing to close.
    async fn close(&self, _order: &Order) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// What the client told us about the paying account, for providers that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payer {
    /// WeChat JSAPI (Official Account / Mini Program) payments name the payer's openid.
    pub openid: Option<String>,
}

/// The enabled providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<&'static str, Arc<dyn Provider>>,
}

impl Providers {
    pub fn insert(&mut self, p: Arc<dyn Provider>) {
        self.by_name.insert(p.name(), p);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.by_name.keys()
    }
}

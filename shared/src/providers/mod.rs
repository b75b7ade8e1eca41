//! Payment providers. Each provider is a folder: `wire.rs` holds its wire format (types,
//! signing, verification, parsing; pure: no HTTP, clock, configuration, store or service),
//! `mod.rs` its configuration (read from its own variables), its outbound calls and the
//! capability traits below that it implements. Rooms shared by several providers:
//! [`rsa`] (RSA keys), [`china_time`] (China Standard Time formats), [`wire_error`] (why a
//! message or request was refused), [`notification`] (what the China providers' wire
//! modules return) and [`outbound`] (the one HTTPS client).
//!
//! A verified notification becomes a [`ProviderEvent`]; what it means for an order is
//! `service/`'s job, and the HTTP answer is `api/`'s: providers answer in data
//! ([`CallbackAnswer`]).

pub mod alipay;
pub mod apple;
pub mod china_time;
pub mod google;
pub mod huya;
pub mod notification;
pub mod outbound;
pub mod rsa;
pub mod sandbox;
pub mod wechat;
pub mod wire_error;

use crate::domain::refund::RefundRef;
use crate::domain::refund_request::RefundRequest;
use crate::domain::{Money, Order, OrderId};
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wire_error::VerifyError;

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
    /// Money went back to the payer. What it does to the order is the service's rule
    /// (`domain::refund`): refunds add up on the order, and access ends when they reach what
    /// was paid.
    Refunded {
        order_id: OrderId,
        /// The payment refunded.
        provider_txn_id: String,
        /// This refund's amount, or all refunds so far, as `refund` says.
        refunded: Money,
        /// The order's total as the provider states it.
        order_total: Money,
        /// Which refund this is, so that a repeated notification counts once.
        refund: RefundRef,
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

impl From<VerifyError> for CallbackRejection {
    /// The one mapping from a wire module's refusal to the label (logs, metrics) and status
    /// the callback is answered with.
    fn from(e: VerifyError) -> Self {
        let (code, status) = match &e {
            VerifyError::BadSignature => ("bad_signature", StatusCode::UNAUTHORIZED),
            VerifyError::UnknownKey(_) => ("unknown_key", StatusCode::UNAUTHORIZED),
            VerifyError::StaleTimestamp => ("stale_timestamp", StatusCode::UNAUTHORIZED),
            VerifyError::WrongApp => ("wrong_app", StatusCode::FORBIDDEN),
            VerifyError::WrongMerchant => ("wrong_merchant", StatusCode::FORBIDDEN),
            VerifyError::Malformed(_) => ("malformed", StatusCode::BAD_REQUEST),
            VerifyError::Unsupported(_) => ("unsupported", StatusCode::BAD_REQUEST),
        };
        CallbackRejection {
            code,
            reason: e.to_string(),
            status,
        }
    }
}

/// The answer a provider expects to its callback, as plain data: `api/callbacks.rs` turns
/// it into the HTTP response. Getting it wrong has a price: a success answer to a callback we
/// failed to apply tells the provider to stop retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    pub status: StatusCode,
    /// `None`: no body (WeChat Pay's 204-style success).
    pub content_type: Option<&'static str>,
    pub body: Bytes,
}

impl CallbackAnswer {
    pub fn empty(status: StatusCode) -> Self {
        CallbackAnswer {
            status,
            content_type: None,
            body: Bytes::new(),
        }
    }

    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        CallbackAnswer {
            status,
            content_type: Some("application/json"),
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn text(status: StatusCode, body: &'static str) -> Self {
        CallbackAnswer {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: Bytes::from_static(body.as_bytes()),
        }
    }
}

/// What a provider says about an order when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    Paid(ProviderEvent),
    NotPaid,
    /// Closed at the provider (or never known to it): it can no longer be paid.
    Closed,
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

/// A provider that calls `POST /callbacks/{provider}` (sandbox, WeChat Pay, Alipay, Huya).
/// The app stores have their own notification routes and do not implement it.
pub trait CallbackVerifier: Send + Sync {
    /// Whether callbacks may arrive as `GET` with the data in the query string (Huya).
    fn accepts_get(&self) -> bool {
        false
    }

    /// Whether verifying costs a few microseconds (an HMAC, an MD5): then it runs on the
    /// async worker that received the callback, where handing it to the CPU pool
    /// (`App::cpu`) would cost more than the work. Signature checks with RSA or decryption are
    /// not cheap.
    fn cheap_to_verify(&self) -> bool {
        false
    }

    /// Verifies a callback and parses it. `Ok(None)`: genuine, but nothing to apply (e.g.
    /// "waiting for the buyer"): acknowledge it.
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection>;

    /// The provider's "got it, stop retrying" answer.
    fn acknowledge(&self) -> CallbackAnswer;

    /// The provider's failure answer, so that a genuine notification is retried.
    fn refuse(&self, status: StatusCode, reason: &str) -> CallbackAnswer;
}

/// A provider through which `POST /orders` creates payments (every provider but Huya, whose
/// sales happen in its own panel and arrive by callback).
#[async_trait]
pub trait PaymentCreator: Send + Sync {
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
}

/// A provider with orders of its own that can be asked about and closed (WeChat Pay,
/// Alipay): the sweeper and the verifier's re-query jobs use it. Orders of providers without
/// it simply expire.
#[async_trait]
pub trait OrderQuery: Send + Sync {
    /// What the provider says about `order`.
    async fn query(&self, order: &Order) -> Result<QueryResult, ProviderError>;

    /// Makes the order unpayable at the provider.
    async fn close(&self, order: &Order) -> Result<(), ProviderError>;
}

/// What a provider says about a refund Tollgate asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAnswer {
    /// The money went back: count `refunded` as `refund` names it (the same way the
    /// provider's refund notification names it, so a notification of it counts nothing
    /// more).
    Confirmed {
        refunded: Money,
        refund: RefundRef,
        provider_refund_id: Option<String>,
    },
    /// Accepted and still being processed: ask again later.
    Pending { provider_refund_id: Option<String> },
    /// Refused for good (closed, abnormal, or an error answer): the provider's code.
    Failed { code: String },
    /// Only to a query: the provider knows no such refund (the request never arrived).
    Unknown,
}

/// A provider through which Tollgate can give money back (WeChat Pay, Alipay, the sandbox).
/// The app stores and Huya refund through their own processes and do not implement it.
#[async_trait]
pub trait RefundIssuer: Send + Sync {
    /// Asks for `req` (of `req.amount` minor units of `order`'s paid amount), under its
    /// `out_refund_no`, which the provider dedupes on: sending the same request again never
    /// refunds twice.
    async fn refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError>;

    /// Asks how `req` went.
    async fn query_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError>;
}

/// Product titles as the payer sees them on the provider's page (WeChat Pay's
/// `description`, Alipay's `subject`), from the catalog in force when the payment is made.
#[derive(Debug, Clone)]
pub struct ProductTitles(crate::live_catalog::CatalogView);

impl ProductTitles {
    pub fn from_catalog(catalog: &crate::live_catalog::CatalogView) -> Self {
        ProductTitles(catalog.clone())
    }

    /// The title of `product_id` (its id when the catalog has none), cut to the provider's
    /// limit of `max` characters.
    pub fn get(&self, product_id: &str, max: usize) -> String {
        let catalog = self.0.current();
        let title = catalog
            .product(product_id)
            .map_or(product_id, |p| p.title.as_str());
        title.chars().take(max).collect()
    }
}

/// What the client told us about the paying account, for providers that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payer {
    /// WeChat JSAPI (Official Account / Mini Program) payments name the payer's openid.
    pub openid: Option<String>,
}

/// The enabled providers, by name, and what each of them can do.
#[derive(Clone, Default)]
pub struct Providers {
    enabled: BTreeSet<&'static str>,
    creators: BTreeMap<&'static str, Arc<dyn PaymentCreator>>,
    verifiers: BTreeMap<&'static str, Arc<dyn CallbackVerifier>>,
    queries: BTreeMap<&'static str, Arc<dyn OrderQuery>>,
    refunds: BTreeMap<&'static str, Arc<dyn RefundIssuer>>,
}

impl Providers {
    /// Marks `name` enabled; its capabilities are added with the `with_*` calls.
    pub fn enable(&mut self, name: &'static str) -> &mut Self {
        self.enabled.insert(name);
        self
    }

    pub fn with_creator(&mut self, name: &'static str, p: Arc<dyn PaymentCreator>) -> &mut Self {
        self.enabled.insert(name);
        self.creators.insert(name, p);
        self
    }

    pub fn with_verifier(&mut self, name: &'static str, p: Arc<dyn CallbackVerifier>) -> &mut Self {
        self.enabled.insert(name);
        self.verifiers.insert(name, p);
        self
    }

    pub fn with_query(&mut self, name: &'static str, p: Arc<dyn OrderQuery>) -> &mut Self {
        self.enabled.insert(name);
        self.queries.insert(name, p);
        self
    }

    pub fn with_refunds(&mut self, name: &'static str, p: Arc<dyn RefundIssuer>) -> &mut Self {
        self.enabled.insert(name);
        self.refunds.insert(name, p);
        self
    }

    /// A provider with orders of its own: it creates payments, calls back, can be queried and
    /// refunds.
    pub fn with_full_service<P>(&mut self, name: &'static str, p: Arc<P>) -> &mut Self
    where
        P: PaymentCreator + CallbackVerifier + OrderQuery + RefundIssuer + 'static,
    {
        self.with_creator(name, p.clone())
            .with_verifier(name, p.clone())
            .with_query(name, p.clone())
            .with_refunds(name, p)
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    pub fn creator(&self, name: &str) -> Option<&Arc<dyn PaymentCreator>> {
        self.creators.get(name)
    }

    pub fn verifier(&self, name: &str) -> Option<&Arc<dyn CallbackVerifier>> {
        self.verifiers.get(name)
    }

    pub fn query(&self, name: &str) -> Option<&Arc<dyn OrderQuery>> {
        self.queries.get(name)
    }

    pub fn refunds(&self, name: &str) -> Option<&Arc<dyn RefundIssuer>> {
        self.refunds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.enabled.iter()
    }
}

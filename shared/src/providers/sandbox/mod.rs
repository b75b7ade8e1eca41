//! Tollgate's own test-mode provider, so the whole flow runs with no account anywhere: it
//! creates "payments" whose pay URL makes the local server sign and send the callback, and
//! verifies those callbacks ([`wire`]) like any real provider's. It has no orders of its own
//! to query or close; a refund Tollgate starts is confirmed at once.

pub mod wire;

use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, PaymentCreator,
    ProviderError, ProviderEvent, RefundAnswer, RefundIssuer,
};
use crate::config::Secret;
use crate::domain::refund::RefundRef;
use crate::domain::refund_request::RefundRequest;
use crate::domain::{Order, OrderId};
use async_trait::async_trait;
use http::StatusCode;
pub use wire::{callback_body, sign, verify, Status, SIGNATURE_HEADER};

pub const NAME: &str = "sandbox";

/// What a client needs to "pay" a sandbox order.
pub fn payment_params(public_base_url: &str, order_id: &OrderId) -> serde_json::Value {
    serde_json::json!({ "pay_url": format!("{public_base_url}/sandbox/orders/{order_id}/pay") })
}

/// The sandbox provider: it creates payments and verifies their callbacks.
pub struct Sandbox {
    /// Absent in functions that never verify callbacks (only provider-callback gets the key).
    secret: Option<Secret>,
    /// Asked at each payment: see [`Sandbox::with_base_url`].
    public_base_url: Box<dyn Fn() -> String + Send + Sync>,
}

impl Sandbox {
    /// A sandbox whose pay URLs start with `public_base_url`.
    pub fn new(secret: Option<Secret>, public_base_url: impl Into<String>) -> Self {
        let base: String = public_base_url.into();
        Self::with_base_url(secret, move || base.clone())
    }

    /// A sandbox that asks `public_base_url` for the base of each pay URL, because the
    /// local server learns its own address only once it has bound its port, after the
    /// providers were built.
    pub fn with_base_url(
        secret: Option<Secret>,
        public_base_url: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        Sandbox {
            secret,
            public_base_url: Box::new(public_base_url),
        }
    }

    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }
}

#[async_trait]
impl PaymentCreator for Sandbox {
    async fn payment_params(
        &self,
        order: &Order,
        _payer: &super::Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        Ok(payment_params(&(self.public_base_url)(), &order.order_id))
    }
}

impl CallbackVerifier for Sandbox {
    /// An HMAC-SHA256 of a few hundred bytes: about a microsecond.
    fn cheap_to_verify(&self) -> bool {
        true
    }

    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let Some(secret) = &self.secret else {
            tracing::error!("sandbox callback received but SANDBOX_SECRET is not configured");
            return Err(CallbackRejection {
                code: "not_configured",
                reason: "sandbox callbacks are not configured".into(),
                status: StatusCode::SERVICE_UNAVAILABLE,
            });
        };
        let v = verify(
            secret.expose(),
            &req.body,
            req.header(SIGNATURE_HEADER),
            now,
        )
        .map_err(CallbackRejection::from)?;
        Ok(Some(match v.status {
            Status::Paid => ProviderEvent::Paid {
                order_id: v.order_id,
                provider_txn_id: v.transaction_id,
                amount: v.amount,
                paid_at: Some(v.timestamp),
            },
            // The sandbox names no refunds: its amount is what was refunded in all, and the
            // pay page refunds whole orders.
            Status::Refunded => ProviderEvent::Refunded {
                order_id: v.order_id,
                provider_txn_id: v.transaction_id,
                refunded: v.amount,
                order_total: v.amount,
                refund: RefundRef::SoFar(None),
            },
        }))
    }

    fn acknowledge(&self) -> CallbackAnswer {
        CallbackAnswer::json(StatusCode::OK, &serde_json::json!({"ok": true}))
    }

    /// A problem+json body, like the rest of Tollgate's own API.
    fn refuse(&self, status: StatusCode, reason: &str) -> CallbackAnswer {
        let body = serde_json::json!({
            "type": "https://tollgate.dev/problems/callback-rejected",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": reason,
        });
        CallbackAnswer {
            content_type: Some("application/problem+json"),
            ..CallbackAnswer::json(status, &body)
        }
    }
}

/// The sandbox has no money to move: a refund Tollgate asks for is confirmed at once,
/// counted by its own id.
#[async_trait]
impl RefundIssuer for Sandbox {
    async fn refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        Ok(RefundAnswer::Confirmed {
            refunded: crate::domain::Money {
                amount: req.amount,
                currency: order.amount.currency,
            },
            refund: RefundRef::Single(req.out_refund_no.clone()),
            provider_refund_id: None,
        })
    }

    /// Nothing is kept: a request still open was never answered, so it is sent again.
    async fn query_refund(
        &self,
        _order: &Order,
        _req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        Ok(RefundAnswer::Unknown)
    }
}

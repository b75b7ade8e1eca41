//! Tollgate's own test-mode provider, so the whole flow runs with no account anywhere.
//!
//! `POST /callbacks/sandbox` carries JSON `{order_id, transaction_id, status, amount,
//! timestamp}` signed with `X-Sandbox-Signature` = lowercase hex HMAC-SHA256(SANDBOX_SECRET,
//! raw body). It is treated exactly like a real provider: verified on the raw bytes, stale
//! timestamps refused, and only then parsed.

use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, PaymentCreator,
    ProviderError, ProviderEvent,
};
use crate::config::Secret;
use crate::domain::{Money, Order, OrderId};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const NAME: &str = "sandbox";
pub const SIGNATURE_HEADER: &str = "x-sandbox-signature";
/// How far a callback's timestamp may be from our clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("missing X-Sandbox-Signature header")]
    MissingSignature,
    #[error("signature does not match the body")]
    BadSignature,
    #[error("timestamp is more than {MAX_SKEW_SECONDS} s from the server clock")]
    StaleTimestamp,
    #[error("malformed callback: {0}")]
    Malformed(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub order_id: String,
    pub transaction_id: String,
    pub status: Status,
    pub amount: Money,
    /// Unix seconds.
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Paid,
    Refunded,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length")
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Verifies the signature (constant time) and freshness, then parses.
pub fn verify(
    secret: &str,
    body: &[u8],
    signature: Option<&str>,
    now: i64,
) -> Result<ProviderEvent, SandboxError> {
    let signature = signature.ok_or(SandboxError::MissingSignature)?;
    let expected = hex::decode(signature.trim()).map_err(|_| SandboxError::BadSignature)?;
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.verify_slice(&expected)
        .map_err(|_| SandboxError::BadSignature)?;
    let cb: Callback =
        serde_json::from_slice(body).map_err(|e| SandboxError::Malformed(e.to_string()))?;
    if (now - cb.timestamp).abs() > MAX_SKEW_SECONDS {
        return Err(SandboxError::StaleTimestamp);
    }
    let order_id = OrderId::parse(&cb.order_id)
        .map_err(|_| SandboxError::Malformed("order_id is not an order id".into()))?;
    let txn = cb.transaction_id.trim();
    if txn.is_empty() || txn.len() > 64 || !txn.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(SandboxError::Malformed(
            "transaction_id must be 1-64 printable characters without '#'".into(),
        ));
    }
    if cb.amount.amount <= 0 {
        return Err(SandboxError::Malformed("amount must be positive".into()));
    }
    Ok(match cb.status {
        Status::Paid => ProviderEvent::Paid {
            order_id,
            provider_txn_id: txn.to_owned(),
            amount: cb.amount,
            paid_at: Some(cb.timestamp),
        },
        // The sandbox refunds whole orders: the amount is both the refund and the total.
        Status::Refunded => ProviderEvent::Refunded {
            order_id,
            provider_txn_id: txn.to_owned(),
            refunded: cb.amount,
            order_total: cb.amount,
        },
    })
}

/// The body the sandbox "payment page" sends on a customer's behalf.
pub fn callback_body(
    order_id: &OrderId,
    transaction_id: &str,
    status: Status,
    amount: Money,
    now: i64,
) -> Vec<u8> {
    serde_json::to_vec(&Callback {
        order_id: order_id.to_string(),
        transaction_id: transaction_id.to_owned(),
        status,
        amount,
        timestamp: now,
    })
    .unwrap_or_default()
}

/// What a client needs to "pay" a sandbox order.
pub fn payment_params(public_base_url: &str, order_id: &OrderId) -> serde_json::Value {
    serde_json::json!({ "pay_url": format!("{public_base_url}/sandbox/orders/{order_id}/pay") })
}

/// The sandbox as a [`Provider`]: it has no orders of its own to query or close.
pub struct Sandbox {
    /// Absent in functions that never verify callbacks (only provider-callback gets the key).
    secret: Option<Secret>,
    public_base_url: String,
}

impl Sandbox {
    pub fn new(secret: Option<Secret>, public_base_url: impl Into<String>) -> Self {
        Sandbox {
            secret,
            public_base_url: public_base_url.into(),
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
        Ok(payment_params(&self.public_base_url, &order.order_id))
    }
}

impl CallbackVerifier for Sandbox {
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
        verify(
            secret.expose(),
            &req.body,
            req.header(SIGNATURE_HEADER),
            now,
        )
        .map(Some)
        .map_err(|e| CallbackRejection {
            code: match e {
                SandboxError::MissingSignature | SandboxError::BadSignature => "bad_signature",
                SandboxError::StaleTimestamp => "stale_timestamp",
                SandboxError::Malformed(_) => "malformed",
            },
            status: match e {
                SandboxError::Malformed(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            },
            reason: e.to_string(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    const SECRET: &str = "s3cret";

    fn body(now: i64) -> Vec<u8> {
        callback_body(
            &OrderId::from_parts(1, [1; 10]),
            "T1",
            Status::Paid,
            Money::new(900, Currency::CNY).unwrap(),
            now,
        )
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256 test case 2 of RFC 4231.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_signed_fresh_callbacks() {
        let b = body(1000);
        let ev = verify(SECRET, &b, Some(&sign(SECRET, &b)), 1100).unwrap();
        assert!(
            matches!(ev, ProviderEvent::Paid { ref provider_txn_id, .. } if provider_txn_id == "T1")
        );
    }

    #[test]
    fn rejects_forgeries_and_staleness() {
        let b = body(1000);
        let sig = sign(SECRET, &b);
        assert_eq!(
            verify(SECRET, &b, None, 1000),
            Err(SandboxError::MissingSignature)
        );
        assert_eq!(
            verify("other", &b, Some(&sig), 1000),
            Err(SandboxError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &b, Some("zz"), 1000),
            Err(SandboxError::BadSignature)
        );
        let mut tampered = b.clone();
        let i = tampered.iter().position(|&c| c == b'9').unwrap();
        tampered[i] = b'1';
        assert_eq!(
            verify(SECRET, &tampered, Some(&sig), 1000),
            Err(SandboxError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &b, Some(&sig), 1000 + 301),
            Err(SandboxError::StaleTimestamp)
        );
        let junk = b"{\"order_id\":1}";
        assert!(matches!(
            verify(SECRET, junk, Some(&sign(SECRET, junk)), 1000),
            Err(SandboxError::Malformed(_))
        ));
    }
}

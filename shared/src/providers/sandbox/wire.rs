//! The sandbox's wire format: `POST /callbacks/sandbox` carries JSON `{order_id,
//! transaction_id, status, amount, timestamp}` signed with `X-Sandbox-Signature` = lowercase
//! hex HMAC-SHA256(SANDBOX_SECRET, raw body). Pure: verified on the raw bytes, stale
//! timestamps refused, and only then parsed, exactly like a real provider's.

use super::super::wire_error::VerifyError;
use crate::domain::{Money, OrderId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-sandbox-signature";
/// How far a callback's timestamp may be from our clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

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

/// A callback whose signature, freshness and fields were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub order_id: OrderId,
    pub transaction_id: String,
    pub status: Status,
    pub amount: Money,
    pub timestamp: i64,
}

/// Verifies the signature (constant time) and freshness, then parses.
pub fn verify(
    secret: &str,
    body: &[u8],
    signature: Option<&str>,
    now: i64,
) -> Result<Verified, VerifyError> {
    let signature = signature.ok_or(VerifyError::BadSignature)?;
    let expected = hex::decode(signature.trim()).map_err(|_| VerifyError::BadSignature)?;
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.verify_slice(&expected)
        .map_err(|_| VerifyError::BadSignature)?;
    let cb: Callback =
        serde_json::from_slice(body).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if (now - cb.timestamp).abs() > MAX_SKEW_SECONDS {
        return Err(VerifyError::StaleTimestamp);
    }
    let order_id = OrderId::parse(&cb.order_id)
        .map_err(|_| VerifyError::Malformed("order_id is not an order id".into()))?;
    let txn = cb.transaction_id.trim();
    if txn.is_empty() || txn.len() > 64 || !txn.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(VerifyError::Malformed(
            "transaction_id must be 1-64 printable characters without '#'".into(),
        ));
    }
    if cb.amount.amount <= 0 {
        return Err(VerifyError::Malformed("amount must be positive".into()));
    }
    Ok(Verified {
        order_id,
        transaction_id: txn.to_owned(),
        status: cb.status,
        amount: cb.amount,
        timestamp: cb.timestamp,
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
    let status = match status {
        Status::Paid => "paid",
        Status::Refunded => "refunded",
    };
    serde_json::json!({
        "order_id": order_id.as_str(),
        "transaction_id": transaction_id,
        "status": status,
        "amount": { "amount": amount.amount, "currency": amount.currency.as_str() },
        "timestamp": now,
    })
    .to_string()
    .into_bytes()
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
        assert_eq!(ev.transaction_id, "T1");
        assert_eq!(ev.status, Status::Paid);
    }

    #[test]
    fn rejects_forgeries_and_staleness() {
        let b = body(1000);
        let sig = sign(SECRET, &b);
        assert_eq!(
            verify(SECRET, &b, None, 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("other", &b, Some(&sig), 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &b, Some("zz"), 1000),
            Err(VerifyError::BadSignature)
        );
        let mut tampered = b.clone();
        let i = tampered.iter().position(|&c| c == b'9').unwrap();
        tampered[i] = b'1';
        assert_eq!(
            verify(SECRET, &tampered, Some(&sig), 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &b, Some(&sig), 1000 + 301),
            Err(VerifyError::StaleTimestamp)
        );
        let junk = b"{\"order_id\":1}";
        assert!(matches!(
            verify(SECRET, junk, Some(&sign(SECRET, junk)), 1000),
            Err(VerifyError::Malformed(_))
        ));
    }
}

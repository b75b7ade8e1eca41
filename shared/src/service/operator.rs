//! Who makes an operator's change and in which request, and the audit record each change
//! writes in its own transaction. Apart from the trail's reading (`audit`), so that a use
//! case that records changes never depends on the code that lists them.

use crate::domain::audit::{AuditAction, AuditRecord};
use crate::domain::OrderId;
use serde_json::Value;

/// Who makes a change and in which request: what every audit record names.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The token's `sub`, or the IAM ARN.
    pub actor: String,
    /// API Gateway's request id, or one the local server made up.
    pub request_id: String,
}

impl Operator {
    /// A new record of `action` by this operator at `now_ms`, with a fresh ULID; the caller
    /// fills in the subject, before/after and reason.
    pub fn record(&self, action: AuditAction, now_ms: i64) -> AuditRecord {
        let id = OrderId::from_parts(
            u64::try_from(now_ms).unwrap_or(0),
            crate::crypto::random_bytes::<10>(),
        );
        AuditRecord {
            id: id.as_str().to_owned(),
            at: now_ms.div_euclid(1000),
            actor: self.actor.clone(),
            action,
            user_id: None,
            order_id: None,
            stream_id: None,
            before: Value::Null,
            after: Value::Null,
            reason: None,
            request_id: self.request_id.clone(),
        }
    }
}

/// A request id for a request that arrived without one (the local server).
pub fn new_request_id() -> String {
    hex::encode(crate::crypto::random_bytes::<16>())
}

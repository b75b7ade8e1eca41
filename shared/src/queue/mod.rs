//! Background jobs: one SQS queue with a dead-letter queue in AWS, an
//! in-process queue with the same retry semantics in the local server.

pub mod memory;
pub mod sqs;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use memory::MemoryQueue;
pub use sqs::SqsQueue;

/// A job is JSON with a `kind` and its ids. Handlers are idempotent: a job may run twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Ask the order's provider whether it was paid; settle or expire accordingly.
    RequeryOrder { order_id: String },
    /// Fetch a Play purchase's state from the Play Developer API and apply it.
    VerifyGooglePurchase {
        purchase_token: String,
        product_id: String,
        /// The account that handed the token over (absent for notifications).
        user_id: Option<String>,
        order_id: Option<String>,
    },
    /// Acknowledge (and, for consumables, consume) a Play purchase; retried until done.
    AcknowledgeGooglePurchase {
        purchase_token: String,
        product_id: String,
        subscription: bool,
        consume: bool,
    },
}

impl Job {
    /// The message body. A job that cannot be encoded is refused, never sent as an empty
    /// message (which the verifier could only dead-letter).
    pub fn to_body(&self) -> Result<String, QueueError> {
        serde_json::to_string(self).map_err(|e| QueueError(format!("encoding job: {e}")))
    }
}

/// What running a job concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// Transient failure: run again after `delay_s`.
    Retry {
        delay_s: u32,
        reason: String,
    },
    /// Can never succeed (malformed message): straight to the dead-letter queue.
    DeadLetter {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues `job`, visible after `delay_s` seconds (SQS allows up to 900).
    async fn send(&self, job: &Job, delay_s: u32) -> Result<(), QueueError>;
}

//! Where the dispatcher function parks a delivery to try again: an SQS queue whose messages
//! are only `{"event_id": …}`. The record in the table says what is due and when; a message
//! only wakes the dispatcher, so a duplicate or early message costs a read and nothing else.
//! Given-up deliveries are reported to the queue's dead-letter queue, whose depth alarms.

use crate::queue::{QueueError, SqsQueue};
use async_trait::async_trait;

/// The longest delay SQS gives a new message.
pub const MAX_DELAY_S: u32 = 900;
/// The longest visibility SQS gives a received message.
pub const MAX_VISIBILITY_S: u32 = 43_200;

/// A retry message's body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryMessage {
    pub event_id: String,
}

impl RetryMessage {
    pub fn body(&self) -> String {
        // A struct of one string always serialises.
        serde_json::json!({ "event_id": self.event_id }).to_string()
    }

    pub fn parse(body: &str) -> Option<RetryMessage> {
        let m: RetryMessage = serde_json::from_str(body).ok()?;
        crate::domain::event::is_event_id(&m.event_id).then_some(m)
    }
}

#[async_trait]
pub trait RetryQueue: Send + Sync {
    /// Wakes the dispatcher for `event_id` after `delay_s` (at most [`MAX_DELAY_S`]).
    async fn send(&self, event_id: &str, delay_s: u32) -> Result<(), QueueError>;
    /// Hides a received message for `delay_s` more (at most [`MAX_VISIBILITY_S`]).
    async fn change_visibility(&self, receipt: &str, delay_s: u32) -> Result<(), QueueError>;
    /// Reports `body` on the dead-letter queue with `reason`.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError>;
}

#[async_trait]
impl RetryQueue for SqsQueue {
    async fn send(&self, event_id: &str, delay_s: u32) -> Result<(), QueueError> {
        let body = RetryMessage {
            event_id: event_id.to_owned(),
        }
        .body();
        self.send_body(&body, delay_s.min(MAX_DELAY_S)).await
    }

    async fn change_visibility(&self, receipt: &str, delay_s: u32) -> Result<(), QueueError> {
        SqsQueue::change_visibility(self, receipt, delay_s.min(MAX_VISIBILITY_S)).await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        match SqsQueue::dead_letter(self, body, reason).await? {
            true => Ok(()),
            false => Err(QueueError(
                "WEBHOOK_DEAD_LETTER_QUEUE_URL is not set".into(),
            )),
        }
    }
}

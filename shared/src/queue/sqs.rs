//! The SQS queue. Retries are SQS's own redelivery: a failed message's visibility is set to
//! the backoff and it is reported as a batch item failure; after `maxReceiveCount` (8)
//! receives SQS moves it to the dead-letter queue. A message that can never succeed is sent
//! to the dead-letter queue directly so it does not block its batch for eight rounds.

use super::{Job, JobQueue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dead_letter_url: Option<String>,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue").field("url", &self.url).finish()
    }
}

fn err(op: &str, e: impl std::error::Error + 'static) -> QueueError {
    QueueError(format!("{op}: {}", DisplayErrorContext(&e)))
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
            dead_letter_url,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes a received message visible again after `delay_s` (its retry backoff).
    pub async fn change_visibility(&self, receipt: &str, delay_s: u32) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(delay_s.min(43_200)).unwrap_or(43_200))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("change visibility", e))
    }

    /// Sends `body` as it is, visible after `delay_s` (at most 900): for queues whose
    /// messages are not [`Job`]s (the webhook retry queue).
    pub async fn send_body(&self, body: &str, delay_s: u32) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay_s.min(900)).unwrap_or(900))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("send", e))
    }

    /// Puts a poison message on the dead-letter queue; `false` when none is configured (SQS's
    /// redrive will then move it after the maximum receives).
    pub async fn dead_letter(&self, body: &str, reason: &str) -> Result<bool, QueueError> {
        let Some(dlq) = &self.dead_letter_url else {
            return Ok(false);
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes(
                "reason",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason.chars().take(256).collect::<String>())
                    .build()
                    .map_err(|e| QueueError(e.to_string()))?,
            )
            .send()
            .await
            .map(|_| true)
            .map_err(|e| err("dead-letter", e))
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, job: &Job, delay_s: u32) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(job.to_body()?)
            .delay_seconds(delay_s.min(900) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("send", e))
    }
}

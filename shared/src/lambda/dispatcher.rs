//! The `dispatcher` function: two event sources, one delivery.
//!
//! - **The table's stream**, filtered to inserted event records (`record = EVENT`): each
//!   record is delivered at once. Only INSERTs: the dispatcher's own state writes are
//!   MODIFYs of the same items and must not wake it again, and nothing else modifies an
//!   event record. A delivery left pending becomes a message on the retry queue, delayed
//!   until it is due (at most 15 minutes; later ones wait again on arrival). A record that
//!   could not be handled (the store or the queue failing) is reported as the batch's
//!   failure: the stream gives it, and those after it, again, so a crash mid-batch loses
//!   nothing; what was posted before the crash is posted again under the same `webhook-id`.
//! - **The retry queue** (`{"event_id"}` messages): the record is read again; deliveries
//!   not yet due hide the message until they are (at most 12 h at a time); due ones are
//!   sent; what is still pending is a new delayed message. A record given up (`Failed`,
//!   nothing pending) is reported on the dead-letter queue, whose depth alarms.
//!
//! The record in the table is the truth throughout: a message or a stream image only names
//! it, so duplicates and early wake-ups cost a read.

use crate::app::App;
use crate::service::{dispatch, ServiceError};
use crate::webhook::retry_queue::{RetryMessage, RetryQueue, MAX_DELAY_S, MAX_VISIBILITY_S};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A DynamoDB stream batch as Lambda hands it over: only what the dispatcher reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: Option<String>,
    pub dynamodb: StreamChange,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamChange {
    #[serde(rename = "Keys", default)]
    pub keys: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
}

impl StreamRecord {
    /// The event id of an event record's key (`pk` = `EVENT#<id>`, `sk` = `EVENT`).
    pub fn event_id(&self) -> Option<&str> {
        let string = |k: &str| self.dynamodb.keys.get(k)?.get("S")?.as_str();
        if string("sk")? != "EVENT" {
            return None;
        }
        let id = string("pk")?.strip_prefix("EVENT#")?;
        crate::domain::event::is_event_id(id).then_some(id)
    }
}

/// The answer to a stream batch with `ReportBatchItemFailures`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamBatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<StreamItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The dispatcher's `main`: builds the app once (a retry queue is required) and serves both
/// event sources.
pub async fn run_dispatcher() -> Result<(), lambda_runtime::Error> {
    super::init_tracing();
    let app = crate::app::App::from_env(crate::config::Profile::Lambda).await?;
    if app.webhook_queue.is_none() {
        return Err("configuration WEBHOOK_QUEUE_URL: required by the dispatcher".into());
    }
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let app = app.clone();
            async move {
                let answer = crate::log_format::in_invocation(
                    Some(&event.context),
                    handle_event(&app, event.payload),
                );
                answer.await
            }
        },
    ))
    .await
}

/// Routes one invocation by its records' source. An event of neither shape is an error:
/// Lambda retries it (and, from the stream, halves the batch), never drops it as done.
pub async fn handle_event(
    app: &App,
    event: serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let source = event["Records"][0]["eventSource"].as_str().unwrap_or("");
    let answer = match source {
        "aws:sqs" => {
            let batch: SqsEvent = serde_json::from_value(event)?;
            serde_json::to_value(handle_retry_batch(app, batch).await)?
        }
        "aws:dynamodb" => {
            let batch: StreamEvent = serde_json::from_value(event)?;
            serde_json::to_value(handle_stream_batch(app, batch).await)?
        }
        "" if event["Records"].as_array().is_some_and(Vec::is_empty) => {
            serde_json::to_value(StreamBatchResponse::default())?
        }
        other => return Err(format!("not a stream or SQS batch: {other:?}").into()),
    };
    Ok(answer)
}

fn queue(app: &App) -> Result<&dyn RetryQueue, ServiceError> {
    app.webhook_queue
        .as_deref()
        .ok_or_else(|| ServiceError::Unavailable("WEBHOOK_QUEUE_URL is not set".into()))
}

fn unavailable(e: crate::queue::QueueError) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

/// Seconds from `now` to `at`, at least 1 (a due time already passed waits a second).
fn wait(now: i64, at: i64, most: u32) -> u32 {
    u32::try_from((at - now).max(1))
        .unwrap_or(u32::MAX)
        .min(most)
}

/// Delivers each inserted event record. At the first record that fails, that record is
/// reported and the rest are left: the stream hands them over again from there.
pub async fn handle_stream_batch(app: &App, batch: StreamEvent) -> StreamBatchResponse {
    app.catalog.refresh_if_due(app.clock.now_ms()).await;
    let mut response = StreamBatchResponse::default();
    let mut disabled: Option<BTreeSet<String>> = None;
    for record in batch.records {
        let sequence = record.dynamodb.sequence_number.clone();
        if record.event_name.as_deref() != Some("INSERT") {
            continue;
        }
        let Some(id) = record.event_id().map(str::to_owned) else {
            // Outside the filter: not an event record, nothing to deliver.
            tracing::warn!(sequence = %sequence, "stream record that is not an event record: skipped");
            continue;
        };
        if let Err(e) = stream_record(app, &id, &mut disabled).await {
            tracing::warn!(event_id = %id, error = %e, "event not dispatched: the stream will give it again");
            response.batch_item_failures.push(StreamItemFailure {
                item_identifier: sequence,
            });
            break;
        }
    }
    response
}

async fn stream_record(
    app: &App,
    id: &str,
    disabled: &mut Option<BTreeSet<String>>,
) -> Result<(), ServiceError> {
    let disabled = match disabled {
        Some(d) => d,
        None => disabled.insert(dispatch::disabled_endpoints(app).await?),
    };
    let Some(pass) = dispatch::deliver(app, id, disabled).await? else {
        return Ok(());
    };
    let now = app.clock.now();
    match pass.next_try {
        Some(at) => queue(app)?
            .send(id, wait(now, at, MAX_DELAY_S))
            .await
            .map_err(unavailable)?,
        None if pass.failed > 0 => dead_letter(app, id, pass.failed).await?,
        None => {}
    }
    Ok(())
}

async fn dead_letter(app: &App, id: &str, failed: u32) -> Result<(), ServiceError> {
    let body = RetryMessage {
        event_id: id.to_owned(),
    }
    .body();
    let reason = format!("{failed} delivery(ies) given up");
    queue(app)?
        .dead_letter(&body, &reason)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Runs each retry message; a failure of one never fails the others.
pub async fn handle_retry_batch(app: &App, batch: SqsEvent) -> SqsBatchResponse {
    app.catalog.refresh_if_due(app.clock.now_ms()).await;
    let mut response = SqsBatchResponse::default();
    let mut disabled: Option<BTreeSet<String>> = None;
    for message in batch.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let receipt = message.receipt_handle.as_deref();
        let done = match retry_message(app, body, receipt, &mut disabled).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "webhook retry failed: the message comes back");
                false
            }
        };
        if !done {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    response
}

/// `Ok(true)` when the message is finished with; `Ok(false)` when it was hidden until the
/// record's next delivery is due and must be reported back.
async fn retry_message(
    app: &App,
    body: &str,
    receipt: Option<&str>,
    disabled: &mut Option<BTreeSet<String>>,
) -> Result<bool, ServiceError> {
    let q = queue(app)?;
    let Some(message) = RetryMessage::parse(body) else {
        tracing::error!(body, "not a webhook retry message: dead-lettered");
        q.dead_letter(body, "not a webhook retry message")
            .await
            .map_err(unavailable)?;
        return Ok(true);
    };
    let disabled = match disabled {
        Some(d) => d,
        None => disabled.insert(dispatch::disabled_endpoints(app).await?),
    };
    let Some(pass) = dispatch::deliver(app, &message.event_id, disabled).await? else {
        return Ok(true);
    };
    let now = app.clock.now();
    match pass.next_try {
        // Nothing was due yet: the same message waits (visibility) until it is.
        Some(at) if pass.sent == 0 => {
            let receipt = receipt.ok_or_else(|| {
                ServiceError::Unavailable("a retry message without a receipt handle".into())
            })?;
            q.change_visibility(receipt, wait(now, at, MAX_VISIBILITY_S))
                .await
                .map_err(unavailable)?;
            Ok(false)
        }
        Some(at) => {
            q.send(&message.event_id, wait(now, at, MAX_DELAY_S))
                .await
                .map_err(unavailable)?;
            Ok(true)
        }
        None if pass.failed > 0 => {
            dead_letter(app, &message.event_id, pass.failed).await?;
            Ok(true)
        }
        None => Ok(true),
    }
}

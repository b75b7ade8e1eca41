//! The Lambda side of `api`: turns API Gateway events into plain HTTP requests for
//! [`crate::api::handle`], carrying the authorizer's verified `sub` and roles along.

use crate::api::{handle, AuthorizerIdentity, Routes};
use crate::app::App;
use crate::config::Profile;
use crate::log_format::in_invocation;
use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;

pub mod dispatcher;
pub use dispatcher::run_dispatcher;

/// JSON logs with the keys of Powertools for AWS Lambda ([`crate::log_format`]), level from
/// `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` (default info). Also turns on EMF metrics, which only
/// mean something in CloudWatch.
pub fn init_tracing() {
    crate::metrics::enable();
    let _ = tracing_subscriber::fmt()
        .event_format(crate::log_format::PowertoolsJson::from_env())
        .with_env_filter(crate::log_format::filter())
        .try_init();
}

/// What every HTTP function's `main` does: build the app once, then serve events.
pub async fn run_http(routes: Routes) -> Result<(), lambda_http::Error> {
    init_tracing();
    let app = App::from_env(Profile::Lambda).await?;
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let app = app.clone();
        async move {
            let context = req.lambda_context_ref().cloned();
            let response = in_invocation(context.as_ref(), handle_event(&app, routes, req)).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
    .await
}

pub async fn handle_event(app: &Arc<App>, routes: Routes, req: Request) -> Response<Body> {
    let identity = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| {
                Some(AuthorizerIdentity {
                    sub: j.claims.get("sub")?.clone(),
                    roles: j.claims.get(app.auth.roles_claim()).cloned(),
                })
            }),
        _ => None,
    };
    let iam = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|i| i.user_arn.clone().or_else(|| i.caller_id.clone())),
        _ => None,
    };
    let source_ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok()),
        _ => None,
    };
    let request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    let (mut parts, body) = req.into_parts();
    if let Some(id) = request_id {
        parts.extensions.insert(crate::api::RequestId(id));
    }
    if let Some(ip) = source_ip {
        parts
            .extensions
            .insert(crate::api::ClientAddr(ip.to_canonical()));
    }
    if let Some(identity) = identity {
        parts.extensions.insert(identity);
    }
    if let Some(arn) = iam {
        parts.extensions.insert(crate::api::IamCaller(arn));
    }
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let resp = handle(app, routes, http::Request::from_parts(parts, body)).await;
    let (parts, body) = resp.into_parts();
    let body = match String::from_utf8(body.to_vec()) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::from_parts(parts, body)
}

/// The sweeper's `main`: an EventBridge schedule invokes it; the event's content does not
/// matter, the invocation deadline does.
pub async fn run_sweeper() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let app = App::from_env(Profile::Lambda).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let app = app.clone();
            async move {
                let deadline = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
                let report = in_invocation(Some(&event.context), handle_schedule(&app, deadline));
                Ok::<_, std::convert::Infallible>(report.await)
            }
        },
    ))
    .await
}

/// One scheduled sweep, stopping before `deadline_ms` (the invocation's deadline).
pub async fn handle_schedule(app: &App, deadline_ms: i64) -> crate::service::sweep::SweepReport {
    app.catalog.refresh_if_due(app.clock.now_ms()).await;
    let report = crate::service::sweep::sweep(app, deadline_ms).await;
    tracing::info!(?report, "sweep finished");
    report
}

/// The verifier's `main`: SQS batches with `ReportBatchItemFailures`.
pub async fn run_verifier() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let app = App::from_env(Profile::Lambda).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let app = app.clone();
            async move {
                let batch = handle_sqs_batch(&app, event.payload);
                Ok::<_, std::convert::Infallible>(in_invocation(Some(&event.context), batch).await)
            }
        },
    ))
    .await
}

/// Runs each message; a failure of one never fails the others. Retryable failures get their
/// backoff as the message's visibility and are reported back to SQS; poison messages go to
/// the dead-letter queue and are reported done.
pub async fn handle_sqs_batch(
    app: &App,
    batch: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use crate::app::Queue;
    use crate::queue::JobOutcome;
    app.catalog.refresh_if_due(app.clock.now_ms()).await;
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    let sqs = match &app.queue {
        Some(Queue::Sqs(q)) => Some(q.clone()),
        _ => None,
    };
    for record in batch.records {
        let id = record.message_id.clone().unwrap_or_default();
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let body = record.body.as_deref().unwrap_or_default();
        let failed = match crate::service::jobs::run(app, body, receives).await {
            JobOutcome::Done => false,
            JobOutcome::Retry { delay_s, reason } => {
                crate::metrics::count("VerificationRetries", 1, &[]);
                tracing::warn!(message_id = %id, receives, delay_s, reason, "job will be retried");
                if let (Some(q), Some(receipt)) = (&sqs, &record.receipt_handle) {
                    if let Err(e) = q.change_visibility(receipt, delay_s).await {
                        tracing::warn!(message_id = %id, error = %e, "could not set the backoff");
                    }
                }
                true
            }
            JobOutcome::DeadLetter { reason } => {
                tracing::error!(message_id = %id, reason, "poison message");
                match &sqs {
                    Some(q) => !matches!(q.dead_letter(body, &reason).await, Ok(true)),
                    None => true,
                }
            }
        };
        if failed {
            let mut f = aws_lambda_events::event::sqs::BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    response
}

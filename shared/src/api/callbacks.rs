//! `POST /callbacks/{provider}`: measure the request against the provider's caps, verify on
//! the raw request (off the async workers: `App::cpu`), apply exactly once, and answer in the
//! provider's own terms so that a genuine notification is retried when we fail.

use super::callback_limits::{self, OverCap};
use super::problem::problem;
use crate::app::App;
use crate::providers::{CallbackAnswer, CallbackRequest};
use crate::service::payments::{self, Applied, ApplyError, Rejected};
use crate::service::rejections;
use bytes::Bytes;
use http::{Request, Response, StatusCode};

pub(super) async fn provider_callback(
    app: &App,
    provider: &str,
    req: &Request<Bytes>,
) -> Response<Bytes> {
    let Some(p) = app.providers.verifier(provider) else {
        let detail = if app.providers.is_enabled(provider) {
            format!("provider {provider:?} does not call back here")
        } else {
            format!("provider {provider:?} is not enabled")
        };
        return problem(StatusCode::NOT_FOUND, "provider-not-enabled", detail);
    };
    if let Err(over) = callback_limits::of(provider).check(req) {
        rejections::refused(app, provider, over.code(), &over).await;
        return answer(p.refuse(over.status(), &over.to_string()));
    }
    let raw = CallbackRequest {
        method: req.method().clone(),
        query: req.uri().query().map(str::to_owned),
        headers: req.headers().clone(),
        body: req.body().clone(),
    };
    let now = app.clock.now();
    let verifying = std::time::Instant::now();
    let verified = if p.cheap_to_verify() {
        Ok(p.verify_callback(&raw, now))
    } else {
        let verifier = p.clone();
        app.cpu
            .run(move || verifier.verify_callback(&raw, now))
            .await
    };
    crate::metrics::timing(
        "CallbackVerifyMs",
        verifying.elapsed(),
        &[("Provider", provider)],
    );
    let event = match verified {
        Ok(Ok(Some(ev))) => ev,
        Ok(Ok(None)) => return answer(p.acknowledge()),
        Ok(Err(rejection)) => {
            rejections::refused(app, provider, rejection.code, &rejection.reason).await;
            return answer(p.refuse(rejection.status, &rejection.reason));
        }
        Err(busy) => {
            rejections::refused(app, provider, "busy", &busy).await;
            return answer(p.refuse(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()));
        }
    };
    let order_id = event.order_id().clone();
    match payments::apply(app, provider, event).await {
        Ok(applied) => {
            if applied == Applied::Duplicate {
                tracing::info!(provider, order_id = %order_id, "duplicate callback acknowledged");
            }
            answer(p.acknowledge())
        }
        Err(ApplyError::Rejected(r)) => {
            tracing::warn!(provider, order_id = %order_id, reason = %r, "callback rejected");
            crate::metrics::count(
                "CallbackRejected",
                1,
                &[("Provider", provider), ("Reason", r.code())],
            );
            rejections::record(app, provider, r.code()).await;
            let status = match r {
                Rejected::UnknownOrder => StatusCode::NOT_FOUND,
                Rejected::AmountMismatch { .. } | Rejected::WrongProvider => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                _ => StatusCode::CONFLICT,
            };
            answer(p.refuse(status, &format!("order {order_id}: {r}")))
        }
        Err(ApplyError::Store(e)) => {
            tracing::error!(provider, order_id = %order_id, error = %e, "store failure during callback");
            answer(p.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, retry later",
            ))
        }
    }
}

/// The problem+json answer of a provider route without failure answers of its own (the app
/// stores' notifications) to a request over its caps; counted like a refused callback.
pub(super) async fn over_cap_problem(app: &App, provider: &str, over: OverCap) -> Response<Bytes> {
    rejections::refused(app, provider, over.code(), &over).await;
    problem(over.status(), over.problem_type(), over.to_string())
}

/// The provider's answer as an HTTP response. Built without a fallible builder, so a
/// failure answer can never turn into some other status on the way out.
fn answer(a: CallbackAnswer) -> Response<Bytes> {
    match a.content_type {
        Some(ct) => super::problem::response(a.status, ct, a.body),
        None => {
            let mut r = Response::new(a.body);
            *r.status_mut() = a.status;
            r
        }
    }
}

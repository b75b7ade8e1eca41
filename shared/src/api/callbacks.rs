//! `POST /callbacks/{provider}`: verify on the raw request, apply exactly once, and answer
//! in the provider's own terms so that a genuine notification is retried when we fail.

use super::problem::problem;
use crate::app::App;
use crate::providers::{CallbackAnswer, CallbackRequest};
use crate::service::payments::{self, Applied, ApplyError, Rejected};
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
    if req.method() == http::Method::GET && !p.accepts_get() {
        let mut r = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{provider} calls back with POST"),
        );
        r.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return r;
    }
    let raw = CallbackRequest {
        method: req.method().clone(),
        query: req.uri().query().map(str::to_owned),
        headers: req.headers().clone(),
        body: req.body().clone(),
    };
    let event = match p.verify_callback(&raw, app.clock.now()) {
        Ok(Some(ev)) => ev,
        Ok(None) => return answer(p.acknowledge()),
        Err(rejection) => {
            tracing::warn!(provider, code = rejection.code, reason = %rejection.reason, "callback rejected");
            crate::metrics::count(
                "CallbackRejected",
                1,
                &[("Provider", provider), ("Reason", rejection.code)],
            );
            return answer(p.refuse(rejection.status, &rejection.reason));
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

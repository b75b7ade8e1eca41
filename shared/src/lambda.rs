//! The Lambda side of `api`: turns API Gateway events into plain HTTP requests for
//! [`crate::api::handle`], carrying the authorizer's verified `sub` along.

use crate::api::{handle, AuthorizerSub, Routes};
use crate::app::App;
use crate::config::Profile;
use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;

/// JSON logs, level from `RUST_LOG` (default info); no ANSI colours in CloudWatch.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// What every HTTP function's `main` does: build the app once, then serve events.
pub async fn run_http(routes: Routes) -> Result<(), lambda_http::Error> {
    init_tracing();
    let app = App::from_env(Profile::Lambda).await?;
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_event(&app, routes, req).await) }
    }))
    .await
}

pub async fn handle_event(app: &Arc<App>, routes: Routes, req: Request) -> Response<Body> {
    let sub = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get("sub"))
            .cloned(),
        _ => None,
    };
    let (mut parts, body) = req.into_parts();
    if let Some(sub) = sub {
        parts.extensions.insert(AuthorizerSub(sub));
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

//! The local server: every route on one port over hyper, plus the sandbox's fake payment
//! page. Lambdas don't use this module.

use super::problem::{json_response, problem};
use super::{handle, Routes, MAX_BODY_BYTES};
use crate::app::App;
use crate::domain::OrderState;
use crate::providers::sandbox;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        let _ = app.self_url.set(format!("http://{addr}"));
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(to_hyper(serve_one(&app, req).await)) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    // In-flight requests get a bounded time to finish.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
}

async fn serve_one(app: &App, req: Request<Incoming>) -> Response<Bytes> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("request body is over {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "could not read the body",
            )
        }
    };
    handle(app, Routes::Local, Request::from_parts(parts, body)).await
}

fn to_hyper(r: Response<Bytes>) -> Response<Full<Bytes>> {
    r.map(Full::new)
}

/// A plain HTTP/1 client for loopback calls (the sandbox paying itself, tests).
pub fn http_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    status: Option<sandbox::Status>,
}

/// `POST /sandbox/orders/{id}/pay`: plays the customer and the provider. It signs a sandbox
/// callback for the order's amount and POSTs it over HTTP to this server's own
/// `/callbacks/sandbox`, so the demo exercises exactly the path a real provider takes.
/// `{"status":"refunded"}` refunds a paid order the same way. Only the order's owner may
/// (bearer token): anyone else could otherwise pay or refund other people's orders. Another
/// user's order is not found, as with `GET /orders/{id}`.
pub(crate) async fn sandbox_pay(app: &App, id: &str, req: &Request<Bytes>) -> Response<Bytes> {
    let user = match super::authenticate(app, req) {
        Ok(user) => user,
        Err(r) => return r,
    };
    let Some(secret) = app
        .config
        .sandbox_secret
        .as_ref()
        .filter(|_| app.config.provider_enabled(sandbox::NAME))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "provider-not-enabled",
            "the sandbox provider is not enabled",
        );
    };
    let body: PayRequest = if req.body().is_empty() {
        PayRequest::default()
    } else {
        match serde_json::from_slice(req.body()) {
            Ok(b) => b,
            Err(e) => return problem(StatusCode::BAD_REQUEST, "malformed-json", e.to_string()),
        }
    };
    let order = match crate::service::orders::get(app, &user, id).await {
        Ok(o) if o.provider == sandbox::NAME => o,
        Ok(_) => {
            return problem(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("sandbox order {id:?} not found"),
            )
        }
        Err(e) => return super::problem::service_problem(&e),
    };
    let status = body.status.unwrap_or(sandbox::Status::Paid);
    let txn = match (status, &order.provider_txn_id) {
        (sandbox::Status::Refunded, Some(t)) => t.clone(),
        (sandbox::Status::Refunded, None) => {
            return problem(
                StatusCode::CONFLICT,
                "conflict",
                format!("order is {}, not paid", order.state.as_str()),
            )
        }
        (sandbox::Status::Paid, _) if order.state == OrderState::Paid => {
            order.provider_txn_id.clone().unwrap_or_default()
        }
        (sandbox::Status::Paid, _) => {
            format!("sbx_{}", hex::encode(crate::crypto::random_bytes::<8>()))
        }
    };
    let callback =
        sandbox::callback_body(&order.order_id, &txn, status, order.amount, app.clock.now());
    let signature = sandbox::sign(secret.expose(), &callback);
    let Some(base) = app.self_url.get() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "server address not known yet",
        );
    };
    let request = Request::post(format!("{base}/callbacks/sandbox"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(sandbox::SIGNATURE_HEADER, signature)
        .body(Full::new(Bytes::from(callback)));
    let request = match request {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    match http_client().request(request).await {
        Ok(resp) => {
            let code = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let answer: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            json_response(
                if code.is_success() {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_GATEWAY
                },
                &serde_json::json!({
                    "order_id": order.order_id,
                    "transaction_id": txn,
                    "callback_status": code.as_u16(),
                    "callback_answer": answer,
                }),
            )
        }
        Err(e) => problem(
            StatusCode::BAD_GATEWAY,
            "callback-failed",
            format!("could not reach {base}: {e}"),
        ),
    }
}

//! The local server: every route on one port over hyper, plus the sandbox's fake payment
//! page. Lambdas don't use this module.

use super::problem::{json_response, problem};
use super::{handle, BodyOverMax, Routes, MAX_BODY_BYTES};
use crate::app::App;
use crate::config::{ServerLimits, MIN_HEADER_BYTES};
use crate::domain::OrderState;
use crate::providers::sandbox;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
///
/// Each connection is bounded by `app.config.server_limits`: its head must arrive within the
/// header timeout (which also ends idle kept-alive connections), its body within the body
/// timeout, and its head may not outgrow the read buffer. At most `max_connections` are
/// served at once; over the cap the server stops accepting, so new connections wait in the
/// kernel's listen backlog until one ends (rather than being accepted only to be closed).
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        let _ = app.self_url.set(format!("http://{addr}"));
    }
    let limits = &app.config.server_limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(failures) = backoff.succeeded() {
                        tracing::warn!(failures, "accepting connections again");
                    }
                    (stream, peer)
                }
                // The client gave up before we accepted: nothing wrong with the listener.
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "connection lost before accept");
                    continue;
                }
                Err(e) => {
                    let step = backoff.failed(Instant::now());
                    if let Some(failures) = step.log {
                        tracing::error!(
                            error = %e,
                            failures,
                            pause_ms = step.pause.as_millis() as u64,
                            "accept failed; pausing before the next try"
                        );
                    }
                    drop(slot);
                    tokio::select! {
                        _ = tokio::time::sleep(step.pause) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            req.extensions_mut()
                .insert(super::ClientAddr(peer.ip().to_canonical()));
            async move { Ok::<_, std::convert::Infallible>(to_hyper(serve_one(&app, req).await)) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // In-flight requests get a bounded time to finish.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Errors of one incoming connection, not of the listener: accepting goes on at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// What the accept loop does after a failed `accept` that is not one connection's fault
/// (typically the process is out of file descriptors): it pauses, for longer at each
/// failure in a row, so that it does not spin, and logs at most one line a second, which
/// says how many failures it stands for.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// The last pause; zero while accepting works.
    pause: Duration,
    /// Failures not yet reported in a log line.
    unreported: u64,
    last_log: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
struct BackoffStep {
    /// How long to wait before accepting again.
    pause: Duration,
    /// `Some(failures)` when this failure is to be logged, with how many it reports.
    log: Option<u64>,
}

impl AcceptBackoff {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    fn failed(&mut self, now: Instant) -> BackoffStep {
        self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::MAX_PAUSE);
        self.unreported += 1;
        let due = self
            .last_log
            .is_none_or(|at| now.saturating_duration_since(at) >= Self::LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unreported)
        });
        BackoffStep {
            pause: self.pause,
            log,
        }
    }

    /// Accepting works again; the failures not yet reported, if any.
    fn succeeded(&mut self) -> Option<u64> {
        self.pause = Duration::ZERO;
        Some(std::mem::take(&mut self.unreported)).filter(|n| *n > 0)
    }
}

async fn serve_one(app: &App, req: Request<Incoming>) -> Response<Bytes> {
    let ServerLimits { body_timeout, .. } = app.config.server_limits;
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(body_timeout, Limited::new(body, MAX_BODY_BYTES).collect());
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            // The rest of the body may still arrive: the connection cannot be reused.
            let mut r = problem(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "the request body did not arrive within {} s",
                    body_timeout.as_secs()
                ),
            );
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return r;
        }
        // Over every route's cap: the route refuses it in its own terms (a provider's
        // failure answer on the routes providers call), without the body.
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let mut parts = parts;
            parts.extensions.insert(BodyOverMax);
            return handle(app, Routes::Local, Request::from_parts(parts, Bytes::new())).await;
        }
        Ok(Err(_)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn accept_failures_pause_longer_each_time_up_to_a_second() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let pauses: Vec<Duration> = (0..10).map(|_| b.failed(t0).pause).collect();
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000].map(|n| n * MS)
        );
        // One success starts over.
        b.succeeded();
        assert_eq!(b.failed(t0).pause, 10 * MS);
    }

    #[test]
    fn accept_failures_are_logged_once_a_second_with_their_count() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).log, Some(1), "the first failure is reported");
        // A burst within the second: silent, but counted.
        for i in 1..=999 {
            assert_eq!(b.failed(t0 + i * MS).log, None);
        }
        assert_eq!(b.failed(t0 + 1000 * MS).log, Some(1000));
        assert_eq!(b.failed(t0 + 1500 * MS).log, None);
        // Failures not yet reported are handed over when accepting works again.
        assert_eq!(b.succeeded(), Some(1));
        assert_eq!(b.succeeded(), None);
        // The next failure waits for the second since the last line.
        assert_eq!(b.failed(t0 + 1800 * MS).log, None);
        assert_eq!(b.failed(t0 + 2000 * MS).log, Some(2));
    }

    #[test]
    fn a_million_failures_in_ten_seconds_make_ten_lines() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let lines: Vec<u64> = (0..1_000_000u32)
            .filter_map(|i| b.failed(t0 + i * 10 * Duration::from_micros(1)).log)
            .collect();
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert_eq!(lines.iter().sum::<u64>(), 1_000_000 - b.unreported);
    }

    #[test]
    fn only_listener_errors_pause_accepting() {
        use std::io::{Error, ErrorKind};
        assert!(is_connection_error(&Error::from(
            ErrorKind::ConnectionAborted
        )));
        assert!(is_connection_error(&Error::from(
            ErrorKind::ConnectionReset
        )));
        // EMFILE: too many open files.
        assert!(!is_connection_error(&Error::from_raw_os_error(24)));
    }
}

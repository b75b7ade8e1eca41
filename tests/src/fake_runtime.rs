//! A minimal Lambda Runtime API on loopback: hands out the given events one per
//! `GET /2018-06-01/runtime/invocation/next`, each with its own request id and X-Ray trace
//! header, records when the process first asked for work (the end of its init) and what it
//! answered, and parks further `next` calls once the events run out (as Lambda does between
//! invocations). The cold-start tool times binaries with it; tests run real function
//! binaries against it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// One invocation as the fake saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// The `Lambda-Runtime-Trace-Id` header it was handed out with.
    pub trace_header: String,
    pub handed_out: Option<Instant>,
    pub answered: Option<Instant>,
    /// The response body, or the error document when `failed`.
    pub response: Option<Bytes>,
    pub failed: bool,
}

#[derive(Default)]
struct Inner {
    first_next: Option<Instant>,
    handed: usize,
    invocations: Vec<Invocation>,
    init_error: Option<Bytes>,
}

struct State {
    events: Vec<Bytes>,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the records half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake; stops serving when dropped.
pub struct FakeRuntime {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// The request id of the `i`th event (from 0).
pub fn request_id(i: usize) -> String {
    format!("invocation-{}", i + 1)
}

/// The trace header of the `i`th event (from 0).
pub fn trace_header(i: usize) -> String {
    format!(
        "Root=1-65f00000-{:024x};Parent=53995c3f42cd8ad8;Sampled=1",
        i + 1
    )
}

impl FakeRuntime {
    pub async fn start(events: Vec<Bytes>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            events,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
        });
        let served = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FakeRuntime {
            addr,
            state,
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the process first asked for an event: the end of its init.
    pub fn first_next(&self) -> Option<Instant> {
        self.state.lock().first_next
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.state.lock().invocations.clone()
    }

    /// What the process reported at `/runtime/init/error`, if it did.
    pub fn init_error(&self) -> Option<Bytes> {
        self.state.lock().init_error.clone()
    }

    /// Waits until every event has been answered (or the init failed); false on timeout.
    pub async fn all_answered(&self, timeout: Duration) -> bool {
        let want = self.state.events.len();
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.state.changed.notified();
                {
                    let inner = self.state.lock();
                    let answered = inner
                        .invocations
                        .iter()
                        .filter(|i| i.answered.is_some())
                        .count();
                    if answered == want || inner.init_error.is_some() {
                        return;
                    }
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(state: Arc<State>, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let answer = |status: u16, body: Bytes| {
        let mut resp = http::Response::new(Full::new(body));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        resp
    };
    if method == http::Method::GET && path.ends_with("/runtime/invocation/next") {
        let handed = {
            let mut inner = state.lock();
            let now = Instant::now();
            inner.first_next.get_or_insert(now);
            let i = inner.handed;
            if i < state.events.len() {
                inner.handed += 1;
                inner.invocations.push(Invocation {
                    request_id: request_id(i),
                    trace_header: trace_header(i),
                    handed_out: Some(now),
                    answered: None,
                    response: None,
                    failed: false,
                });
                Some(i)
            } else {
                None
            }
        };
        state.changed.notify_waiters();
        let Some(i) = handed else {
            // No more work: park the runtime until the process is stopped.
            std::future::pending::<()>().await;
            return answer(500, Bytes::new());
        };
        let deadline = (SystemTime::now() + Duration::from_secs(30))
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut resp = answer(200, state.events[i].clone());
        let headers = resp.headers_mut();
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        put("lambda-runtime-aws-request-id", request_id(i));
        put("lambda-runtime-deadline-ms", deadline.to_string());
        put(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
        );
        put("lambda-runtime-trace-id", trace_header(i));
        return resp;
    }
    {
        let mut inner = state.lock();
        if path.ends_with("/runtime/init/error") {
            inner.init_error = Some(body);
        } else {
            let failed = path.ends_with("/error");
            if failed || path.ends_with("/response") {
                if let Some(inv) = inner
                    .invocations
                    .iter_mut()
                    .find(|inv| path.contains(&format!("/invocation/{}/", inv.request_id)))
                {
                    inv.answered = Some(Instant::now());
                    inv.response = Some(body);
                    inv.failed = failed;
                }
            }
        }
    }
    state.changed.notify_waiters();
    answer(202, Bytes::from_static(b"{\"status\":\"OK\"}"))
}

/// The environment a Lambda function starts with against `runtime` and the AWS endpoint
/// `aws`: what Lambda itself sets, test credentials, a table name, the example catalog of the
/// repository at `root`, the sandbox provider and info-level logs.
pub fn lambda_env(runtime: SocketAddr, aws: &str, root: &std::path::Path) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "bench".into()),
        ("AWS_ENDPOINT_URL", aws.into()),
        ("AWS_ACCESS_KEY_ID", "bench".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("TABLE_NAME", "tollgate-bench".into()),
        (
            "CATALOG_PATH",
            root.join("catalog.example.json").display().to_string(),
        ),
        ("PROVIDERS", "sandbox".into()),
        ("SANDBOX_SECRET", crate::SANDBOX_SECRET.into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

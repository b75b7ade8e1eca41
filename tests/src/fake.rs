//! What every fake provider server on loopback shares: real HTTP on an ephemeral port, a
//! handler the test supplies (plain, or async for answers that take time), a log of every
//! request it received so tests can check what Tollgate sent, the trades a fake knows, and
//! the fixture keys the fakes sign and verify with.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path with `?query`, as the client sent it.
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// An answer with no headers.
    pub fn plain(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Answer {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A handler whose answer may take time (a provider that hangs past the client's timeout).
pub type AsyncHandler =
    Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// The server; stopped when dropped.
pub struct FakeServer {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(handler: Handler) -> Self {
        Self::start_async(Arc::new(move |s: Seen| {
            let a = handler(&s);
            Box::pin(async move { a })
        }))
        .await
    }

    pub async fn start_async(handler: AsyncHandler) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let log = log.clone();
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    let log = log.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let s = Seen {
                            method: parts.method.to_string(),
                            target: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str().to_owned())
                                .unwrap_or_default(),
                            headers: parts.headers,
                            body,
                        };
                        log.lock().unwrap().push(s.clone());
                        let a = handler(s).await;
                        let mut r = http::Response::builder().status(a.status);
                        for (k, v) in a.headers {
                            r = r.header(k, v);
                        }
                        Ok::<_, std::convert::Infallible>(
                            r.body(Full::new(Bytes::from(a.body))).unwrap(),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer { base, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The trades a fake provider knows, by `out_trade_no`: what it answers to queries. Absent
/// means the provider never heard of the order.
#[derive(Clone, Default)]
pub struct Trades(Arc<Mutex<HashMap<String, Value>>>);

impl Trades {
    pub fn set(&self, out_trade_no: &str, trade: Value) {
        self.0
            .lock()
            .unwrap()
            .insert(out_trade_no.to_owned(), trade);
    }

    pub fn get(&self, out_trade_no: &str) -> Option<Value> {
        self.0.lock().unwrap().get(out_trade_no).cloned()
    }
}

/// A key from `fixtures/keys` (test-only keys the fakes and the app are configured with).
pub fn key(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keys")
        .join(name);
    std::fs::read_to_string(path).expect("test key fixture")
}

/// How a fake provider answers the next refund it has not made yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RefundMode {
    /// Refunds at once.
    #[default]
    Succeed,
    /// Accepts it and keeps it processing (WeChat Pay's PROCESSING) until
    /// [`Refunds::set_status`] says otherwise.
    Process,
    /// Refuses it with this error code; nothing is refunded.
    Refuse(String),
    /// Answers 500 without refunding (the request never got through).
    Down,
    /// Refunds, then answers 500 (the answer is lost on the way back).
    LoseAnswer,
}

/// The refunds a fake provider made, by the refund id Tollgate sent, and how many refund
/// calls and queries it received.
#[derive(Clone, Default)]
pub struct Refunds(Arc<Mutex<RefundBook>>);

#[derive(Default)]
pub struct RefundBook {
    pub made: HashMap<String, Value>,
    pub calls: u32,
    pub queries: u32,
    pub mode: RefundMode,
}

impl Refunds {
    pub fn set_mode(&self, mode: RefundMode) {
        self.0.lock().unwrap().mode = mode;
    }

    /// Refund calls received (repeats of the same refund id included).
    pub fn calls(&self) -> u32 {
        self.0.lock().unwrap().calls
    }

    pub fn queries(&self) -> u32 {
        self.0.lock().unwrap().queries
    }

    /// Refunds actually made (each refund id once).
    pub fn made(&self) -> usize {
        self.0.lock().unwrap().made.len()
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        self.0.lock().unwrap().made.get(id).cloned()
    }

    /// Changes the status of a refund made (e.g. PROCESSING → SUCCESS).
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(r) = self.0.lock().unwrap().made.get_mut(id) {
            r["status"] = Value::String(status.to_owned());
        }
    }

    pub fn book(&self) -> std::sync::MutexGuard<'_, RefundBook> {
        self.0.lock().unwrap()
    }
}

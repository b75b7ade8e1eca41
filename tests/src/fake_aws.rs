//! A fake AWS endpoint on loopback for processes started with `AWS_ENDPOINT_URL`: DynamoDB
//! and SQS calls get an empty success (`{}`), Secrets Manager `GetSecretValue` and Parameter
//! Store `GetParameters` answer from the secrets and parameters it was given, in the JSON
//! shapes the SDK reads. Every request is recorded (when, which operation) and the most
//! requests in flight at once is kept, so a caller can say how many requests a start-up made
//! and whether they overlapped. An optional delay per request stands in for a network round
//! trip.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the fake saw it: when it arrived and its `X-Amz-Target` (the operation).
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub target: String,
}

#[derive(Default)]
struct State {
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
    delay: Duration,
    seen: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// The running fake; stops serving when dropped.
pub struct FakeAws {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeAws {
    /// Serves `secrets` (by secret id, the ARN a reference names) and `parameters` (by
    /// name), answering each request after `delay`.
    pub async fn start(
        secrets: HashMap<String, String>,
        parameters: HashMap<String, String>,
        delay: Duration,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            secrets,
            parameters,
            delay,
            ..State::default()
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
        Ok(FakeAws {
            addr,
            state,
            server,
        })
    }

    /// The value for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The most requests that were being answered at the same time, since the last call.
    pub fn take_peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.swap(0, Ordering::SeqCst)
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(state: Arc<State>, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    state
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Request {
            at: Instant::now(),
            target: target.clone(),
        });
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = match target.as_str() {
        "secretsmanager.GetSecretValue" => get_secret_value(&state, &input),
        "AmazonSSM.GetParameters" => get_parameters(&state, &input),
        _ => (200, json!({})),
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let content_type = if target.starts_with("DynamoDB") {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(answer.to_string())));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

fn get_secret_value(state: &State, input: &Value) -> (u16, Value) {
    let id = input["SecretId"].as_str().unwrap_or("");
    match state.secrets.get(id) {
        Some(text) => (
            200,
            json!({
                "ARN": id,
                "Name": id.rsplit(':').next().unwrap_or(id),
                "SecretString": text,
                "VersionId": "00000000-0000-0000-0000-000000000001",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_795_000_000.0,
            }),
        ),
        None => (
            400,
            json!({
                "__type": "ResourceNotFoundException",
                "message": "Secrets Manager can't find the specified secret.",
            }),
        ),
    }
}

fn get_parameters(state: &State, input: &Value) -> (u16, Value) {
    let Some(names) = input["Names"].as_array() else {
        return (
            400,
            json!({"__type": "ValidationException", "message": "Names is required"}),
        );
    };
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for name in names {
        match state.parameters.get(name) {
            Some(value) => found.push(json!({
                "Name": name,
                "Type": "SecureString",
                "Value": value,
                "Version": 1,
                "ARN": format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}"),
                "DataType": "text",
            })),
            None => invalid.push(name),
        }
    }
    (
        200,
        json!({ "Parameters": found, "InvalidParameters": invalid }),
    )
}

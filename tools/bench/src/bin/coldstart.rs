//! Cold-start harness: starts each function's release binary against a minimal fake Lambda
//! Runtime API on loopback and measures spawn → first `GET /runtime/invocation/next` (init)
//! and the first invocation (event handed out → response posted), beside a hello-world
//! `lambda_runtime` binary built the same way. Prints medians, the ratio to hello-world and
//! the stripped binary sizes.
//!
//! DynamoDB (and SQS) is a loopback fake that answers every call with an empty success: the
//! functions open their DynamoDB connection during init, so the init time includes that
//! connection and one round trip, but not an emulator's own latency. Run through
//! `scripts/coldstart`, which builds the release binaries first.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tollgate_bench::ms;

#[derive(Default)]
struct Timeline {
    first_next: Option<Instant>,
    response: Option<Instant>,
    error: Option<String>,
}

struct Runtime {
    event: Bytes,
    timeline: Mutex<Timeline>,
    changed: Notify,
}

async fn runtime_api(
    rt: Arc<Runtime>,
    req: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let _ = req.into_body().collect().await;
    let ok = |body: Bytes| {
        http::Response::builder()
            .status(200)
            .body(Full::new(body))
            .unwrap()
    };
    if method == http::Method::GET && path.ends_with("/runtime/invocation/next") {
        let first = {
            let mut t = rt.timeline.lock().unwrap();
            if t.first_next.is_none() {
                t.first_next = Some(Instant::now());
                true
            } else {
                false
            }
        };
        rt.changed.notify_waiters();
        if !first {
            // One invocation per process: park the runtime until it is killed.
            std::future::pending::<()>().await;
        }
        let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        return http::Response::builder()
            .status(200)
            .header("lambda-runtime-aws-request-id", "cold-start-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(rt.event.clone()))
            .unwrap();
    }
    {
        let mut t = rt.timeline.lock().unwrap();
        if path.ends_with("/response") {
            t.response = Some(Instant::now());
        } else if path.ends_with("/error") {
            t.error = Some(path.clone());
            t.response = Some(Instant::now());
        }
    }
    rt.changed.notify_waiters();
    ok(Bytes::from_static(b"{}"))
}

/// Answers every AWS JSON call with `{}` (an empty success).
async fn fake_aws() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(200)
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from_static(b"{}")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

struct Sample {
    init: Duration,
    first: Duration,
}

async fn one_run(bin: &PathBuf, event: Bytes, envs: &[(String, String)]) -> Result<Sample, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let rt = Arc::new(Runtime {
        event,
        timeline: Mutex::new(Timeline::default()),
        changed: Notify::new(),
    });
    let server_rt = rt.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let rt = server_rt.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let rt = rt.clone();
                    async move { Ok::<_, std::convert::Infallible>(runtime_api(rt, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let notified = rt.changed.notified();
            if rt.timeline.lock().unwrap().response.is_some() {
                return;
            }
            notified.await;
        }
    })
    .await;
    let _ = child.kill().await;
    let stderr = match child.wait_with_output().await {
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(_) => String::new(),
    };
    server.abort();
    let t = rt.timeline.lock().unwrap();
    if waited.is_err() {
        return Err(format!(
            "{} did not answer within 20 s: {}",
            bin.display(),
            stderr.lines().last().unwrap_or("")
        ));
    }
    if let Some(e) = &t.error {
        return Err(format!(
            "{} reported an error ({e}): {}",
            bin.display(),
            stderr.lines().last().unwrap_or("")
        ));
    }
    let first_next = t.first_next.ok_or("no next")?;
    Ok(Sample {
        init: first_next - started,
        first: t.response.ok_or("no response")? - first_next,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target"));
    let release = target.join("release");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let event = |file: &str| {
        Bytes::from(std::fs::read(root.join("events").join(file)).expect("event file"))
    };
    let aws = fake_aws().await;
    let mut envs: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), format!("http://{aws}")),
        ("AWS_ACCESS_KEY_ID".into(), "bench".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "bench".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("TABLE_NAME".into(), "tollgate-bench".into()),
    ];
    envs.push((
        "CATALOG_PATH".into(),
        root.join("catalog.example.json").display().to_string(),
    ));
    envs.push(("PROVIDERS".into(), "sandbox".into()));
    envs.push(("SANDBOX_SECRET".into(), "test-sandbox-secret".into()));
    envs.push(("RUST_LOG".into(), "warn".into()));
    let functions: Vec<(&str, Bytes)> = vec![
        ("hello-lambda", Bytes::from_static(b"{\"hello\":\"world\"}")),
        ("create-order", event("create-order/create.json")),
        (
            "provider-callback",
            event("provider-callback/sandbox-unknown-order.json"),
        ),
        ("stream-token", event("stream-token/entitlements.json")),
        ("sweeper", event("sweeper/scheduled.json")),
        ("verifier", event("verifier/batch.json")),
        (
            "store-notifications",
            event("store-notifications/google-purchase-unknown-product.json"),
        ),
    ];
    println!("cold start, median of {runs} runs each (fake Runtime API on loopback)");
    println!(
        "{:<20} {:>10} {:>8} {:>16} {:>12}",
        "binary", "init ms", "× hello", "1st invoke ms", "size KiB"
    );
    let mut hello_init = None;
    for (name, ev) in functions {
        let bin = release.join(name);
        let size = std::fs::metadata(&bin).map(|m| m.len() / 1024).unwrap_or(0);
        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        for _ in 0..runs {
            match one_run(&bin, ev.clone(), &envs).await {
                Ok(s) => {
                    inits.push(s.init);
                    firsts.push(s.first);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    std::process::exit(1);
                }
            }
        }
        let init = median(inits);
        let first = median(firsts);
        let hello = *hello_init.get_or_insert(init);
        println!(
            "{name:<20} {:>10.2} {:>8.2} {:>16.2} {size:>12}",
            ms(init),
            init.as_secs_f64() / hello.as_secs_f64(),
            ms(first)
        );
    }
}

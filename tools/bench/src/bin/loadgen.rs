//! Load generator for the local server: starts the release `tollgate-local` on a loopback
//! port with the embedded store, then drives create-order, sandbox settle (signed callbacks)
//! and stream-token issue with N concurrent clients. Bounded in requests and time; prints
//! throughput, p50/p99/p99.9 latency per phase and the server's peak RSS, then stops the
//! server.
//!
//! `cargo run --release -p tollgate-bench --bin loadgen -- [--requests 20000] [--concurrency 32]`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tollgate_bench::{ms, peak_rss_kib, percentile};

const JWT_SECRET: &str = "loadgen-jwt-secret-at-least-32-bytes-long";
const SANDBOX_SECRET: &str = "loadgen-sandbox-secret";
type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Phase {
    fn print(&mut self) {
        self.latencies.sort();
        let n = self.latencies.len();
        println!(
            "{:<14} {:>8} {:>7} {:>11.0} {:>9.2} {:>9.2} {:>9.2}",
            self.name,
            n,
            self.errors,
            n as f64 / self.elapsed.as_secs_f64(),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(percentile(&self.latencies, 99.9)),
        );
    }
}

async fn send(client: &Client, req: http::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Runs `per_client` requests on each of `clients` tasks; `make` builds request `i` of
/// client `c` and `check` judges the answer (and may record something from it).
async fn phase<M, K>(
    name: &'static str,
    clients: usize,
    total: usize,
    max: Duration,
    client: &Client,
    make: Arc<M>,
    check: Arc<K>,
) -> Phase
where
    M: Fn(usize, usize) -> Option<http::Request<Full<Bytes>>> + Send + Sync + 'static,
    K: Fn(usize, u16, &Bytes) -> bool + Send + Sync + 'static,
{
    let started = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, make, check, errors) =
            (client.clone(), make.clone(), check.clone(), errors.clone());
        let per = total / clients;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                if started.elapsed() > max {
                    break;
                }
                let Some(req) = make(c, i) else { continue };
                let t = Instant::now();
                match send(&client, req).await {
                    Ok((status, body)) if check(c, status, &body) => lat.push(t.elapsed()),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    Phase {
        name,
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = arg(&args, "--requests", 20_000);
    let clients = arg(&args, "--concurrency", 32).max(1);
    let max = Duration::from_secs(arg(&args, "--max-seconds", 60) as u64);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bin = target.join("release/tollgate-local");
    let mut server = tokio::process::Command::new(&bin)
        .current_dir(&root)
        .env("PORT", "0")
        .env("AUTH_JWT_SECRET", JWT_SECRET)
        .env("SANDBOX_SECRET", SANDBOX_SECRET)
        .env("RUST_LOG", "error")
        .env("SWEEP_INTERVAL_SECONDS", "3600")
        // Each client creates hundreds of orders in minutes: far over a viewer's quota,
        // which would measure 429 answers instead of creates.
        .env("MAX_NEW_ORDERS_PER_USER", "10000")
        .env_remove("TABLE_NAME")
        .env_remove("QUEUE_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it: cargo build --release -p tollgate-local)",
                bin.display()
            )
        });
    let pid = server.id().unwrap_or(0);
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let mut base = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or(Ok(None))
    {
        if let Some(a) = line.strip_prefix("tollgate-local listening on ") {
            base = Some(a.trim().to_owned());
            break;
        }
    }
    let base = Arc::new(base.expect("server printed its address"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(clients)
            .build_http();
    let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|c| {
                format!(
                    "Bearer {}",
                    tollgate::api::auth::mint_hs256(JWT_SECRET, &format!("load-{c}"), now, 3600)
                        .expect("an HS256 token")
                )
            })
            .collect(),
    );
    let orders: Arc<Vec<std::sync::Mutex<Vec<String>>>> =
        Arc::new((0..clients).map(|_| Default::default()).collect());

    println!("tollgate-local at {base}, {clients} concurrent clients, up to {requests} requests per phase");
    println!(
        "{:<14} {:>8} {:>7} {:>11} {:>9} {:>9} {:>9}",
        "phase", "ok", "errors", "req/s", "p50 ms", "p99 ms", "p99.9 ms"
    );

    let (b, t) = (base.clone(), tokens.clone());
    let body =
        Bytes::from_static(br#"{"product_id":"pass-monthly","plan_id":"7d","provider":"sandbox"}"#);
    let make = Arc::new(move |c: usize, _i: usize| {
        http::Request::post(format!("{b}/orders"))
            .header("authorization", &t[c])
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .ok()
    });
    let o = orders.clone();
    let check = Arc::new(move |c: usize, status: u16, body: &Bytes| {
        let ok = status == 201;
        if ok {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                if let Some(id) = v["order_id"].as_str() {
                    o[c].lock().unwrap().push(id.to_owned());
                }
            }
        }
        ok
    });
    phase("create order", clients, requests, max, &client, make, check)
        .await
        .print();

    let (b, o) = (base.clone(), orders.clone());
    let make = Arc::new(move |c: usize, i: usize| {
        let id = o[c].lock().unwrap().get(i).cloned()?;
        let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
        let body = format!(
            r#"{{"order_id":"{id}","transaction_id":"lg-{id}","status":"paid","amount":{{"amount":900,"currency":"CNY"}},"timestamp":{now}}}"#
        );
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, body.as_bytes());
        http::Request::post(format!("{b}/callbacks/sandbox"))
            .header("x-sandbox-signature", sig)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .ok()
    });
    let check = Arc::new(|_c: usize, status: u16, _b: &Bytes| status == 200);
    phase(
        "sandbox settle",
        clients,
        requests,
        max,
        &client,
        make,
        check,
    )
    .await
    .print();

    // Token issue is measured for viewers who bought one pass each (a typical account);
    // the buyers above hold hundreds of grants each, which every entitlement check folds.
    let viewers: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|c| {
                format!(
                    "Bearer {}",
                    tollgate::api::auth::mint_hs256(JWT_SECRET, &format!("viewer-{c}"), now, 3600)
                        .expect("an HS256 token")
                )
            })
            .collect(),
    );
    for (c, auth) in viewers.iter().enumerate() {
        let body = Bytes::from_static(
            br#"{"product_id":"pass-monthly","plan_id":"7d","provider":"sandbox"}"#,
        );
        let req = http::Request::post(format!("{base}/orders"))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let (_, created) = send(&client, req).await.expect("viewer order");
        let id = serde_json::from_slice::<serde_json::Value>(&created).expect("order")["order_id"]
            .as_str()
            .expect("order id")
            .to_owned();
        let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
        let cb = format!(
            r#"{{"order_id":"{id}","transaction_id":"lgv-{c}","status":"paid","amount":{{"amount":900,"currency":"CNY"}},"timestamp":{now}}}"#
        );
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, cb.as_bytes());
        let req = http::Request::post(format!("{base}/callbacks/sandbox"))
            .header("x-sandbox-signature", sig)
            .body(Full::new(Bytes::from(cb)))
            .expect("request");
        let (status, _) = send(&client, req).await.expect("viewer payment");
        assert_eq!(status, 200, "viewer payment accepted");
    }
    let (b, t) = (base.clone(), viewers.clone());
    let body = Bytes::from_static(br#"{"device_id":"loadgen-device"}"#);
    let make = Arc::new(move |c: usize, _i: usize| {
        http::Request::post(format!("{b}/streams/main/tokens"))
            .header("authorization", &t[c])
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .ok()
    });
    let check = Arc::new(|_c: usize, status: u16, _b: &Bytes| status == 201);
    phase("token issue", clients, requests, max, &client, make, check)
        .await
        .print();

    match peak_rss_kib(pid) {
        Some(kib) => println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("server peak RSS: unknown"),
    }
    let _ = server.kill().await;
}

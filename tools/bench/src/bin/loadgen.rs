//! Load generator for the local server: starts the release `tollgate-local` on a loopback
//! port with the embedded store, then drives create-order, sandbox settle (signed callbacks)
//! and stream-token issue with N concurrent clients; then token issue for viewers holding
//! 1,000 ended passes each (sold as Huya sales dated in the past) beside viewers holding one;
//! then renewals of one viewer's one device by every client, on this server and on a second
//! one whose renewals all write (`STREAM_TOKEN_TTL_SECONDS=1`: no renewal falls within half a
//! token's life, as before renewals stopped writing). Bounded in requests and time; prints
//! throughput, p50/p99/p99.9 latency per phase and the server's peak RSS, then stops the
//! servers.
//!
//! `cargo run --release -p tollgate-bench --bin loadgen -- [--requests 20000] [--concurrency 32]
//! [--history 1000] [--server path/to/tollgate-local]`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tollgate_bench::{ms, peak_rss_kib, percentile};

const JWT_SECRET: &str = "loadgen-jwt-secret-at-least-32-bytes-long";
const SANDBOX_SECRET: &str = "loadgen-sandbox-secret";
const HUYA_APP_ID: &str = "loadgen-huya-app";
const HUYA_SECRET: &str = "loadgen-huya-secret";
const HUYA_EXT: &str = "loadgen-ext";
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
            "{:<30} {:>8} {:>7} {:>11.0} {:>9.2} {:>9.2} {:>9.2}",
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

/// Starts `bin` on a free loopback port with the embedded store and `extra` variables: the
/// process, its pid and its base URL.
async fn start(
    bin: &std::path::Path,
    root: &std::path::Path,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, u32, String) {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.current_dir(root)
        .env("PORT", "0")
        .env("AUTH_JWT_SECRET", JWT_SECRET)
        .env("SANDBOX_SECRET", SANDBOX_SECRET)
        .env("PROVIDERS", "sandbox,huya")
        .env("HUYA_APP_ID", HUYA_APP_ID)
        .env("HUYA_EXT_SECRET", HUYA_SECRET)
        .env("HUYA_EXT_UUID", HUYA_EXT)
        .env("RUST_LOG", "error")
        .env("SWEEP_INTERVAL_SECONDS", "3600")
        // Each client creates hundreds of orders in minutes: far over a viewer's quota,
        // which would measure 429 answers instead of creates.
        .env("MAX_NEW_ORDERS_PER_USER", "10000")
        .env_remove("TABLE_NAME")
        .env_remove("QUEUE_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut server = cmd.spawn().unwrap_or_else(|e| {
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
    let base = base.expect("server printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (server, pid, base)
}

fn bearer(user: &str) -> String {
    let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
    format!(
        "Bearer {}",
        tollgate::api::auth::mint_hs256(JWT_SECRET, user, now, 3600).expect("an HS256 token")
    )
}

/// Buys one 7-day pass for each viewer through the sandbox.
async fn buy_passes(client: &Client, base: &str, viewers: &[String], tag: &str) {
    for (c, auth) in viewers.iter().enumerate() {
        let body = Bytes::from_static(
            br#"{"product_id":"pass-monthly","plan_id":"7d","provider":"sandbox"}"#,
        );
        let req = http::Request::post(format!("{base}/orders"))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let (_, created) = send(client, req).await.expect("viewer order");
        let id = serde_json::from_slice::<serde_json::Value>(&created).expect("order")["order_id"]
            .as_str()
            .expect("order id")
            .to_owned();
        let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
        let cb = format!(
            r#"{{"order_id":"{id}","transaction_id":"{tag}-{c}","status":"paid","amount":{{"amount":900,"currency":"CNY"}},"timestamp":{now}}}"#
        );
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, cb.as_bytes());
        let req = http::Request::post(format!("{base}/callbacks/sandbox"))
            .header("x-sandbox-signature", sig)
            .body(Full::new(Bytes::from(cb)))
            .expect("request");
        let (status, _) = send(client, req).await.expect("viewer payment");
        assert_eq!(status, 200, "viewer payment accepted");
    }
}

/// A Huya sale of a 7-day pass to `huya:<profile>`, dated `at` (Huya's `orderTime`).
fn huya_sale(base: &str, profile: &str, order_id: &str, at: i64) -> http::Request<Full<Bytes>> {
    let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
    let order_time: String = tollgate::providers::china_time::format_cst_datetime(at)
        .expect("a representable instant")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let body = format!(
        r#"{{"goodsUuid":"g-123","orderTime":"{order_time}","orderId":"{order_id}","extUuid":"{HUYA_EXT}","profileId":"{profile}","expenseLevel":"1","timestamp":"{now}"}}"#
    );
    let auth =
        tollgate::providers::huya::wire::HuyaConfig::new(HUYA_APP_ID, HUYA_SECRET, &[HUYA_EXT])
            .expect("huya settings")
            .compute_authorization(&now.to_string(), body.as_bytes());
    http::Request::post(format!("{base}/callbacks/huya"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

/// Token requests for `main` by client `c` as `viewers[c]` (or all as viewer 0 and one device).
fn token_requests(
    base: Arc<String>,
    viewers: Arc<Vec<String>>,
    one_device: bool,
) -> Arc<impl Fn(usize, usize) -> Option<http::Request<Full<Bytes>>> + Send + Sync + 'static> {
    let body = Bytes::from_static(br#"{"device_id":"loadgen-device"}"#);
    Arc::new(move |c: usize, _i: usize| {
        let auth = if one_device { &viewers[0] } else { &viewers[c] };
        http::Request::post(format!("{base}/streams/main/tokens"))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .ok()
    })
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
    let bin = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target.join("release/tollgate-local"));
    let history = arg(&args, "--history", 1_000);
    let (mut server, pid, base) = start(&bin, &root, &[]).await;
    let base = Arc::new(base);
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
        "{:<30} {:>8} {:>7} {:>11} {:>9} {:>9} {:>9}",
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
    // the buyers above hold hundreds of passes still to run each, which every check folds.
    let viewers: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|c| bearer(&format!("viewer-{c}")))
            .collect(),
    );
    buy_passes(&client, &base, &viewers, "lgv").await;
    let issued = Arc::new(|_c: usize, status: u16, _b: &Bytes| status == 201);
    let make = token_requests(base.clone(), viewers.clone(), false);
    phase(
        "token issue",
        clients,
        requests,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await
    .print();

    // Viewers with a long history: `history` passes that ended long ago (Huya sales dated
    // 8 days apart, the last 9 days ago) and one running. A first round of issues lets the
    // server fold the ended ones; then the same phase as above.
    let now = tollgate::clock::Clock::now(&tollgate::clock::SystemClock);
    let seed_started = Instant::now();
    let (b, n) = (base.clone(), history + 1);
    let make = Arc::new(move |c: usize, i: usize| {
        let at = if i == n - 1 {
            now
        } else {
            now - 9 * 86_400 - (n - 2 - i) as i64 * 8 * 86_400
        };
        Some(huya_sale(
            &b,
            &format!("hist-{c}"),
            &format!("hist-{c}-{i}"),
            at,
        ))
    });
    let sold = Arc::new(|_c: usize, status: u16, _b: &Bytes| status == 200);
    let seeded = phase(
        "(seed: Huya sales)",
        clients,
        clients * n,
        Duration::from_secs(600),
        &client,
        make,
        sold,
    )
    .await;
    assert_eq!(seeded.errors, 0, "every past sale recorded");
    println!(
        "seeded {} viewers with {history} ended passes and one running in {:.1} s",
        clients,
        seed_started.elapsed().as_secs_f64()
    );
    let holders: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|c| bearer(&format!("huya:hist-{c}")))
            .collect(),
    );
    let make = token_requests(base.clone(), holders.clone(), false);
    let mut warm = phase(
        "(first 40 issues each: folds)",
        clients,
        clients * 40,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await;
    warm.print();
    let make = token_requests(base.clone(), holders.clone(), false);
    phase(
        "token issue, 1,000 past grants",
        clients,
        requests,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await
    .print();
    let make = token_requests(base.clone(), viewers.clone(), false);
    phase(
        "token issue, 1 grant (again)",
        clients,
        requests,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await
    .print();

    // Renewals: every client renews viewer 0's one device (one SESSIONS item), beside the
    // many-viewers phase above; then the same on a server where every renewal writes.
    let make = token_requests(base.clone(), viewers.clone(), true);
    phase(
        "renew: 1 viewer, 1 device",
        clients,
        requests,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await
    .print();
    match peak_rss_kib(pid) {
        Some(kib) => println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("server peak RSS: unknown"),
    }
    let _ = server.kill().await;

    let (mut writing, wpid, wbase) = start(&bin, &root, &[("STREAM_TOKEN_TTL_SECONDS", "1")]).await;
    let wbase = Arc::new(wbase);
    buy_passes(&client, &wbase, &viewers, "lgw").await;
    println!("second server, every renewal writes (STREAM_TOKEN_TTL_SECONDS=1), at {wbase}");
    let make = token_requests(wbase.clone(), viewers.clone(), false);
    phase(
        "writing: many viewers",
        clients,
        requests,
        max,
        &client,
        make,
        issued.clone(),
    )
    .await
    .print();
    let make = token_requests(wbase.clone(), viewers.clone(), true);
    phase(
        "writing: 1 viewer, 1 device",
        clients,
        requests,
        max,
        &client,
        make,
        issued,
    )
    .await
    .print();
    match peak_rss_kib(wpid) {
        Some(kib) => println!("second server peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("second server peak RSS: unknown"),
    }
    let _ = writing.kill().await;
}

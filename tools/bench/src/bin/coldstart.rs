//! Cold-start harness: starts each function's release binary against a fake Lambda Runtime
//! API on loopback and measures spawn → first `GET /runtime/invocation/next` (init) and the
//! first invocation (event handed out → response posted), beside a hello-world
//! `lambda_runtime` binary built the same way. Prints medians, the ratio to hello-world and
//! the stripped binary sizes.
//!
//! Each function runs with the providers and secrets its template gives it, twice: with
//! every secret as a plain value, and with every secret by reference (alternately a Secrets
//! Manager ARN with a JSON key and an `ssm:` parameter name). The last column is each
//! process's peak resident memory after its first invocation and the CPU time it used up
//! to its first answer (plain values), which unlike wall time holds on a busy machine. AWS is a loopback fake
//! (`tollgate_tests::fake_aws`): DynamoDB gets an empty success, Secrets Manager and
//! Parameter Store answer the references. The requests each init made are counted, with the
//! most that were in flight at once, so the table shows that references are read
//! concurrently: init grows by about one round trip, not one per secret. `--aws-latency-ms N`
//! delays every AWS answer by N ms to make that visible. Run through `scripts/coldstart`,
//! which builds the release binaries first.

use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tollgate::secret_refs::SECRET_VARIABLES;
use tollgate_bench::{cpu_ns, ms, peak_rss_kib};
use tollgate_tests::fake_aws::FakeAws;
use tollgate_tests::fake_runtime::{lambda_env, FakeRuntime};

struct Sample {
    init: Duration,
    first: Duration,
    /// AWS requests made before the first `next` (during init).
    init_requests: usize,
    peak_in_flight: usize,
    /// Microseconds per start-up phase, from the `init phases` line (with `--phases`).
    phases: Vec<(String, u64)>,
    /// CPU microseconds per start-up phase, from the same line.
    cpu_phases: Vec<(String, u64)>,
    /// The process's peak resident memory after its first invocation (`VmHWM`), KiB; `None`
    /// where `/proc` cannot tell.
    peak_rss_kib: Option<u64>,
    /// CPU time the process used up to its first answer (init and the first invocation).
    cpu: Option<Duration>,
}

/// The phases of an `init phases` log line among `stdout`'s lines: wall-clock microseconds
/// (`field` = `phases`) or CPU microseconds (`cpu_phases`, then `cpu_before_us` as a
/// phase `before_load`).
fn phases_of(stdout: &str, field: &str) -> Vec<(String, u64)> {
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["message"] != "init phases" {
            continue;
        }
        let Some(text) = v[field].as_str() else {
            continue;
        };
        if field == "cpu_phases" {
            let before = v["cpu_before_us"]
                .as_u64()
                .or_else(|| v["cpu_before_us"].as_str()?.parse().ok());
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(text) {
                return before
                    .map(|us| ("before_load".to_owned(), us))
                    .into_iter()
                    .chain(m.into_iter().filter_map(|(k, v)| Some((k, v.as_u64()?))))
                    .collect();
            }
            continue;
        }
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(text) {
            return m
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_u64()?)))
                .collect();
        }
    }
    Vec::new()
}

async fn one_run(
    bin: &Path,
    args: &[&str],
    event: Bytes,
    aws: &FakeAws,
    env: &[(String, String)],
) -> Result<Sample, String> {
    let runtime = FakeRuntime::start(vec![event])
        .await
        .map_err(|e| e.to_string())?;
    let before = aws.requests().len();
    aws.take_peak_in_flight();
    let started = std::time::Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr().to_string())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let answered = runtime.all_answered(Duration::from_secs(20)).await;
    let peak_rss_kib = child.id().and_then(peak_rss_kib);
    let cpu = child.id().and_then(cpu_ns).map(Duration::from_nanos);
    let _ = child.start_kill();
    let (stdout, stderr) = match child.wait_with_output().await {
        Ok(out) => (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    let last = stderr.lines().last().unwrap_or("").to_owned();
    if !answered {
        return Err(format!(
            "{} did not answer within 20 s: {last}",
            bin.display()
        ));
    }
    if let Some(e) = runtime.init_error() {
        return Err(format!(
            "{} failed its init: {}",
            bin.display(),
            String::from_utf8_lossy(&e)
        ));
    }
    let invocation = runtime
        .invocations()
        .into_iter()
        .next()
        .ok_or("no invocation")?;
    if invocation.failed {
        return Err(format!("{} reported an error: {last}", bin.display()));
    }
    let first_next = runtime.first_next().ok_or("no next")?;
    let handed = invocation.handed_out.ok_or("not handed out")?;
    let init_requests = aws.requests()[before..]
        .iter()
        .filter(|r| r.at < first_next)
        .count();
    Ok(Sample {
        init: first_next - started,
        first: invocation.answered.ok_or("no response")? - handed,
        init_requests,
        peak_in_flight: aws.take_peak_in_flight(),
        phases: phases_of(&stdout, "phases"),
        cpu_phases: phases_of(&stdout, "cpu_phases"),
        peak_rss_kib,
        cpu,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A function's providers and the variables they need (plain values), as the template
/// gives them to it.
fn function_env(name: &str, root: &Path) -> Vec<(&'static str, String)> {
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let unreachable = "http://127.0.0.1:9";
    let pay = || {
        let mut v = tollgate_tests::wechat::env(unreachable);
        v.extend(tollgate_tests::alipay::env(&format!(
            "{unreachable}/gateway.do"
        )));
        v.retain(|(k, _)| *k != "PROVIDERS");
        v
    };
    let google = |with_service_account: bool| {
        let mut v = vec![
            (
                "GOOGLE_PACKAGE_NAME",
                tollgate_tests::fake_google::PACKAGE.to_owned(),
            ),
            (
                "GOOGLE_PUSH_AUDIENCE",
                tollgate_tests::fake_google::AUDIENCE.into(),
            ),
            (
                "GOOGLE_PUSH_SERVICE_ACCOUNT",
                tollgate_tests::fake_google::PUSH_ACCOUNT.into(),
            ),
            ("GOOGLE_API_BASE_URL", unreachable.into()),
            ("GOOGLE_TOKEN_URL", format!("{unreachable}/token")),
            ("GOOGLE_JWKS_URL", format!("{unreachable}/jwks")),
        ];
        if with_service_account {
            v.push((
                "GOOGLE_SERVICE_ACCOUNT_JSON",
                read(root.join("tests/fixtures/google/service_account.json")),
            ));
        }
        v
    };
    let apple = || {
        vec![
            ("APPLE_BUNDLE_ID", tollgate_tests::apple::BUNDLE.to_owned()),
            ("APPLE_APP_APPLE_ID", "1234567".into()),
            (
                "APPLE_ROOT_CERTS",
                root.join("tests/fixtures/apple/root.pem")
                    .display()
                    .to_string(),
            ),
        ]
    };
    let mut env = match name {
        "create-order" | "sweeper" => {
            let mut v = pay();
            v.push(("PROVIDERS", "sandbox,wechat,alipay".into()));
            v
        }
        "provider-callback" => {
            let mut v = pay();
            v.extend(tollgate_tests::huya::env());
            v.retain(|(k, _)| *k != "PROVIDERS");
            v.push(("PROVIDERS", "sandbox,wechat,alipay,huya".into()));
            v.push(("SANDBOX_SECRET", tollgate_tests::SANDBOX_SECRET.into()));
            v
        }
        "verifier" => {
            let mut v = pay();
            v.extend(google(true));
            v.push(("PROVIDERS", "sandbox,wechat,alipay,google".into()));
            v
        }
        "store-notifications" => {
            let mut v = apple();
            v.extend(google(false));
            v.push(("PROVIDERS", "sandbox,apple,google".into()));
            v
        }
        "stream-token" => vec![
            ("PROVIDERS", String::new()),
            (
                "STREAM_SIGNING_KEYS",
                tollgate_tests::STREAM_SIGNING_KEYS.into(),
            ),
            (
                "NGINX_SECURE_LINK_SECRET",
                tollgate_tests::NGINX_SECRET.into(),
            ),
        ],
        _ => Vec::new(),
    };
    // Sandbox orders need no key outside provider-callback.
    env.retain(|(k, _)| *k != "SANDBOX_SECRET" || name == "provider-callback");
    env
}

/// The same variables with every secret replaced by a reference, alternately a Secrets
/// Manager ARN with a JSON key and an `ssm:` name, and what the fake must serve for them.
struct ByReference {
    env: Vec<(&'static str, String)>,
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
}

fn by_reference(function: &str, env: &[(&'static str, String)]) -> ByReference {
    let mut out = ByReference {
        env: Vec::new(),
        secrets: HashMap::new(),
        parameters: HashMap::new(),
    };
    let mut n = 0;
    for (name, value) in env {
        if !SECRET_VARIABLES.contains(name) {
            out.env.push((name, value.clone()));
            continue;
        }
        let slug = name.to_ascii_lowercase().replace('_', "-");
        let reference = if n % 2 == 0 {
            let arn = format!(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:tollgate/bench/{function}/{slug}-AbCdEf"
            );
            out.secrets.insert(
                arn.clone(),
                serde_json::json!({ "value": value }).to_string(),
            );
            format!("{arn}:value")
        } else {
            let parameter = format!("/tollgate/bench/{function}/{slug}");
            out.parameters.insert(parameter.clone(), value.clone());
            format!("ssm:{parameter}")
        };
        out.env.push((name, reference));
        n += 1;
    }
    out
}

struct Row {
    secrets: usize,
    /// Median microseconds per phase, in start-up order.
    phases: Vec<(String, u64)>,
    /// Median CPU microseconds per phase, in start-up order.
    cpu_phases: Vec<(String, u64)>,
    init: Duration,
    first: Duration,
    init_requests: usize,
    peak_in_flight: usize,
    /// The largest peak resident memory of the runs, KiB.
    peak_rss_kib: Option<u64>,
    /// Median CPU time up to the first answer; `None` if `/proc` could not tell.
    cpu: Option<Duration>,
}

async fn measure(
    bin: &Path,
    args: &[&str],
    event: &Bytes,
    aws: &FakeAws,
    env: &[(String, String)],
    runs: usize,
) -> Row {
    let mut inits = Vec::new();
    let mut firsts = Vec::new();
    let (mut requests, mut peak) = (0, 0);
    let mut rss: Option<u64> = None;
    let mut cpus = Vec::new();
    let mut phases: Vec<(String, Vec<u64>)> = Vec::new();
    let mut cpu_phases: Vec<(String, Vec<u64>)> = Vec::new();
    for _ in 0..runs {
        match one_run(bin, args, event.clone(), aws, env).await {
            Ok(s) => {
                inits.push(s.init);
                firsts.push(s.first);
                requests = requests.max(s.init_requests);
                peak = peak.max(s.peak_in_flight);
                rss = rss.max(s.peak_rss_kib);
                cpus.extend(s.cpu);
                collect_phases(&mut phases, s.phases);
                collect_phases(&mut cpu_phases, s.cpu_phases);
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    Row {
        secrets: 0,
        phases: median_phases(phases),
        cpu_phases: median_phases(cpu_phases),
        init: median(inits),
        first: median(firsts),
        init_requests: requests,
        peak_in_flight: peak,
        peak_rss_kib: rss,
        cpu: (cpus.len() == runs).then(|| median(cpus)),
    }
}

fn collect_phases(into: &mut Vec<(String, Vec<u64>)>, run: Vec<(String, u64)>) {
    for (name, us) in run {
        match into.iter_mut().find(|(p, _)| *p == name) {
            Some((_, v)) => v.push(us),
            None => into.push((name, vec![us])),
        }
    }
}

fn median_phases(phases: Vec<(String, Vec<u64>)>) -> Vec<(String, u64)> {
    phases
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_unstable();
            (name, v[v.len() / 2])
        })
        .collect()
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = arg(&args, "--runs").unwrap_or(10).max(1) as usize;
    let latency = Duration::from_millis(arg(&args, "--aws-latency-ms").unwrap_or(0));
    let with_phases = args.iter().any(|a| a == "--phases");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target"));
    let release = target.join("release");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let event = |file: &str| {
        Bytes::from(std::fs::read(root.join("events").join(file)).expect("event file"))
    };
    let functions: Vec<(&str, Bytes)> = vec![
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
    // Every function's references, served by one fake.
    let mut secrets = HashMap::new();
    let mut parameters = HashMap::new();
    let mut plans = Vec::new();
    for (name, ev) in &functions {
        let plain = function_env(name, &root);
        let refs = by_reference(name, &plain);
        secrets.extend(refs.secrets.clone());
        parameters.extend(refs.parameters.clone());
        plans.push((*name, ev.clone(), plain, refs));
    }
    let aws = FakeAws::start(secrets, parameters, latency)
        .await
        .expect("fake AWS");
    let base = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
        let mut env = lambda_env("127.0.0.1:9".parse().expect("addr"), &aws.url(), &root);
        env.retain(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API" && k != "SANDBOX_SECRET");
        for (k, v) in env.iter_mut() {
            if k == "RUST_LOG" {
                *v = if with_phases {
                    "warn,tollgate::init_timing=info".into()
                } else {
                    "warn".into()
                };
            }
        }
        if with_phases {
            env.push(("TOLLGATE_INIT_TIMING".into(), "1".into()));
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    println!(
        "cold start, median of {runs} runs each (fake Runtime API and AWS on loopback, AWS answers after {} ms)",
        latency.as_millis()
    );
    println!(
        "{:<20} {:>7} {:>9} {:>7} {:>9} {:>7} {:>9} {:>9} {:>10} {:>9} {:>8} {:>7} {:>7}",
        "binary",
        "secrets",
        "init ms",
        "× hello",
        "by ref ms",
        "× hello",
        "AWS reqs",
        "in flight",
        "1st inv ms",
        "size KiB",
        "peak MiB",
        "CPU ms",
        "× hello"
    );
    let cpu_ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.2}", ms(d)));
    let mib =
        |kib: Option<u64>| kib.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
    let hello_bin = release.join("hello-lambda");
    let hello = measure(
        &hello_bin,
        &[],
        &Bytes::from_static(b"{\"hello\":\"world\"}"),
        &aws,
        &base(&[]),
        runs,
    )
    .await;
    let size = |bin: &Path| std::fs::metadata(bin).map(|m| m.len() / 1024).unwrap_or(0);
    println!(
        "{:<20} {:>7} {:>9.2} {:>7.2} {:>9} {:>7} {:>9} {:>9} {:>10.2} {:>9} {:>8} {:>7} {:>7}",
        "hello-lambda",
        0,
        ms(hello.init),
        1.0,
        "-",
        "-",
        "0",
        "-",
        ms(hello.first),
        size(&hello_bin),
        mib(hello.peak_rss_kib),
        cpu_ms(hello.cpu),
        if hello.cpu.is_some() { "1.00" } else { "-" }
    );
    let ratio = |d: Duration| d.as_secs_f64() / hello.init.as_secs_f64();
    let cpu_ratio = |d: Option<Duration>| match (d, hello.cpu) {
        (Some(d), Some(h)) => format!("{:.2}", d.as_secs_f64() / h.as_secs_f64()),
        _ => "-".to_owned(),
    };
    let mut phase_rows = Vec::new();
    for (name, ev, plain, refs) in plans {
        let bin = release.join(name);
        let secrets = refs
            .env
            .iter()
            .filter(|(k, _)| SECRET_VARIABLES.contains(k))
            .count();
        let p = measure(&bin, &[], &ev, &aws, &base(&plain), runs).await;
        let mut r = measure(&bin, &[], &ev, &aws, &base(&refs.env), runs).await;
        r.secrets = secrets;
        println!(
            "{name:<20} {:>7} {:>9.2} {:>7.2} {:>9.2} {:>7.2} {:>9} {:>9} {:>10.2} {:>9} {:>8} {:>7} {:>7}",
            r.secrets,
            ms(p.init),
            ratio(p.init),
            ms(r.init),
            ratio(r.init),
            format!("{}/{}", p.init_requests, r.init_requests),
            r.peak_in_flight,
            ms(p.first),
            size(&bin),
            mib(r.peak_rss_kib.max(p.peak_rss_kib)),
            cpu_ms(p.cpu),
            cpu_ratio(p.cpu)
        );
        phase_rows.push((name, p.phases, r.phases, p.cpu_phases, p.cpu));
    }
    if with_phases {
        println!("\ninit phases, median µs (plain values / by reference)");
        for (name, plain, by_ref, _, _) in &phase_rows {
            let shown: Vec<String> = by_ref
                .iter()
                .map(|(phase, r)| {
                    let p = plain
                        .iter()
                        .find(|(q, _)| q == phase)
                        .map_or("-".to_owned(), |(_, us)| us.to_string());
                    format!("{phase} {p}/{r}")
                })
                .collect();
            println!("{name:<20} {}", shown.join(", "));
        }
        println!(
            "\nCPU per phase, median µs (plain values); `after init` = CPU to the first answer minus the phases"
        );
        for (name, _, _, cpu, total) in &phase_rows {
            let sum: u64 = cpu.iter().map(|(_, us)| us).sum();
            let mut shown: Vec<String> = cpu.iter().map(|(p, us)| format!("{p} {us}")).collect();
            if let Some(total) = total {
                let total = total.as_micros() as u64;
                shown.push(format!("after init {}", total.saturating_sub(sum)));
            }
            println!("{name:<20} {}", shown.join(", "));
        }
    }
}

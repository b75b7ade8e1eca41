//! The real `tollgate-local` binary under particular settings: with `PORT=0` its sandbox
//! `pay_url` names the port it bound, with the shortest sweep interval its sweeper still
//! expires orders, and with a real table or queue it refuses to start on the public
//! development secrets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local(env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate-local"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for var in [
        "TABLE_NAME",
        "QUEUE_URL",
        "AUTH_JWT_SECRET",
        "AUTH_JWKS_PATH",
        "SANDBOX_SECRET",
        "STREAM_SIGNING_KEYS",
        "PUBLIC_BASE_URL",
        "CATALOG_JSON",
        "CATALOG_PATH",
        "PROVIDERS",
        "LOCAL_QUEUE_FILE",
    ] {
        c.env_remove(var);
    }
    c.env("PORT", "0").env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// One request over a fresh connection; the whole answer, head and body.
fn request(addr: &str, method: &str, path: &str, token: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The string value of `"name":"…"` in a JSON answer.
fn field(answer: &str, name: &str) -> Option<String> {
    let start = answer.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let len = answer[start..].find('"')?;
    Some(answer[start..start + len].to_owned())
}

/// Starts the server; its address and demo token.
fn start(env: &[(&str, &str)]) -> (Server, String, String) {
    let mut child = local(env)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tollgate-local");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut token) = (None, None);
    while addr.is_none() || token.is_none() {
        let Some(Ok(line)) = lines.next() else {
            panic!("server ended before printing its address and demo token")
        };
        if let Some(a) = line.strip_prefix("tollgate-local listening on http://") {
            addr = Some(a.trim().to_owned());
        } else if let Some(t) = line.trim().strip_prefix("export TOKEN=") {
            token = Some(t.to_owned());
        }
    }
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr.unwrap_or_default(), token.unwrap_or_default())
}

const ORDER: &str = r#"{"product_id":"pass-monthly","plan_id":"7d","provider":"sandbox"}"#;

#[test]
fn port_zero_gives_a_pay_url_with_the_bound_port() {
    let (_server, addr, token) = start(&[]);
    let created = request(&addr, "POST", "/orders", &token, ORDER);
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let id = field(&created, "order_id").expect("order_id");
    assert_eq!(
        field(&created, "pay_url").as_deref(),
        Some(format!("http://{addr}/sandbox/orders/{id}/pay").as_str()),
        "{created}"
    );
}

#[test]
fn a_one_second_sweep_interval_expires_orders() {
    let (_server, addr, token) =
        start(&[("SWEEP_INTERVAL_SECONDS", "1"), ("ORDER_TTL_SECONDS", "1")]);
    let created = request(&addr, "POST", "/orders", &token, ORDER);
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let id = field(&created, "order_id").expect("order_id");
    // The order is due after 1 s; the sweeper, every second, must expire it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = request(&addr, "GET", &format!("/orders/{id}"), &token, "");
        if field(&last, "state").as_deref() == Some("EXPIRED") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the order was not expired by the sweeper within 20 s: {last}");
}

/// Runs the binary, which must exit unsuccessfully (within a bound); its standard error.
fn start_fails(env: &[(&str, &str)]) -> String {
    let mut child = local(env)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate-local");
    let stderr = child.stderr.take().expect("stderr");
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tollgate-local started with {env:?} instead of refusing"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    BufReader::new(stderr).read_to_string(&mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[test]
fn a_real_table_or_queue_needs_real_secrets() {
    let err = start_fails(&[("TABLE_NAME", "tollgate-prod")]);
    assert!(err.contains("AUTH_JWT_SECRET"), "{err}");
    let err = start_fails(&[
        ("QUEUE_URL", "http://127.0.0.1:9/queue/jobs"),
        ("AUTH_JWT_SECRET", "a-real-secret-of-at-least-32-bytes!"),
    ]);
    assert!(err.contains("SANDBOX_SECRET"), "{err}");
}

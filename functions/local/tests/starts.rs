//! The real `tollgate-local` binary: starts with the example catalog, prints where it
//! listens, the providers and a demo token that works, and shuts down cleanly on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn starts_serves_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-local"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("PORT", "0")
        .env_remove("TABLE_NAME")
        .env_remove("AUTH_JWT_SECRET")
        .env_remove("CATALOG_JSON")
        .env_remove("CATALOG_PATH")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tollgate-local");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut token = None;
    let mut providers = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (addr.is_none() || token.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(a) = line.strip_prefix("tollgate-local listening on http://") {
            addr = Some(a.trim().to_owned());
        } else if let Some(t) = line.trim().strip_prefix("export TOKEN=") {
            token = Some(t.to_owned());
        } else if let Some(p) = line.trim().strip_prefix("providers: ") {
            providers = Some(p.to_owned());
        }
    }
    let (addr, token) = match (addr, token) {
        (Some(a), Some(t)) => (a, t),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not print its address and demo token");
        }
    };
    assert_eq!(providers.as_deref(), Some("sandbox"));
    let health = get(&addr, "/healthz", None);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ent = get(&addr, "/entitlements", Some(&token));
    assert!(
        ent.starts_with("HTTP/1.1 200") && ent.contains(r#""credits":0"#),
        "{ent}"
    );
    let denied = get(&addr, "/entitlements", Some("forged"));
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    // Ctrl-C: the process exits by itself, successfully.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

//! The real `tollgate-local` binary under particular settings: with a real table or queue it
//! refuses to start on the public development secrets.

use std::io::{BufReader, Read};
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

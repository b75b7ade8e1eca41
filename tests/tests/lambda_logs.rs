//! The log lines of a real Lambda process: the `tollgate-lambda` binary, started as the
//! functions' mains start, served events by a fake Runtime API, its stdout parsed line by
//! line. Every log line carries the Powertools keys at the top level, the invocation's
//! request id and trace id, and `cold_start` true on the process's first invocation only.

use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tollgate_tests::fake_aws::FakeAws;
use tollgate_tests::fake_runtime::{lambda_env, request_id, trace_header, FakeRuntime};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn event(file: &str) -> Bytes {
    Bytes::from(std::fs::read(root().join("events").join(file)).expect("event file"))
}

/// Runs `function` over `events` and answers its log lines (the EMF metric lines left out)
/// and what the fake runtime recorded.
async fn run(function: &str, events: Vec<Bytes>) -> (Vec<Map<String, Value>>, FakeRuntime) {
    let aws = FakeAws::start(HashMap::new(), HashMap::new(), Duration::ZERO)
        .await
        .unwrap();
    let runtime = FakeRuntime::start(events).await.unwrap();
    let mut env = lambda_env(runtime.addr(), &aws.url(), &root());
    env.push((
        "AWS_LAMBDA_FUNCTION_NAME".into(),
        format!("tollgate-{function}"),
    ));
    env.push(("POWERTOOLS_SERVICE_NAME".into(), "tollgate-test".into()));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate-lambda"))
        .arg(function)
        .env_clear()
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let answered = runtime.all_answered(Duration::from_secs(60)).await;
    let mut child = child;
    let _ = child.start_kill();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        answered && runtime.init_error().is_none(),
        "{function} did not answer every event; stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(o)) => o,
            _ => panic!("{function} wrote a line that is not a JSON object: {l}"),
        })
        .filter(|o| !o.contains_key("_aws"))
        .collect();
    (lines, runtime)
}

/// The keys every line has, in or out of an invocation.
fn assert_standard_keys(function: &str, line: &Map<String, Value>) {
    for key in ["level", "location", "message", "timestamp", "service"] {
        assert!(line.contains_key(key), "{key} missing: {line:?}");
    }
    assert_eq!(line["service"], "tollgate-test");
    assert_eq!(
        line["function_name"],
        format!("tollgate-{function}").as_str()
    );
    assert_eq!(line["function_memory_size"], 256);
    assert!(!line.contains_key("fields"), "nested fields: {line:?}");
    assert!(!line.contains_key("span"), "{line:?}");
}

/// The line with `message` written during invocation `i` (from 0).
fn line_of<'a>(lines: &'a [Map<String, Value>], message: &str, i: usize) -> &'a Map<String, Value> {
    lines
        .iter()
        .find(|l| l["message"] == message && l["function_request_id"] == request_id(i).as_str())
        .unwrap_or_else(|| panic!("no {message:?} line in invocation {i}: {lines:#?}"))
}

fn root_of(i: usize) -> String {
    let header = trace_header(i);
    header
        .split(';')
        .next()
        .and_then(|r| r.strip_prefix("Root="))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_sweeper_logs_its_invocations_and_only_the_first_is_a_cold_start() {
    let scheduled = event("sweeper/scheduled.json");
    let (lines, runtime) = run("sweeper", vec![scheduled.clone(), scheduled]).await;
    assert_eq!(runtime.invocations().len(), 2);
    for line in &lines {
        assert_standard_keys("sweeper", line);
    }
    for (i, cold) in [(0, true), (1, false)] {
        let line = line_of(&lines, "sweep finished", i);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["cold_start"], cold, "{line:?}");
        assert_eq!(line["xray_trace_id"], root_of(i).as_str());
        assert_eq!(
            line["function_arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:bench"
        );
        // The event's own field, at the top level.
        assert!(
            line["report"].as_str().unwrap().contains("expired"),
            "{line:?}"
        );
    }
}

#[tokio::test]
async fn the_verifier_logs_a_poison_message_with_its_fields_at_top_level() {
    let (lines, _) = run("verifier", vec![event("verifier/batch.json")]).await;
    for line in &lines {
        assert_standard_keys("verifier", line);
    }
    let line = line_of(&lines, "poison message", 0);
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["cold_start"], true);
    assert_eq!(line["message_id"], "00000002-5d0b-4ffc-9b5d-0f0f0f0f0f0f");
    assert!(line.contains_key("reason"), "{line:?}");
}

#[tokio::test]
async fn an_http_function_logs_a_rejected_callback_with_the_invocation_keys() {
    let (lines, runtime) = run(
        "provider-callback",
        vec![event("provider-callback/sandbox-forged.json")],
    )
    .await;
    let answer: Value =
        serde_json::from_slice(runtime.invocations()[0].response.as_ref().unwrap()).unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");
    for line in &lines {
        assert_standard_keys("provider-callback", line);
    }
    let line = line_of(&lines, "callback rejected", 0);
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["cold_start"], true);
    assert_eq!(line["xray_trace_id"], root_of(0).as_str());
    assert_eq!(line["provider"], "sandbox");
    // The sandbox key never appears in the logs.
    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains(tollgate_tests::SANDBOX_SECRET));
}

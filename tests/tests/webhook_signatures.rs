//! Webhook signatures checked by implementations other than the one that signs: a verifier
//! written here from the Standard Webhooks 1.0 text (on aws-lc-rs, not the signer's `hmac`
//! crate), and the `standardwebhooks` package from PyPI in the test venv.
use std::io::Write;
use std::process::{Command, Stdio};
use tollgate::clock::Clock;
use tollgate::domain::event::Event;
use tollgate::webhook::sign::{sign, SignedHeaders, SigningKey};

const NEW_KEY: &str = "whsec_bmV3LWtleS1vZi0xNi1ieXRlcw==";
const OLD_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The spec's verification: the signed content is `id.timestamp.body`, the signature header
/// a space-separated list of `v1,<base64>`; any one matching under the key is enough.
fn verify_by_the_spec(key: &str, h: &SignedHeaders, body: &[u8]) -> bool {
    use aws_lc_rs::hmac;
    use base64::Engine;
    let Some(b64) = key.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(secret) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let mut content = format!("{}.{}.", h.id, h.timestamp).into_bytes();
    content.extend_from_slice(body);
    h.signature.split(' ').any(|part| {
        let Some(("v1", sig)) = part.split_once(',') else {
            return false;
        };
        base64::engine::general_purpose::STANDARD
            .decode(sig)
            .is_ok_and(|s| hmac::verify(&k, &content, &s).is_ok())
    })
}

fn event_body() -> (String, Vec<u8>) {
    let e = Event::coins("user-1", Some("coins-100"), 100, 1_800_000_000, "order:X");
    let body = serde_json::to_vec(&serde_json::json!({
        "id": e.id, "type": e.kind, "occurred_at": e.occurred_at, "user_id": e.user_id,
        "product_id": e.product_id, "line": "default", "data": e.data,
    }))
    .unwrap();
    (e.id, body)
}

fn keys() -> Vec<SigningKey> {
    vec![
        SigningKey::parse(NEW_KEY).unwrap(),
        SigningKey::parse(OLD_KEY).unwrap(),
    ]
}

#[test]
fn the_specs_verifier_accepts_each_key_and_nothing_altered() {
    let (id, body) = event_body();
    let h = sign(&id, 1_800_000_000, &body, &keys());
    assert_eq!(h.id, id);
    assert!(verify_by_the_spec(NEW_KEY, &h, &body));
    assert!(verify_by_the_spec(OLD_KEY, &h, &body));
    assert!(!verify_by_the_spec(
        "whsec_b3RoZXIta2V5LW9mLTE2LWJ5dGVz",
        &h,
        &body
    ));
    let mut altered = body.clone();
    altered[2] ^= 1;
    assert!(!verify_by_the_spec(NEW_KEY, &h, &altered));
    let mut later = h.clone();
    later.timestamp = "1800000001".into();
    assert!(!verify_by_the_spec(NEW_KEY, &later, &body));
    let mut other = h.clone();
    other.id = "evt_0".into();
    assert!(!verify_by_the_spec(OLD_KEY, &other, &body));
}

const PY_VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
req = json.load(sys.stdin)
out = []
for case in req["cases"]:
    try:
        Webhook(case["key"]).verify(case["body"], case["headers"])
        out.append("ok")
    except WebhookVerificationError as e:
        out.append("refused")
print(json.dumps(out))
"#;

#[test]
fn the_standardwebhooks_package_verifies() {
    let venv = std::env::var("TOLLGATE_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/tollgate-venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = format!("{venv}/bin/python");
    if !std::path::Path::new(&python).exists() {
        eprintln!("skipping: no test venv at {venv} (scripts/test creates it)");
        return;
    }
    let (id, body) = event_body();
    // The package checks the timestamp against its clock (5 minutes either way).
    let now = tollgate::clock::SystemClock.now();
    let h = sign(&id, now, &body, &keys());
    let headers = |h: &SignedHeaders| {
        serde_json::json!({
            "webhook-id": h.id, "webhook-timestamp": h.timestamp, "webhook-signature": h.signature
        })
    };
    let text = String::from_utf8(body.clone()).unwrap();
    let mut stale = h.clone();
    stale.timestamp = (now - 3_600).to_string();
    let cases = serde_json::json!({"cases": [
        {"key": NEW_KEY, "body": text, "headers": headers(&h)},
        {"key": OLD_KEY, "body": text, "headers": headers(&h)},
        {"key": "whsec_b3RoZXIta2V5LW9mLTE2LWJ5dGVz", "body": text, "headers": headers(&h)},
        {"key": NEW_KEY, "body": text.replace("100", "101"), "headers": headers(&h)},
        {"key": NEW_KEY, "body": text, "headers": headers(&stale)},
    ]});
    let mut child = Command::new(&python)
        .args(["-c", PY_VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks missing from {venv}? run scripts/test (it installs \
         scripts/requirements-test.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts, ["ok", "ok", "refused", "refused", "refused"]);
}

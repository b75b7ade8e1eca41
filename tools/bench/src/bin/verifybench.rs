//! Verification micro-benchmark: verifies one signed WeChat Pay v3 notification, one Alipay
//! notify and (when present) one Apple signed transaction with Tollgate's real provider code,
//! N times each, and prints
//! `{"wechat_us_per_verify": x, "alipay_us_per_verify": y, ...}` as one JSON line.
//!
//! Input is a JSON file of freshly signed inputs (written by `scripts/refcompare.py`, which
//! also runs the providers' reference SDKs over the same inputs):
//!
//! ```text
//! { "now": <unix secs>,
//!   "wechat": { "mch_id", "app_id", "api_v3_key", "merchant_serial", "merchant_private_key_pem",
//!               "platform_serial", "platform_public_key_pem",
//!               "headers": {"Wechatpay-Signature": .., "Wechatpay-Timestamp": .., "Wechatpay-Nonce": ..,
//!                           "Wechatpay-Serial": .., "Wechatpay-Signature-Type": ..},
//!               "body", "tampered_body", "expect": {"out_trade_no", "amount_minor"} },
//!   "alipay": { "app_id", "seller_id", "app_private_key_pem", "alipay_public_key_pem",
//!               "body", "tampered_body", "expect": {"out_trade_no", "amount_minor"} },
//!   "apple": { "jws", "tampered_jws", "root_pem", "expect_transaction_id" } }
//! ```
//!
//! Every timed call is checked: the parsed result must carry the expected out_trade_no and
//! amount, and the tampered body (one byte changed) must be rejected. Keys and configs are
//! built once, outside the timed loop (as a Lambda does at init).
//!
//! Usage: `verifybench <input.json> <iterations> [--now <unix secs>]`. `now` defaults to the
//! input's `now` (the time the inputs were signed), so the 5-minute `Wechatpay-Timestamp`
//! window passes however long the build took.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::providers::alipay::wire::AlipayConfig;
use tollgate::providers::notification::VerifiedNotification;
use tollgate::providers::wechat::wire::{SignatureHeaders, WechatConfig};
use tollgate::providers::wire_error::VerifyError;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("input: missing string field {key:?}"))
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers.as_object().and_then(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    })
}

fn check(what: &str, got: &VerifiedNotification, expect: &Value) {
    let want_no = s(expect, "out_trade_no");
    let want_amount = expect["amount_minor"]
        .as_i64()
        .expect("input: expect.amount_minor");
    assert_eq!(got.out_trade_no, want_no, "{what}: out_trade_no");
    assert_eq!(got.amount_minor, want_amount, "{what}: amount_minor");
}

/// Runs `f` `warmup` times, then `n` times, and returns the mean per call.
fn time_per_call<T>(n: u32, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..(n / 10).clamp(1, 200) {
        black_box(f());
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    start.elapsed() / n
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6 * 1000.0).round() / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: verifybench <input.json> <iterations> [--now <unix secs>]";
    let (path, n, now_arg) = match args.as_slice() {
        [_, p, n] => (p, n, None),
        [_, p, n, flag, now] if flag == "--now" => (p, n, Some(now)),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let n: u32 = n.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| {
        eprintln!("iterations must be a positive integer\n{usage}");
        std::process::exit(2);
    });
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let input: Value = serde_json::from_str(&text).expect("input is not JSON");
    let now: i64 = match now_arg {
        Some(t) => t.parse().expect("--now must be unix seconds"),
        None => input["now"].as_i64().unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock before 1970")
                .as_secs() as i64
        }),
    };

    // --- WeChat Pay v3: signature over "ts\nnonce\nbody\n" + AES-256-GCM resource ---
    let w = &input["wechat"];
    let platform_keys = format!(
        "{}={}",
        s(w, "platform_serial"),
        s(w, "platform_public_key_pem")
    );
    let wx = WechatConfig::new(
        s(w, "mch_id"),
        s(w, "app_id"),
        s(w, "api_v3_key"),
        s(w, "merchant_serial"),
        s(w, "merchant_private_key_pem"),
        &platform_keys,
    )
    .expect("WechatConfig");
    let hv = &w["headers"];
    let need = |name: &str| header(hv, name).unwrap_or_else(|| panic!("input: header {name}"));
    let headers = SignatureHeaders {
        signature: need("Wechatpay-Signature"),
        timestamp: need("Wechatpay-Timestamp"),
        nonce: need("Wechatpay-Nonce"),
        serial: need("Wechatpay-Serial"),
        signature_type: header(hv, "Wechatpay-Signature-Type"),
    };
    let wx_body = s(w, "body").as_bytes();
    let wx_verify = |body: &[u8]| wx.verify_notification(&headers, body, now);
    let got = wx_verify(wx_body).expect("Tollgate rejected the WeChat notification");
    check("wechat", &got, &w["expect"]);
    let wx_tampered = match wx_verify(s(w, "tampered_body").as_bytes()) {
        Err(e) => e,
        Ok(_) => panic!("Tollgate ACCEPTED the tampered WeChat notification"),
    };
    let wx_per = time_per_call(n, || {
        let v = wx_verify(black_box(wx_body)).expect("WeChat verify failed in the loop");
        assert_eq!(v.amount_minor, got.amount_minor);
        v
    });

    // --- Alipay: RSA2 over the sorted, empty-skipping check content of the form body ---
    let a = &input["alipay"];
    let ali = AlipayConfig::new(
        s(a, "app_id"),
        a.get("seller_id").and_then(Value::as_str),
        s(a, "app_private_key_pem"),
        s(a, "alipay_public_key_pem"),
    )
    .expect("AlipayConfig");
    let ali_body = s(a, "body").as_bytes();
    let ali_verify = |body: &[u8]| ali.verify_notify(body, Some("utf-8"));
    let got = ali_verify(ali_body).expect("Tollgate rejected the Alipay notify");
    check("alipay", &got, &a["expect"]);
    let ali_tampered = match ali_verify(s(a, "tampered_body").as_bytes()) {
        Err(e) => e,
        Ok(_) => panic!("Tollgate ACCEPTED the tampered Alipay notify"),
    };
    let ali_per = time_per_call(n, || {
        let v = ali_verify(black_box(ali_body)).expect("Alipay verify failed in the loop");
        assert_eq!(v.amount_minor, got.amount_minor);
        v
    });

    // Apple: a StoreKit 2 signed transaction, verified with its x5c chain to the root on
    // every call (Tollgate keeps no chain cache).
    let (apple_per, apple_tampered) = match input.get("apple") {
        None => (None, None),
        Some(ap) => {
            use tollgate::providers::apple::wire::{verify_jws, TrustRoots};
            let roots = TrustRoots::from_pem(s(ap, "root_pem")).expect("Apple root PEM");
            let jws = s(ap, "jws");
            let want = s(ap, "expect_transaction_id");
            let got = verify_jws(jws, &roots).expect("Tollgate rejected the Apple transaction");
            assert_eq!(
                got["transactionId"].as_str(),
                Some(want),
                "apple: wrong transaction"
            );
            let tampered = match verify_jws(s(ap, "tampered_jws"), &roots) {
                Err(e) => format!("{e:?}"),
                Ok(_) => panic!("Tollgate ACCEPTED the tampered Apple transaction"),
            };
            let per = time_per_call(n, || {
                let v =
                    verify_jws(black_box(jws), &roots).expect("Apple verify failed in the loop");
                assert_eq!(v["transactionId"].as_str(), Some(want));
                v
            });
            (Some(us(per)), Some(tampered))
        }
    };

    let reason = |e: VerifyError| e.to_string();
    println!(
        "{}",
        json!({
            "wechat_us_per_verify": us(wx_per),
            "alipay_us_per_verify": us(ali_per),
            "apple_us_per_verify": apple_per,
            "iterations": n,
            "now": now,
            "wechat_tampered_rejected": reason(wx_tampered),
            "alipay_tampered_rejected": reason(ali_tampered),
            "apple_tampered_rejected": apple_tampered,
        })
    );
}

//! Notification verification of every provider, as the callback routes run it, on the test
//! keys the suites use: WeChat (RSA signature + AES-256-GCM decryption), Alipay (RSA2 over the
//! sorted form), Huya (MD5), Apple (JWS with its x5c chain to the root), Google (Pub/Sub push
//! OIDC token, RS256 against the cached JWKS). `cargo bench -p tollgate-tests`.

use base64::Engine as _;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::providers::CallbackRequest;
use tollgate::store::MemoryStore;
use tollgate_tests::*;

const NOW: i64 = T0;

fn request(headers: &[(String, String)], body: String) -> CallbackRequest {
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    CallbackRequest {
        method: http::Method::POST,
        query: None,
        headers: h,
        body: Bytes::from(body),
    }
}

fn app(vars: Vec<(&'static str, String)>) -> Arc<tollgate::app::App> {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Arc::new(
        tollgate::app::App::new(
            test_config(&pairs),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::at(NOW)),
        )
        .unwrap(),
    )
}

fn providers(c: &mut Criterion) {
    // WeChat Pay v3
    let mut vars = wechat::env("http://127.0.0.1:9");
    vars.push(("PROVIDERS", "wechat".into()));
    let a = app(vars);
    let p = a.providers.verifier("wechat").unwrap().clone();
    let order = "01KQ0000000000000000000001";
    let body = String::from_utf8(wechat::notification(
        "TRANSACTION.SUCCESS",
        &wechat::transaction(order, "4200000000000001", 900),
        wechat::API_V3_KEY,
    ))
    .unwrap();
    let headers = wechat::signed_headers(
        body.as_bytes(),
        NOW,
        &wechat::platform_signer(),
        wechat::PUB_KEY_ID,
    );
    let req = request(&headers, body);
    assert!(p.verify_callback(&req, NOW).unwrap().is_some());
    c.bench_function(
        "wechat notification (RSA verify + AES-GCM decrypt + parse)",
        |b| b.iter(|| p.verify_callback(black_box(&req), NOW).unwrap()),
    );

    // Alipay
    let mut vars = alipay::env("http://127.0.0.1:9/gateway.do");
    vars.push(("PROVIDERS", "alipay".into()));
    let a = app(vars);
    let p = a.providers.verifier("alipay").unwrap().clone();
    let form = alipay::notification(
        &alipay::fields(order, "TRADE_SUCCESS", "9.00"),
        &alipay::alipay_signer(),
    );
    let req = request(
        &[(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        form,
    );
    assert!(p.verify_callback(&req, NOW).unwrap().is_some());
    c.bench_function("alipay notify (form decode + RSA2 verify)", |b| {
        b.iter(|| p.verify_callback(black_box(&req), NOW).unwrap())
    });

    // Huya
    let a = app(huya::env());
    let p = a.providers.verifier("huya").unwrap().clone();
    let (auth, body) = huya::post(
        &huya::fields("HY-1", "profile-1", "hy-pass", "1", NOW),
        huya::EXT_SECRET,
    );
    let req = request(
        &[
            ("authorization".into(), auth),
            ("content-type".into(), "application/json".into()),
        ],
        body,
    );
    assert!(p.verify_callback(&req, NOW).unwrap().is_some());
    c.bench_function("huya callback (MD5 + catalog lookup)", |b| {
        b.iter(|| p.verify_callback(black_box(&req), NOW).unwrap())
    });

    // Sandbox, for scale
    let a = app(vec![]);
    let p = a.providers.verifier("sandbox").unwrap().clone();
    let body = serde_json::json!({"order_id": order, "transaction_id": "t", "status": "paid",
                                  "amount": {"amount": 900, "currency": "CNY"}, "timestamp": NOW})
    .to_string();
    let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, body.as_bytes());
    let req = request(&[("x-sandbox-signature".into(), sig)], body);
    c.bench_function("sandbox callback (HMAC-SHA256)", |b| {
        b.iter(|| p.verify_callback(black_box(&req), NOW).unwrap())
    });

    // Apple StoreKit 2 JWS with its certificate chain
    let roots = tollgate::providers::apple::wire::TrustRoots::from_pem(
        &std::fs::read_to_string(apple::fixture_path("root.pem")).unwrap(),
    )
    .unwrap();
    let jws = apple::sign(&apple::transaction(
        "2000000001",
        "2000000001",
        "com.example.vip",
        NOW,
        Some(NOW + 30 * DAY),
        NOW,
    ));
    c.bench_function(
        "apple signed transaction, chain not seen before (ES256 + x5c chain of 3)",
        |b| {
            b.iter_batched(
                || {
                    tollgate::providers::apple::wire::TrustRoots::from_pem(
                        &std::fs::read_to_string(apple::fixture_path("root.pem")).unwrap(),
                    )
                    .unwrap()
                },
                |fresh| tollgate::providers::apple::wire::verify_jws(black_box(&jws), &fresh),
                criterion::BatchSize::SmallInput,
            )
        },
    );
    tollgate::providers::apple::wire::verify_jws(&jws, &roots).unwrap();
    c.bench_function("apple signed transaction, chain verified before", |b| {
        b.iter(|| tollgate::providers::apple::wire::verify_jws(black_box(&jws), &roots).unwrap())
    });
    // What the warm path is measured against: one ES256 verification of the same JWS by
    // the leaf's key, nothing else.
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    let leaf_point = {
        use x509_cert::der::Decode;
        let pem = std::fs::read_to_string(apple::fixture_path("leaf.pem")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .unwrap()
            .to_vec()
    };
    let leaf_key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        leaf_point,
    );
    leaf_key.verify(input.as_bytes(), &sig).unwrap();
    c.bench_function("bare ES256 verify (the same JWS, the leaf's key)", |b| {
        b.iter(|| leaf_key.verify(black_box(input.as_bytes()), &sig).unwrap())
    });

    // Google Pub/Sub push OIDC token
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (fake, gapp) = rt.block_on(async {
        let fake = fake_google::FakeGoogle::start().await;
        let gapp = fake.app(Arc::new(MemoryStore::new()), ManualClock::at(NOW));
        (fake, gapp)
    });
    let google = gapp.google.clone().unwrap();
    let bearer = format!(
        "Bearer {}",
        fake_google::push_token(
            "push_key.pem",
            fake_google::AUDIENCE,
            fake_google::PUSH_ACCOUNT
        )
    );
    rt.block_on(google.verify_push(Some(&bearer))).unwrap();
    c.bench_function("google push OIDC token (RS256, cached JWKS)", |b| {
        b.iter(|| {
            rt.block_on(google.verify_push(black_box(Some(&bearer))))
                .unwrap()
        })
    });
    drop(fake);
}

criterion_group!(benches, providers);
criterion_main!(benches);

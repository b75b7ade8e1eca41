//! Micro-benchmarks of the hot paths: callback verification, stream-token formats, the
//! entitlement rule and the CPU pool's hand-off. `cargo bench -p tollgate`; figures go to
//! docs/PERFORMANCE.md.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tollgate::cpu_pool::CpuPool;
use tollgate::domain::grant::{self, Grant, Term};
use tollgate::domain::{Currency, Money, OrderId};
use tollgate::providers::sandbox;
use tollgate::stream::{aliyun, native, nginx, tencent};

fn callbacks(c: &mut Criterion) {
    let body = sandbox::callback_body(
        &OrderId::from_parts(1_800_000_000_000, [7; 10]),
        "sbx_0123456789abcdef",
        sandbox::Status::Paid,
        Money::new(900, Currency::CNY).unwrap(),
        1_800_000_000,
    );
    let sig = sandbox::sign("bench-secret", &body);
    c.bench_function("sandbox verify (HMAC-SHA256 + parse)", |b| {
        b.iter(|| {
            sandbox::verify("bench-secret", black_box(&body), Some(&sig), 1_800_000_000).unwrap()
        })
    });
    c.bench_function("money parse \"1234.56\"", |b| {
        b.iter(|| Money::parse_decimal(black_box("1234.56"), Currency::CNY).unwrap())
    });
}

fn stream_formats(c: &mut Criterion) {
    let keys = native::SigningKeys::parse("k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI=").unwrap();
    let claims = native::Claims {
        stream: "concert-1201".into(),
        sub: "user-123".into(),
        sid: "sess-0123456789".into(),
        exp: 1_800_000_300,
        ip: None,
        preview: false,
    };
    let token = native::sign(&keys, &claims);
    c.bench_function("native token sign", |b| {
        b.iter(|| native::sign(&keys, black_box(&claims)))
    });
    c.bench_function("native token verify", |b| {
        b.iter(|| native::verify(&keys, black_box(&token), 1_800_000_000, None).unwrap())
    });
    c.bench_function("nginx secure_link md5", |b| {
        b.iter(|| {
            nginx::nginx_secure_link_hash(
                black_box(1_800_000_300),
                "/s/live/main.m3u8",
                Some("127.0.0.1"),
                "secret",
            )
        })
    });
    c.bench_function("tencent txSecret", |b| {
        b.iter(|| {
            tencent::tencent_tx_secret(
                "e12c46f2612d5106e2034781ab261ca3",
                black_box("concert"),
                "6B49D2AC",
            )
        })
    });
    c.bench_function("aliyun type A md5", |b| {
        b.iter(|| {
            aliyun::aliyun_md5hash(
                black_box("/live/concert.flv"),
                1_800_000_000,
                "0",
                "0",
                "aliyuncdnexp1234",
            )
        })
    });
}

fn entitlements(c: &mut Criterion) {
    // 1,000 grants: stacked passes over 10 scopes, events and a few revocations.
    let grants: Vec<Grant> = (0..1_000)
        .map(|i| Grant {
            scope: format!("channel:{}", i % 10),
            product_id: "pass".into(),
            source_id: format!("order-{i:04}"),
            paid_at: 1_700_000_000 + i * 3_600,
            term: if i % 5 == 0 {
                Term::Window {
                    from: 1_700_000_000 + i * 100,
                    until: 1_700_100_000 + i * 100,
                }
            } else {
                Term::Days(7)
            },
            revoked_at: (i % 97 == 0).then_some(1_700_500_000),
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        })
        .collect();
    let scopes = vec!["channel:3".to_string(), "channel:7".to_string()];
    c.bench_function("entitled? over 1,000 grants", |b| {
        b.iter(|| grant::entitled(black_box(&grants), &scopes, 1_750_000_000))
    });
    c.bench_function("live windows of 1,000 grants", |b| {
        b.iter(|| grant::live(black_box(&grants), 1_750_000_000))
    });
}

/// What handing a check to the CPU pool costs, next to running it in place: the price a
/// Lambda would pay for offloading (it runs checks in place) and the local server pays per
/// RSA, JWS or push-token check.
fn cpu_pool(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let inline = CpuPool::inline();
    let blocking = CpuPool::blocking(2, CpuPool::MAX_WAIT);
    c.bench_function("cpu_pool inline (empty job)", |b| {
        b.iter(|| rt.block_on(inline.run(|| black_box(1))).unwrap())
    });
    c.bench_function("cpu_pool blocking thread (empty job)", |b| {
        b.iter(|| rt.block_on(blocking.run(|| black_box(1))).unwrap())
    });
}

criterion_group!(benches, callbacks, stream_formats, entitlements, cpu_pool);
criterion_main!(benches);

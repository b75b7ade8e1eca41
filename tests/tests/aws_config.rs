//! Start-up configuration read from AWS, on moto: secret variables given as Secrets Manager
//! ARNs (whole or one JSON key) and Parameter Store names, resolved concurrently at start-up
//! with every request counted; failures that stop start-up naming the variable; and the
//! catalog read from S3 and swapped by a new upload (new orders take the new price, a paid
//! order keeps what it bought, an invalid upload is refused and counted). Every request
//! goes through a counting loopback proxy, so the counts are what reached AWS.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tollgate::app::App;
use tollgate::clock::{Clock, ManualClock};
use tollgate::config::Profile;
use tollgate::domain::ids::rfc3339;
use tollgate::live_catalog::Refresh;
use tollgate::store::DynamoStore;
use tollgate_tests::aws_proxy::AwsProxy;
use tollgate_tests::*;

/// moto's endpoint, or `None` (the suite is skipped) unless moto is required.
fn moto() -> Option<String> {
    match std::env::var("TOLLGATE_MOTO_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) => {
            assert!(
                std::env::var("TOLLGATE_REQUIRE_MOTO").is_err(),
                "TOLLGATE_REQUIRE_MOTO is set but TOLLGATE_MOTO_ENDPOINT is not"
            );
            eprintln!("skipping AWS configuration suite: TOLLGATE_MOTO_ENDPOINT is not set");
            None
        }
    }
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// moto, reached directly (not through the proxy) to set the scene.
struct Aws {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Aws {
    async fn new(endpoint: &str) -> Self {
        let sdk = sdk(endpoint).await;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build();
        Aws {
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        }
    }

    /// Creates a secret; answers its ARN.
    async fn secret(&self, name: &str, value: &str) -> String {
        self.secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret")
            .arn()
            .expect("arn")
            .to_owned()
    }

    async fn parameter(&self, name: &str, value: &str) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put parameter");
    }

    async fn bucket(&self) -> String {
        let bucket = format!("tollgate-test-{}", unique());
        self.s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        bucket
    }

    async fn upload(&self, bucket: &str, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put object");
    }

    async fn table(&self) -> String {
        let table = format!("tollgate-test-{}", unique());
        DynamoStore::create_table(&self.dynamodb, &table)
            .await
            .expect("create table");
        table
    }
}

async fn load(
    profile: Profile,
    env: &HashMap<&str, String>,
    proxy: &AwsProxy,
    clock: &ManualClock,
) -> Result<Arc<App>, tollgate::app::StartupError> {
    let lookup = |name: &str| env.get(name).cloned();
    App::load(
        profile,
        &lookup,
        Some(sdk(&proxy.endpoint).await),
        Arc::new(clock.clone()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_by_reference_are_read_concurrently_at_start() {
    let Some(moto) = moto() else { return };
    let aws = Aws::new(&moto).await;
    let u = unique();
    let jwt = "jwt-by-arn-0123456789abcdef0123456789";
    let jwt_arn = aws.secret(&format!("tollgate/{u}/jwt"), jwt).await;
    let keys = json!({"stream": STREAM_SIGNING_KEYS, "nginx": "nginx-from-json-key"}).to_string();
    let keys_arn = aws.secret(&format!("tollgate/{u}/keys"), &keys).await;
    aws.parameter(&format!("/tollgate/{u}/sandbox"), "sandbox-from-ssm-secret")
        .await;
    aws.parameter(&format!("/tollgate/{u}/tencent"), "tencent-from-ssm")
        .await;
    let bucket = aws.bucket().await;
    aws.upload(&bucket, "catalog.json", &catalog_json()).await;
    let table = aws.table().await;
    let env = HashMap::from([
        ("TABLE_NAME", table),
        ("CATALOG_S3_URI", format!("s3://{bucket}/catalog.json")),
        ("PROVIDERS", "sandbox".into()),
        ("AUTH_JWT_SECRET", jwt_arn),
        ("STREAM_SIGNING_KEYS", format!("{keys_arn}:stream")),
        ("NGINX_SECURE_LINK_SECRET", format!("{keys_arn}:nginx")),
        ("SANDBOX_SECRET", format!("ssm:/tollgate/{u}/sandbox")),
        ("TENCENT_PLAY_KEY", format!("ssm:/tollgate/{u}/tencent")),
        // Not a secret variable: taken literally.
        ("PUBLIC_BASE_URL", "ssm:/not/a/reference".into()),
    ]);
    let proxy = AwsProxy::start(&moto).await;
    // Two secrets and one batch of parameters together, then the table's warm-up and the
    // catalog together.
    proxy.expect_concurrent(&[3, 2]);
    let app = load(Profile::Lambda, &env, &proxy, &ManualClock::at(T0))
        .await
        .expect("start");
    let (requests, max_in_flight) = proxy.take();
    assert_eq!(
        requests,
        vec![
            "AmazonSSM.GetParameters",
            "DynamoDB_20120810.GetItem",
            "S3 GET",
            "secretsmanager.GetSecretValue",
            "secretsmanager.GetSecretValue",
        ],
        "AWS requests at start-up"
    );
    assert_eq!(max_in_flight, 3, "the references are read all at once");
    assert_eq!(proxy.gate_timeouts(), 0, "each round was sent at once");

    let c = &app.config;
    assert_eq!(c.auth_jwt_secret.as_ref().map(|s| s.expose()), Some(jwt));
    assert_eq!(
        c.sandbox_secret.as_ref().map(|s| s.expose()),
        Some("sandbox-from-ssm-secret")
    );
    let native = c.stream_keys.native.as_ref().expect("native keys");
    assert_eq!(native.signing_kid(), "t1");
    assert_eq!(
        c.stream_keys.nginx.as_ref().map(|s| s.expose()),
        Some("nginx-from-json-key")
    );
    assert_eq!(
        c.stream_keys.tencent.as_ref().map(|s| s.expose()),
        Some("tencent-from-ssm")
    );
    assert_eq!(c.public_base_url.as_deref(), Some("ssm:/not/a/reference"));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("from-ssm") && !shown.contains("from-json-key"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parameters_are_read_ten_to_a_request() {
    let Some(moto) = moto() else { return };
    let aws = Aws::new(&moto).await;
    let u = unique();
    let names = [
        "WECHATPAY_MERCHANT_PRIVATE_KEY",
        "WECHATPAY_API_V3_KEY",
        "WECHATPAY_PLATFORM_KEYS",
        "ALIPAY_APP_PRIVATE_KEY",
        "ALIPAY_PUBLIC_KEY",
        "HUYA_EXT_SECRET",
        "APPLE_PRIVATE_KEY",
        "GOOGLE_SERVICE_ACCOUNT_JSON",
        "NGINX_SECURE_LINK_SECRET",
        "TENCENT_PLAY_KEY",
        "ALIYUN_AUTH_KEY",
    ];
    let mut env = HashMap::from([
        ("CATALOG_JSON", catalog_json()),
        ("AUTH_JWT_SECRET", JWT_SECRET.to_owned()),
    ]);
    for name in names {
        aws.parameter(&format!("/tollgate/{u}/{name}"), &format!("{name}-value"))
            .await;
        env.insert(name, format!("ssm:/tollgate/{u}/{name}"));
    }
    let proxy = AwsProxy::start(&moto).await;
    proxy.expect_concurrent(&[2]);
    let app = load(Profile::Local, &env, &proxy, &ManualClock::at(T0))
        .await
        .expect("start");
    let (requests, max_in_flight) = proxy.take();
    assert_eq!(
        requests,
        vec!["AmazonSSM.GetParameters", "AmazonSSM.GetParameters"]
    );
    assert_eq!(max_in_flight, 2);
    assert_eq!(proxy.gate_timeouts(), 0);
    assert_eq!(
        app.config.provider_vars.get("HUYA_EXT_SECRET"),
        Some("HUYA_EXT_SECRET-value")
    );
    assert_eq!(
        app.config.stream_keys.aliyun.as_ref().map(|s| s.expose()),
        Some("ALIYUN_AUTH_KEY-value")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_reference_stops_start_up_naming_the_variable() {
    let Some(moto) = moto() else { return };
    let aws = Aws::new(&moto).await;
    let u = unique();
    let json_arn = aws
        .secret(
            &format!("tollgate/{u}/json"),
            r#"{"jwt":"hunter2-in-json"}"#,
        )
        .await;
    let plain_arn = aws
        .secret(&format!("tollgate/{u}/plain"), "hunter2-plain")
        .await;
    let missing = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:tollgate/{u}/gone");
    let proxy = AwsProxy::start(&moto).await;
    for (name, value, says) in [
        ("AUTH_JWT_SECRET", missing.clone(), "gone"),
        (
            "SANDBOX_SECRET",
            format!("{json_arn}:sandbox"),
            "\"sandbox\"",
        ),
        (
            "HUYA_EXT_SECRET",
            format!("{plain_arn}:ext"),
            "not a JSON object",
        ),
        (
            "TENCENT_PLAY_KEY",
            format!("ssm:/tollgate/{u}/none"),
            "does not exist",
        ),
    ] {
        let env = HashMap::from([("CATALOG_JSON", catalog_json()), (name, value)]);
        let e = match load(Profile::Local, &env, &proxy, &ManualClock::at(T0)).await {
            Ok(_) => panic!("{name}: started with an unreadable reference"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(says), "{name}: {e}");
        assert!(!e.contains("hunter2"), "{name}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_swapped_in_s3_prices_new_orders_and_leaves_paid_ones() {
    let Some(moto) = moto() else { return };
    let aws = Aws::new(&moto).await;
    let bucket = aws.bucket().await;
    aws.upload(&bucket, "catalog.json", &catalog_json()).await;
    let mut env = HashMap::from([
        ("TABLE_NAME", aws.table().await),
        ("CATALOG_S3_URI", format!("s3://{bucket}/catalog.json")),
        ("CATALOG_REFRESH_SECONDS", "60".into()),
        ("AUTH_JWT_SECRET", JWT_SECRET.into()),
        ("SANDBOX_SECRET", SANDBOX_SECRET.into()),
        ("STREAM_SIGNING_KEYS", STREAM_SIGNING_KEYS.into()),
    ]);
    // Huya prices its sales from the catalog at each callback.
    env.extend(tollgate_tests::huya::env());
    let proxy = AwsProxy::start(&moto).await;
    let clock = ManualClock::at(T0);
    let app = load(Profile::Local, &env, &proxy, &clock)
        .await
        .expect("start");
    let s = TestServer::start(app.clone()).await;
    let s3_requests = |proxy: &AwsProxy| -> Vec<String> {
        let (requests, _) = proxy.take();
        requests
            .into_iter()
            .filter(|r| r.starts_with("S3"))
            .collect()
    };
    s3_requests(&proxy);
    let order = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"});

    // Bought and paid, and ordered but not yet paid, at the first price.
    let paid = s.buy("alice", "pass", Some("7d")).await;
    let pending = s.call("bob", "POST", "/orders", Some(order.clone())).await;
    assert_eq!(pending.status, 201);
    let pending = pending.json();
    assert_eq!(pending["amount"]["amount"], 900);
    assert!(
        s3_requests(&proxy).is_empty(),
        "no S3 request within the interval"
    );

    // The 7-day plan now costs 1200 and lasts 10 days.
    let mut v2: serde_json::Value = serde_json::from_str(&catalog_json()).expect("json");
    v2["products"][0]["plans"][0] = json!({"id": "7d", "days": 10,
        "price": {"amount": 1200, "currency": "CNY"}});
    aws.upload(&bucket, "catalog.json", &v2.to_string()).await;
    clock.advance(59);
    let r = s
        .call("carol", "POST", "/orders", Some(order.clone()))
        .await;
    assert_eq!(r.json()["amount"]["amount"], 900, "not looked at yet");
    assert!(s3_requests(&proxy).is_empty());
    clock.advance(1);
    let r = s
        .call("carol", "POST", "/orders", Some(order.clone()))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["amount"]["amount"], 1200, "the new price");
    assert_eq!(s3_requests(&proxy), vec!["S3 GET (conditional)"]);
    // Huya's level 1 is the 7d plan: now 1200 for 10 days (a stale price would be refused as
    // an amount mismatch).
    let fields = tollgate_tests::huya::fields("HY-SWAP", "p9", "hy-pass", "1", clock.now());
    let (auth, body) = tollgate_tests::huya::post(&fields, tollgate_tests::huya::EXT_SECRET);
    let r = s
        .request(
            "POST",
            "/callbacks/huya",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let streamer = s.call("huya:p9", "GET", "/entitlements", None).await.json();
    assert_eq!(
        streamer["grants"][0]["valid_until"],
        rfc3339(T0 + 10 * DAY),
        "{streamer}"
    );

    // The order placed at 900 is paid at 900 and grants its 7 days; the paid one is as it was.
    let cb = json!({"order_id": pending["order_id"], "transaction_id": "txn-bob",
        "status": "paid", "amount": {"amount": 900, "currency": "CNY"}, "timestamp": clock.now()});
    assert_eq!(s.sandbox_callback(&cb).await.status, 200);
    let bob = s.call("bob", "GET", "/entitlements", None).await.json();
    assert_eq!(
        bob["grants"][0]["valid_until"],
        rfc3339(T0 + 60 + 7 * DAY),
        "{bob}"
    );
    let alice = s.call("alice", "GET", "/entitlements", None).await.json();
    assert_eq!(
        alice["grants"][0]["valid_until"],
        rfc3339(T0 + 7 * DAY),
        "{alice}"
    );
    assert_eq!(alice["grants"][0]["source_id"], paid, "{alice}");

    // Unchanged: a conditional read answered "not modified".
    clock.advance(60);
    assert_eq!(
        app.catalog.refresh_if_due(clock.now_ms()).await,
        Refresh::Unchanged
    );
    assert_eq!(s3_requests(&proxy), vec!["S3 GET (conditional)"]);

    // An invalid upload is refused, counted, and the catalog in force stays.
    let mut bad = v2.clone();
    bad["products"][0]["plans"][0]["price"]["amount"] = json!(-5);
    aws.upload(&bucket, "catalog.json", &bad.to_string()).await;
    clock.advance(60);
    let r = s.call("dave", "POST", "/orders", Some(order.clone())).await;
    assert_eq!(r.json()["amount"]["amount"], 1200);
    assert_eq!(app.catalog.rejections(), 1);
    clock.advance(60);
    assert!(matches!(
        app.catalog.refresh_if_due(clock.now_ms()).await,
        Refresh::Rejected(_)
    ));
    assert_eq!(
        app.catalog.rejections(),
        2,
        "refused again while it is there"
    );

    // Fixed: taken at the next look.
    v2["products"][0]["plans"][0]["price"]["amount"] = json!(1500);
    aws.upload(&bucket, "catalog.json", &v2.to_string()).await;
    clock.advance(60);
    let r = s.call("erin", "POST", "/orders", Some(order)).await;
    assert_eq!(r.json()["amount"]["amount"], 1500);
    s.stop().await;
}

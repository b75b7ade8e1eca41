//! Shared support for the end-to-end suites: a test catalog and app, the local server on a
//! loopback port, an HTTP client, and DynamoDB on moto when the test command provides it.

pub mod alipay;
pub mod api_gateway;
pub mod apple;
pub mod aws_proxy;
pub mod conformance;
pub mod fake;
pub mod fake_aws;
pub mod fake_google;
pub mod fake_provider;
pub mod fake_runtime;
pub mod faults;
pub mod fuzz;
pub mod huya;
pub mod nginx;
pub mod openapi;
pub mod provider_conformance;
pub mod soak;
pub mod template_routes;
pub mod wallet_conformance;
pub mod webdriver;
pub mod webhooks;
pub mod wechat;
pub mod wrappers;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate::app::App;
use tollgate::clock::{Clock, ManualClock};
use tollgate::config::{Config, Profile};
use tollgate::domain::ids::rfc3339;
use tollgate::store::{DynamoStore, MemoryStore, Store};

/// The tests' "now": 2027-01-15T08:00:00Z. Event windows are placed around it.
pub const T0: i64 = 1_800_000_000;
pub const DAY: i64 = 86_400;
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-at-least-32-bytes";
pub const SANDBOX_SECRET: &str = "test-sandbox-secret";
/// Native stream-token keys: `t1` signs, `t0` (an older key) still verifies.
pub const STREAM_SIGNING_KEYS: &str =
    "t1:dGVzdC1zdHJlYW0tc2lnbmluZy1rZXktb25l,t0:dGVzdC1zdHJlYW0tc2lnbmluZy1rZXktb2xk";
pub const NGINX_SECRET: &str = "test-nginx-secure-link-secret";

/// The quota for creates that test something else: counted in their window, never refused.
pub const UNCAPPED: tollgate::domain::OrderQuota = tollgate::domain::OrderQuota {
    window_seconds: 900,
    limit: None,
};

pub fn catalog_json() -> String {
    serde_json::json!({
        "products": [
            { "id": "pass", "title": "Channel pass", "kind": "pass", "grants": ["channel:main"],
              "plans": [ { "id": "7d", "days": 7, "price": { "amount": 900, "currency": "CNY" } },
                         { "id": "30d", "days": 30, "price": { "amount": 3000, "currency": "CNY" } } ],
              "store_ids": { "huya": { "goods_uuid": "hy-pass", "levels": { "1": "7d", "2": "30d" } } } },
            { "id": "concert", "title": "Concert", "kind": "event", "grants": ["stream:concert"],
              "price": { "amount": 1800, "currency": "CNY" },
              "window": { "starts_at": rfc3339(T0 + DAY), "ends_at": rfc3339(T0 + DAY + 3 * 3600),
                          "replay_until": rfc3339(T0 + 7 * DAY) } },
            { "id": "coins-100", "title": "100 coins", "kind": "credits", "credits": 100,
              "price": { "amount": 600, "currency": "CNY" },
              "store_ids": { "apple": "com.example.coins100", "google": "coins_100",
                             "huya": { "goods_uuid": "hy-coins" } } },
            { "id": "vip", "title": "VIP", "kind": "subscription", "grants": ["channel:vip"],
              "store_ids": { "apple": "com.example.vip", "google": "vip_monthly" } },
            { "id": "vip-plus", "title": "VIP plus", "kind": "subscription",
              "grants": ["channel:vip", "channel:plus"],
              "store_ids": { "apple": "com.example.vipplus", "google": "vipplus_monthly" } }
        ],
        "streams": [
            { "id": "concert", "requires_any": ["stream:concert", "channel:vip"], "preview_seconds": 300,
              "origin": "https://live.example.com/live/concert.m3u8" }
        ]
    })
    .to_string()
}

pub fn test_config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("CATALOG_JSON".into(), catalog_json()),
        ("PROVIDERS".into(), "sandbox".into()),
        ("SANDBOX_SECRET".into(), SANDBOX_SECRET.into()),
        ("AUTH_MODE".into(), "jwt".into()),
        ("AUTH_JWT_SECRET".into(), JWT_SECRET.into()),
        ("STREAM_SIGNING_KEYS".into(), STREAM_SIGNING_KEYS.into()),
        ("NGINX_SECURE_LINK_SECRET".into(), NGINX_SECRET.into()),
        ("TENCENT_PLAY_KEY".into(), "test-tencent-play-key".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(Profile::Local, |k| vars.get(k).cloned()).expect("test config")
}

/// An app with extra configuration (provider variables) on top of [`test_config`].
pub fn app_with(store: Arc<dyn Store>, clock: ManualClock, extra: &[(&str, String)]) -> Arc<App> {
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Arc::new(App::new(test_config(&extra), store, Arc::new(clock)).expect("test app"))
}

pub fn test_app(store: Arc<dyn Store>, clock: ManualClock) -> Arc<App> {
    test_app_with(store, clock, &[])
}

/// `test_app` with extra (or overriding) configuration; an empty value unsets a variable.
pub fn test_app_with(
    store: Arc<dyn Store>,
    clock: ManualClock,
    extra: &[(&str, &str)],
) -> Arc<App> {
    Arc::new(App::new(test_config(extra), store, Arc::new(clock)).expect("test app"))
}

/// A bearer token for `user`, valid for an hour of real time (JWT expiry is checked against
/// the system clock, not the app's).
pub fn bearer(user: &str) -> String {
    bearer_with_scope(user, None)
}

/// A bearer token for an operator `user` with the role `tollgate:admin`.
pub fn admin_bearer(user: &str) -> String {
    bearer_with_scope(user, Some(tollgate::api::auth::ADMIN_ROLE))
}

/// A bearer token for `user` whose `scope` claim is `scope`, valid for an hour of real time.
pub fn bearer_with_scope(user: &str, scope: Option<&str>) -> String {
    let now = tollgate::clock::SystemClock.now();
    let token = tollgate::api::auth::mint_hs256_scoped(JWT_SECRET, user, scope, now, 3600)
        .expect("an HS256 token");
    format!("Bearer {token}")
}

/// Which stores a suite runs on: always memory, DynamoDB when moto is available.
pub enum Backend {
    Memory,
    Dynamo,
}

/// DynamoDB on the moto server the test command started. Without one, `None` (the suite is
/// skipped with a message), unless `TOLLGATE_REQUIRE_MOTO` is set: then it fails.
pub async fn moto_store() -> Option<DynamoStore> {
    moto_store_counting().await.map(|(s, _)| s)
}

/// Counts every HTTP request (attempt) the DynamoDB client sends: the store's real round trips.
#[derive(Debug, Default)]
pub struct RequestCounter(pub std::sync::atomic::AtomicU64);

impl RequestCounter {
    pub fn take(&self) -> u64 {
        self.0.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct CountRequests(Arc<RequestCounter>);

impl aws_sdk_dynamodb::config::Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }
    fn read_before_transmit(
        &self,
        _ctx: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0 .0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Like [`moto_store`], with a counter of the HTTP requests its client sends.
pub async fn moto_store_counting() -> Option<(DynamoStore, Arc<RequestCounter>)> {
    let Ok(endpoint) = std::env::var("TOLLGATE_MOTO_ENDPOINT") else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MOTO").is_err(),
            "TOLLGATE_REQUIRE_MOTO is set but TOLLGATE_MOTO_ENDPOINT is not"
        );
        eprintln!("skipping DynamoDB suite: TOLLGATE_MOTO_ENDPOINT is not set (run scripts/test)");
        return None;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let counter = Arc::new(RequestCounter::default());
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(CountRequests(counter.clone()))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("tollgate-test-{}", unique());
    DynamoStore::create_table(&client, &table)
        .await
        .expect("create table on moto");
    counter.take();
    Some((DynamoStore::new(client, table), counter))
}

pub async fn store_for(backend: Backend) -> Option<Arc<dyn Store>> {
    match backend {
        Backend::Memory => Some(Arc::new(MemoryStore::new())),
        Backend::Dynamo => moto_store().await.map(|s| Arc::new(s) as Arc<dyn Store>),
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        tollgate::clock::SystemClock.now_ms(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The local server on an ephemeral loopback port; stopped when dropped.
pub struct TestServer {
    pub app: Arc<App>,
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(app: Arc<App>) -> Self {
        // Like the local server, which serves the dashboard page.
        tollgate_dashboard::install();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tollgate::api::server::serve(app.clone(), listener, async {
            let _ = rx.await;
        }));
        TestServer {
            app,
            base,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        request_to(&self.base, method, path, headers, body).await
    }

    /// An operator's request (`ops`, role `tollgate:admin`), JSON when `body` is given.
    pub async fn admin(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        let auth = admin_bearer("ops");
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.request(method, path, &headers, body).await
    }

    /// An authenticated JSON request as `user`.
    pub async fn call(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let auth = bearer(user);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.request(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Sends a correctly signed sandbox callback.
    pub async fn sandbox_callback(&self, body: &serde_json::Value) -> Reply {
        let raw = body.to_string();
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, raw.as_bytes());
        self.request(
            "POST",
            "/callbacks/sandbox",
            &[
                ("x-sandbox-signature", &sig),
                ("content-type", "application/json"),
            ],
            raw,
        )
        .await
    }

    /// Buys `product_id` (and `plan_id`) for `user` through the sandbox provider at the
    /// app's current time; returns the order id.
    pub async fn buy(&self, user: &str, product_id: &str, plan_id: Option<&str>) -> String {
        let mut body = serde_json::json!({"product_id": product_id, "provider": "sandbox"});
        if let Some(p) = plan_id {
            body["plan_id"] = serde_json::json!(p);
        }
        let r = self.call(user, "POST", "/orders", Some(body)).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let order = r.json();
        let cb = serde_json::json!({
            "order_id": order["order_id"], "transaction_id": format!("txn-{}", order["order_id"].as_str().unwrap_or("")),
            "status": "paid", "amount": order["amount"], "timestamp": self.app.clock.now()
        });
        let r = self.sandbox_callback(&cb).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        order["order_id"].as_str().unwrap_or_default().to_owned()
    }

    /// Refunds a sandbox order bought with [`TestServer::buy`].
    pub async fn refund(&self, order_id: &str, amount: i64) {
        let cb = serde_json::json!({
            "order_id": order_id, "transaction_id": format!("txn-{order_id}"),
            "status": "refunded", "amount": {"amount": amount, "currency": "CNY"},
            "timestamp": self.app.clock.now()
        });
        let r = self.sandbox_callback(&cb).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One HTTP request to `base` (a loopback server), answered in full.
pub async fn request_to(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).expect("request");
    let resp = tollgate::api::server::http_client()
        .request(req)
        .await
        .expect("server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status.
    pub fn assert_problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["type"].is_string() && p["detail"].is_string(), "{p}");
        p
    }
}

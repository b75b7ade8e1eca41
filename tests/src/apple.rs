//! Apple test support: JWS signed under the test-only chains in `fixtures/apple` (made by
//! `scripts/gen_apple_test_certs.sh` with Apple's marker OIDs), payload builders, and an app
//! configured to trust the test root.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::app::App;
use tollgate::clock::ManualClock;
use tollgate::store::Store;

pub const BUNDLE: &str = "com.example.tollgate";
pub const APP_APPLE_ID: i64 = 1_234_567;

pub fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/apple/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

/// A PEM certificate as the base64 DER that `x5c` carries.
pub fn x5c_entry(name: &str) -> String {
    let pem = fixture(&format!("{name}.pem"));
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    STANDARD.encode(STANDARD.decode(b64).expect("pem body"))
}

/// A fixture certificate's validity (`name.pem`), unix seconds: tests sign at instants
/// inside or outside it, so they do not depend on when the fixtures were made.
pub fn certificate_validity(name: &str) -> (i64, i64) {
    use x509_cert::der::Decode;
    let pem = fixture(&format!("{name}.pem"));
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).expect("pem body");
    let cert = x509_cert::Certificate::from_der(&der).expect("certificate");
    let v = &cert.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs() as i64,
        v.not_after.to_unix_duration().as_secs() as i64,
    )
}

/// Signs `payload` with the PKCS#8 key `key` (a leaf), carrying `chain` as `x5c`.
pub fn sign_with(key: &str, chain: &[&str], payload: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(chain.iter().map(|c| x5c_entry(c)).collect());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(fixture(&format!("{key}.p8")).as_bytes())
        .expect("leaf key");
    jsonwebtoken::encode(&header, payload, &key).expect("sign")
}

/// Signed by the valid test chain.
pub fn sign(payload: &Value) -> String {
    sign_with("leaf", &["leaf", "intermediate", "root"], payload)
}

/// Replaces a JWS's header (keeping payload and signature).
pub fn with_header(jws: &str, header: &Value) -> String {
    let mut parts: Vec<&str> = jws.split('.').collect();
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    parts[0] = &h;
    parts.join(".")
}

/// Replaces a JWS's payload (keeping header and signature).
pub fn with_payload(jws: &str, payload: &Value) -> String {
    let mut parts: Vec<&str> = jws.split('.').collect();
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    parts[1] = &p;
    parts.join(".")
}

pub fn header_of(jws: &str) -> Value {
    let h = jws.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

/// A transaction payload; times in unix seconds (Apple sends milliseconds).
pub fn transaction(
    txn_id: &str,
    otid: &str,
    product: &str,
    purchased: i64,
    expires: Option<i64>,
    signed: i64,
) -> Value {
    let mut t = json!({
        "transactionId": txn_id, "originalTransactionId": otid, "bundleId": BUNDLE,
        "productId": product, "purchaseDate": purchased * 1000,
        "originalPurchaseDate": purchased * 1000, "quantity": 1,
        "type": if expires.is_some() { "Auto-Renewable Subscription" } else { "Consumable" },
        "inAppOwnershipType": "PURCHASED", "environment": "Production",
        "signedDate": signed * 1000, "storefront": "USA", "price": 4990, "currency": "USD",
    });
    if let Some(e) = expires {
        t["expiresDate"] = json!(e * 1000);
    }
    t
}

/// A signed notification carrying `txn` (and renewal info when given).
pub fn notification(
    uuid: &str,
    kind: &str,
    subtype: Option<&str>,
    signed: i64,
    txn: Option<&Value>,
    renewal: Option<&Value>,
) -> String {
    let mut data = json!({
        "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE, "bundleVersion": "1",
        "environment": "Production", "status": 1,
    });
    if let Some(t) = txn {
        data["signedTransactionInfo"] = json!(sign(t));
    }
    if let Some(r) = renewal {
        data["signedRenewalInfo"] = json!(sign(r));
    }
    let mut n = json!({
        "notificationType": kind, "notificationUUID": uuid, "version": "2.0",
        "signedDate": signed * 1000, "data": data,
    });
    if let Some(s) = subtype {
        n["subtype"] = json!(s);
    }
    sign(&n)
}

pub fn renewal(otid: &str, grace_until: Option<i64>, signed: i64) -> Value {
    let mut r = json!({
        "originalTransactionId": otid, "autoRenewStatus": 1, "environment": "Production",
        "signedDate": signed * 1000, "productId": "com.example.vip",
        "autoRenewProductId": "com.example.vip",
    });
    if let Some(g) = grace_until {
        r["gracePeriodExpiresDate"] = json!(g * 1000);
        r["isInBillingRetryPeriod"] = json!(true);
    }
    r
}

pub fn apple_vars(environment: &str, root: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PROVIDERS", "sandbox,apple".into()),
        ("APPLE_BUNDLE_ID", BUNDLE.into()),
        ("APPLE_APP_APPLE_ID", APP_APPLE_ID.to_string()),
        ("APPLE_ENVIRONMENT", environment.into()),
        ("APPLE_ROOT_CERTS", fixture_path(root)),
    ]
}

pub fn apple_app_with(
    store: Arc<dyn Store>,
    clock: ManualClock,
    vars: &[(&'static str, String)],
) -> Arc<App> {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Arc::new(App::new(crate::test_config(&pairs), store, Arc::new(clock)).expect("apple app"))
}

pub fn apple_app(store: Arc<dyn Store>, clock: ManualClock) -> Arc<App> {
    apple_app_with(store, clock, &apple_vars("Production", "root.pem"))
}

/// A fake App Store Server API on loopback: "Look Up Order ID" with request-JWT checks.
pub struct FakeAppStore {
    pub base: String,
    /// Order id → signed transactions.
    pub orders: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAppStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAppStore {
    pub async fn start() -> Self {
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let orders: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>> =
            Arc::default();
        let o = orders.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let o = o.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let o = o.clone();
                            async move { Ok::<_, std::convert::Infallible>(lookup(&o, req)) }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeAppStore { base, orders, task }
    }

    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut v = apple_vars("Production", "root.pem");
        v.push(("APPLE_API_BASE_URL", self.base.clone()));
        v.push((
            "APPLE_ISSUER_ID",
            "57246542-96fe-1a63-e053-0824d011072a".into(),
        ));
        v.push(("APPLE_KEY_ID", "TESTKEY123".into()));
        v.push(("APPLE_PRIVATE_KEY", fixture("api_key.p8")));
        v
    }
}

fn lookup(
    orders: &std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let reply = |status: u16, body: Value| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .unwrap()
    };
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let key =
        jsonwebtoken::DecodingKey::from_ec_pem(fixture("api_key_public.pem").as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["appstoreconnect-v1"]);
    v.set_issuer(&["57246542-96fe-1a63-e053-0824d011072a"]);
    let ok = jsonwebtoken::decode_header(token)
        .is_ok_and(|h| h.kid.as_deref() == Some("TESTKEY123"))
        && jsonwebtoken::decode::<Value>(token, &key, &v).is_ok_and(|c| c.claims["bid"] == BUNDLE);
    if !ok {
        return reply(
            401,
            json!({"errorCode": 4010000, "errorMessage": "Unauthenticated"}),
        );
    }
    let Some(id) = req.uri().path().strip_prefix("/inApps/v1/lookup/") else {
        return reply(404, json!({}));
    };
    match orders.lock().unwrap().get(id) {
        Some(txns) => reply(200, json!({"status": 0, "signedTransactions": txns})),
        None => reply(200, json!({"status": 1})),
    }
}

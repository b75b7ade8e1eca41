//! A fake Google on loopback: the OAuth token endpoint (it checks the service-account JWT
//! assertion), the JWK set for push tokens, and the Play Developer API purchase resources,
//! acknowledge and consume, with scripted state and injected failures. Plus minting of
//! Pub/Sub push OIDC tokens and an app configured against it.

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tollgate::app::{App, Queue};
use tollgate::clock::ManualClock;
use tollgate::queue::MemoryQueue;
use tollgate::store::Store;

pub const PACKAGE: &str = "com.example.tollgate";
pub const AUDIENCE: &str = "https://tollgate.example/notifications/google";
pub const PUSH_ACCOUNT: &str = "rtdn@tollgate-test.iam.gserviceaccount.com";

pub fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/google/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[derive(Default)]
pub struct PlayState {
    pub subscriptions: HashMap<String, Value>,
    /// (product id, token) → ProductPurchase
    pub products: HashMap<(String, String), Value>,
    pub token_requests: u32,
    /// Acknowledge calls that fail with 500 before one succeeds.
    pub fail_acks: u32,
    pub ack_attempts: u32,
    pub acked: Vec<String>,
    pub consumed: Vec<String>,
    pub api_calls: u32,
}

pub struct FakeGoogle {
    pub base: String,
    pub state: Arc<Mutex<PlayState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(PlayState::default()));
        let (s, b) = (state.clone(), base.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, b) = (s.clone(), b.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                        let (s, b) = (s.clone(), b.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(&s, &b, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeGoogle { base, state, task }
    }

    pub fn set_subscription(&self, token: &str, v: Value) {
        self.state
            .lock()
            .unwrap()
            .subscriptions
            .insert(token.into(), v);
    }

    pub fn set_product(&self, product: &str, token: &str, v: Value) {
        self.state
            .lock()
            .unwrap()
            .products
            .insert((product.into(), token.into()), v);
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut PlayState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PROVIDERS", "sandbox,google".into()),
            ("GOOGLE_PACKAGE_NAME", PACKAGE.into()),
            (
                "GOOGLE_SERVICE_ACCOUNT_JSON",
                fixture_path("service_account.json"),
            ),
            ("GOOGLE_API_BASE_URL", self.base.clone()),
            ("GOOGLE_TOKEN_URL", format!("{}/token", self.base)),
            ("GOOGLE_PUSH_AUDIENCE", AUDIENCE.into()),
            ("GOOGLE_PUSH_SERVICE_ACCOUNT", PUSH_ACCOUNT.into()),
            ("GOOGLE_JWKS_URL", format!("{}/jwks", self.base)),
        ]
    }

    /// An app against this fake, with an in-process job queue.
    pub fn app(&self, store: Arc<dyn Store>, clock: ManualClock) -> Arc<App> {
        let vars = self.vars();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut app =
            App::new(crate::test_config(&pairs), store, Arc::new(clock.clone())).expect("app");
        app.queue = Some(Queue::Memory(Arc::new(MemoryQueue::new(Arc::new(clock)))));
        Arc::new(app)
    }
}

async fn answer(
    state: &Mutex<PlayState>,
    base: &str,
    req: http::Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if path == "/jwks" {
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture_path("push_jwks.json")).unwrap())
                .unwrap();
        return reply(200, jwks);
    }
    if path == "/token" {
        let form = String::from_utf8_lossy(&body).to_string();
        let ok_grant =
            form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
        let assertion = form
            .split('&')
            .find_map(|kv| kv.strip_prefix("assertion="))
            .unwrap_or("");
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(
            std::fs::read_to_string(fixture_path("service_account_public.pem"))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[format!("{base}/token")]);
        v.set_issuer(&["verifier@tollgate-test.iam.gserviceaccount.com"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &v);
        let scope_ok = claims
            .as_ref()
            .is_ok_and(|c| c.claims["scope"] == "https://www.googleapis.com/auth/androidpublisher");
        if !ok_grant || !scope_ok {
            return reply(400, json!({"error": "invalid_grant"}));
        }
        let n = {
            let mut s = state.lock().unwrap();
            s.token_requests += 1;
            s.token_requests
        };
        return reply(
            200,
            json!({"access_token": format!("ya29.fake-{n}"), "expires_in": 3599, "token_type": "Bearer"}),
        );
    }
    if !auth.starts_with("Bearer ya29.fake-") {
        return reply(401, json!({"error": {"code": 401}}));
    }
    let prefix = format!("/androidpublisher/v3/applications/{PACKAGE}/purchases/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return reply(404, json!({"error": {"code": 404}}));
    };
    let mut s = state.lock().unwrap();
    s.api_calls += 1;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["subscriptionsv2", "tokens", token] => match s.subscriptions.get(*token) {
            Some(v) => reply(200, v.clone()),
            None => reply(404, json!({"error": {"code": 404}})),
        },
        ["products", product, "tokens", tail] if tail.ends_with(":consume") => {
            let token = tail.trim_end_matches(":consume");
            if let Some(p) = s
                .products
                .get_mut(&(product.to_string(), token.to_string()))
            {
                p["consumptionState"] = json!(1);
            }
            s.consumed.push(token.to_owned());
            reply(200, json!({}))
        }
        [_, product, "tokens", tail] if tail.ends_with(":acknowledge") => {
            s.ack_attempts += 1;
            if s.fail_acks > 0 {
                s.fail_acks -= 1;
                return reply(503, json!({"error": {"code": 503}}));
            }
            let token = tail.trim_end_matches(":acknowledge").to_owned();
            if let Some(p) = s.products.get_mut(&(product.to_string(), token.clone())) {
                p["acknowledgementState"] = json!(1);
            }
            if let Some(v) = s.subscriptions.get_mut(&token) {
                v["acknowledgementState"] = json!("ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED");
            }
            s.acked.push(token);
            reply(200, json!({}))
        }
        ["products", product, "tokens", token] => {
            match s.products.get(&(product.to_string(), token.to_string())) {
                Some(v) => reply(200, v.clone()),
                None => reply(404, json!({"error": {"code": 404}})),
            }
        }
        _ => reply(404, json!({"error": {"code": 404}})),
    }
}

/// A Pub/Sub push OIDC token signed with `key` (`push_key.pem` is the one the JWKS holds).
pub fn push_token(key: &str, aud: &str, email: &str) -> String {
    let now = {
        use tollgate::clock::Clock;
        tollgate::clock::SystemClock.now()
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("push-key-1".into());
    let claims = json!({
        "iss": "https://accounts.google.com", "aud": aud, "email": email,
        "email_verified": true, "iat": now, "exp": now + 3600, "sub": "1234567890",
    });
    let pem = std::fs::read_to_string(fixture_path(key)).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The Pub/Sub push body for a DeveloperNotification.
pub fn push_body(message_id: &str, notification: &Value) -> String {
    use base64::Engine;
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(notification.to_string()),
            "messageId": message_id, "message_id": message_id,
            "publishTime": "2027-01-15T08:00:00Z", "attributes": {},
        },
        "subscription": "projects/tollgate-test/subscriptions/play-rtdn",
    })
    .to_string()
}

pub fn subscription(state: &str, expiry: i64, account: Option<&str>, ack: &str) -> Value {
    let mut v = json!({
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "startTime": tollgate::domain::ids::rfc3339(crate::T0 - 60),
        "subscriptionState": state,
        "acknowledgementState": ack,
        "lineItems": [{"productId": "vip_monthly", "expiryTime": tollgate::domain::ids::rfc3339(expiry),
                       "autoRenewingPlan": {"autoRenewEnabled": true}}],
    });
    if let Some(a) = account {
        v["externalAccountIdentifiers"] = json!({"obfuscatedExternalAccountId": a});
    }
    v
}

pub fn product_purchase(state: i64, account: Option<&str>) -> Value {
    let mut v = json!({
        "kind": "androidpublisher#productPurchase", "purchaseTimeMillis": ((crate::T0 - 30) * 1000).to_string(),
        "purchaseState": state, "consumptionState": 0, "acknowledgementState": 0,
        "orderId": "GPA.1234-5678-9012-34567", "purchaseType": 0, "quantity": 1,
    });
    if let Some(a) = account {
        v["obfuscatedExternalAccountId"] = json!(a);
    }
    v
}

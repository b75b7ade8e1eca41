//! The fuzz targets, by name, and the app they run against: the test catalog with every
//! provider enabled under the test keys, at the tests' "now" ([`crate::T0`]).

pub mod app_stores;
pub mod auth;
pub mod callbacks;
pub mod domain;
pub mod streams;

use super::{Input, Target};
use std::sync::Arc;
use tollgate::app::App;
use tollgate::clock::ManualClock;
use tollgate::store::MemoryStore;

/// Every target, in the order campaigns run them.
pub const NAMES: &[&str] = &[
    "sandbox",
    "wechat",
    "alipay",
    "huya_post",
    "huya_get",
    "apple_transaction",
    "apple_notification",
    "google_push",
    "google_rtdn",
    "stream_token",
    "stream_verify",
    "jwt",
    "money",
    "catalog",
];

/// The target called `name`, with its genuine inputs made.
pub fn build(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "sandbox" => Box::new(callbacks::sandbox()),
        "wechat" => Box::new(callbacks::wechat()),
        "alipay" => Box::new(callbacks::alipay()),
        "huya_post" => Box::new(callbacks::huya_post()),
        "huya_get" => Box::new(callbacks::huya_get()),
        "apple_transaction" => Box::new(app_stores::apple_transaction()),
        "apple_notification" => Box::new(app_stores::apple_notification()),
        "google_push" => Box::new(app_stores::google_push()),
        "google_rtdn" => Box::new(app_stores::google_rtdn()),
        "stream_token" => Box::new(streams::stream_token()),
        "stream_verify" => Box::new(streams::stream_verify()),
        "jwt" => Box::new(auth::jwt()),
        "money" => Box::new(domain::money()),
        "catalog" => Box::new(domain::catalog()),
        _ => return None,
    })
}

/// Nothing listens here: the providers' outbound calls are never made by the parsers.
const NOWHERE: &str = "http://127.0.0.1:9";

/// The configuration of every provider under the test keys.
fn provider_vars() -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&'static str, String)> = Vec::new();
    vars.extend(crate::wechat::env(NOWHERE));
    vars.extend(crate::alipay::env(&format!("{NOWHERE}/gateway.do")));
    vars.extend(crate::huya::env());
    vars.extend(crate::apple::apple_vars("Production", "root.pem"));
    vars.extend([
        ("GOOGLE_PACKAGE_NAME", crate::fake_google::PACKAGE.into()),
        ("GOOGLE_API_BASE_URL", NOWHERE.into()),
        ("GOOGLE_TOKEN_URL", format!("{NOWHERE}/token")),
        ("GOOGLE_PUSH_AUDIENCE", crate::fake_google::AUDIENCE.into()),
        (
            "GOOGLE_PUSH_SERVICE_ACCOUNT",
            crate::fake_google::PUSH_ACCOUNT.into(),
        ),
        // A file: the push keys are read without a network.
        (
            "GOOGLE_JWKS_URL",
            crate::fake_google::fixture_path("push_jwks.json"),
        ),
        // JWT authentication by RS256 too, under the same test key.
        (
            "AUTH_JWKS_PATH",
            crate::fake_google::fixture_path("push_jwks.json"),
        ),
    ]);
    vars.retain(|(k, _)| *k != "PROVIDERS");
    vars.push((
        "PROVIDERS",
        "sandbox,wechat,alipay,huya,apple,google".into(),
    ));
    vars
}

/// A fresh app with every provider, an embedded store, an in-process queue and a clock at
/// [`crate::T0`].
pub fn app() -> Arc<App> {
    let clock = ManualClock::at(crate::T0);
    let vars = provider_vars();
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = App::new(
        crate::test_config(&pairs),
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
    )
    .expect("fuzz app");
    app.queue = Some(tollgate::app::Queue::Memory(Arc::new(
        tollgate::queue::MemoryQueue::new(Arc::new(clock)),
    )));
    Arc::new(app)
}

/// A compact JWS over raw header and payload bytes (which need not be JSON), signed with
/// `key`: how the re-signed mutants of the JWT targets are made.
fn jws(
    header: &[u8],
    payload: &[u8],
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).expect("sign JWS");
    format!("{signing_input}.{sig}")
}

/// The header and payload bytes of a compact JWS: the plain content it was signed from.
fn jws_parts(token: &str) -> Input {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let mut next = || {
        b64.decode(parts.next().unwrap_or_default())
            .expect("genuine JWS part")
    };
    let header = next();
    let payload = next();
    Input(vec![header, payload])
}

/// A current-thread runtime for the targets whose entry point is async.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

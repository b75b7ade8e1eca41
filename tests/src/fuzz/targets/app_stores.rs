//! The app stores: Apple's signed transactions and App Store Server Notifications (ES256
//! under an x5c chain to the configured root), and Google's Pub/Sub push, whose OIDC token
//! is the only signed part (RS256 under the configured JWK set).

use super::super::{Input, Target, Verdict};
use crate::apple::{notification, renewal, sign, transaction, APP_APPLE_ID, BUNDLE};
use crate::fake_google::{fixture_path, AUDIENCE, PACKAGE, PUSH_ACCOUNT};
use crate::{DAY, T0};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use tollgate::api::{handle, Routes};
use tollgate::app::App;

/// Which Apple entry point a target calls.
#[derive(Clone, Copy)]
enum AppleEntry {
    Transaction,
    Notification,
}

pub struct Apple {
    name: &'static str,
    entry: AppleEntry,
    app: Arc<App>,
    seeds: Vec<Input>,
    /// Header (with the x5c chain) and payload of each seed.
    plain: Vec<Input>,
    /// The test leaf's key: re-signed mutants carry whatever chain their header says.
    leaf: jsonwebtoken::EncodingKey,
}

impl Target for Apple {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fields(&self) -> &'static [&'static str] {
        match self.entry {
            AppleEntry::Transaction => &["signedTransaction"],
            AppleEntry::Notification => &["signedPayload"],
        }
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn plain_seeds(&self) -> &[Input] {
        &self.plain
    }

    fn seal(&self, plain: &Input) -> Input {
        let token = super::jws(
            plain.field(0),
            plain.field(1),
            &self.leaf,
            jsonwebtoken::Algorithm::ES256,
        );
        Input(vec![token.into_bytes()])
    }

    fn check(&self, input: &Input) -> Verdict {
        let Some(apple) = self.app.apple.as_ref() else {
            return Verdict::Wrong("apple is not enabled".into());
        };
        let jws = input.text(0);
        let outcome = match self.entry {
            AppleEntry::Transaction => apple.verify_transaction(&jws).map(|t| format!("{t:?}")),
            AppleEntry::Notification => apple.verify_notification(&jws).map(|n| format!("{n:?}")),
        };
        match outcome {
            Ok(o) => Verdict::Accepted(o),
            Err(_) => Verdict::Rejected,
        }
    }
}

fn vip(txn: &str) -> Value {
    transaction(
        txn,
        "2000",
        "com.example.vip",
        T0 - 60,
        Some(T0 + 30 * DAY),
        T0,
    )
}

fn apple(name: &'static str, entry: AppleEntry, jws: Vec<String>) -> Apple {
    let pem = std::fs::read_to_string(crate::apple::fixture_path("leaf.p8")).expect("leaf key");
    Apple {
        name,
        entry,
        app: super::app(),
        plain: jws.iter().map(|t| super::jws_parts(t)).collect(),
        seeds: jws
            .into_iter()
            .map(|t| Input(vec![t.into_bytes()]))
            .collect(),
        leaf: jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).expect("leaf key"),
    }
}

/// Signed transactions as the app hands them over (`POST /purchases/apple`).
pub fn apple_transaction() -> Apple {
    let mut coins = transaction("1001", "1001", "com.example.coins100", T0 - 60, None, T0);
    coins["appAccountToken"] = json!("0195f3c2-8b7a-7d4e-9f10-23456789abcd");
    let jws = [coins, vip("2000"), vip("2001")].iter().map(sign).collect();
    apple("apple_transaction", AppleEntry::Transaction, jws)
}

/// App Store Server Notifications V2 (`POST /notifications/apple`): notifications carrying
/// a signed transaction and renewal info, and a summary one.
pub fn apple_notification() -> Apple {
    let mut refunded = vip("2001");
    refunded["revocationDate"] = json!(T0 * 1000);
    let summary = sign(&json!({
        "notificationType": "RENEWAL_EXTENSION", "subtype": "SUMMARY",
        "notificationUUID": "9f4c1e2a-0000-4000-8000-000000000004", "version": "2.0",
        "signedDate": T0 * 1000,
        "summary": {"appAppleId": APP_APPLE_ID, "bundleId": BUNDLE, "environment": "Production",
                    "requestIdentifier": "r-1", "productId": "com.example.vip",
                    "succeededCount": 1, "failedCount": 0},
    }));
    let jws = vec![
        notification(
            "9f4c1e2a-0000-4000-8000-000000000001",
            "SUBSCRIBED",
            Some("INITIAL_BUY"),
            T0,
            Some(&vip("2000")),
            Some(&renewal("2000", None, T0)),
        ),
        notification(
            "9f4c1e2a-0000-4000-8000-000000000002",
            "REFUND",
            None,
            T0,
            Some(&refunded),
            None,
        ),
        notification(
            "9f4c1e2a-0000-4000-8000-000000000003",
            "DID_FAIL_TO_RENEW",
            Some("GRACE_PERIOD"),
            T0,
            Some(&vip("2002")),
            Some(&renewal("2000", Some(T0 + 16 * DAY), T0)),
        ),
        summary,
    ];
    apple("apple_notification", AppleEntry::Notification, jws)
}

/// The key the test JWK set holds (`push-key-1`), which signs push tokens.
pub(super) fn push_key() -> jsonwebtoken::EncodingKey {
    let pem = std::fs::read_to_string(fixture_path("push_key.pem")).expect("push key");
    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("push key")
}

/// A Pub/Sub push OIDC token as Google signs it, valid for 30 days of real time (the check
/// uses the system clock) so a long campaign's genuine inputs stay genuine.
fn push_token(sub: &str) -> String {
    let now = {
        use tollgate::clock::Clock;
        tollgate::clock::SystemClock.now()
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("push-key-1".into());
    let claims = json!({
        "iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSH_ACCOUNT,
        "email_verified": true, "iat": now, "exp": now + 30 * DAY, "sub": sub,
    });
    jsonwebtoken::encode(&header, &claims, &push_key()).expect("push token")
}

/// What an `Authorization: Bearer` JWT says, decoded without checking it: an accepted
/// token's claims, compared with the genuine tokens'.
fn claims_of(authorization: &str) -> String {
    let payload = authorization
        .split_once(' ')
        .map_or(authorization, |(_, t)| t)
        .split('.')
        .nth(1)
        .unwrap_or("");
    match URL_SAFE_NO_PAD
        .decode(payload.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        Some(v) => v.to_string(),
        None => format!("undecodable claims {payload:?}"),
    }
}

/// `Google::verify_push`: the OIDC token of a Pub/Sub push.
pub struct GooglePush {
    app: Arc<App>,
    rt: tokio::runtime::Runtime,
    seeds: Vec<Input>,
    /// Header and claims of each seed's token.
    plain: Vec<Input>,
    key: jsonwebtoken::EncodingKey,
}

impl Target for GooglePush {
    fn name(&self) -> &'static str {
        "google_push"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["authorization"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn plain_seeds(&self) -> &[Input] {
        &self.plain
    }

    fn seal(&self, plain: &Input) -> Input {
        let token = super::jws(
            plain.field(0),
            plain.field(1),
            &self.key,
            jsonwebtoken::Algorithm::RS256,
        );
        Input(vec![format!("Bearer {token}").into_bytes()])
    }

    fn check(&self, input: &Input) -> Verdict {
        let Some(google) = self.app.google.as_ref() else {
            return Verdict::Wrong("google is not enabled".into());
        };
        // Header values are visible ASCII (and obs-text, which `to_str` refuses).
        let Ok(auth) = std::str::from_utf8(input.field(0)) else {
            return Verdict::Rejected;
        };
        match self.rt.block_on(google.verify_push(Some(auth))) {
            Ok(()) => Verdict::Accepted(claims_of(auth)),
            Err(_) => Verdict::Rejected,
        }
    }
}

pub fn google_push() -> GooglePush {
    let tokens: Vec<String> = ["1234567890", "1234567891"]
        .iter()
        .map(|sub| push_token(sub))
        .collect();
    GooglePush {
        app: super::app(),
        rt: super::runtime(),
        seeds: tokens
            .iter()
            .map(|t| Input(vec![format!("Bearer {t}").into_bytes()]))
            .collect(),
        plain: tokens.iter().map(|t| super::jws_parts(t)).collect(),
        key: push_key(),
    }
}

/// `POST /notifications/google` through the router: the push token, then the Pub/Sub body
/// and the DeveloperNotification inside it. The body is not signed (the token vouches for
/// the sender), so an accepted body is checked instead: it must decode, as documented, to a
/// notification for this app's package.
pub struct GoogleRtdn {
    app: RefCell<Arc<App>>,
    /// Runs since the app was made: it is remade now and then, so the notes and jobs that
    /// accepted notifications leave behind do not pile up over a long campaign.
    used: Cell<u32>,
    rt: tokio::runtime::Runtime,
    seeds: Vec<Input>,
}

/// The Pub/Sub push as documented, read only as far as the package check needs. serde_json
/// skips fields a struct does not name without checking their UTF-8 or escapes, so bytes
/// like these are accepted inside fields that are never read (as the app does too).
#[derive(serde::Deserialize)]
struct Push {
    message: PushMessage,
}

#[derive(serde::Deserialize)]
struct PushMessage {
    data: String,
}

#[derive(serde::Deserialize)]
struct Notification {
    #[serde(rename = "packageName")]
    package_name: String,
}

/// Why an accepted RTDN body is wrong, if it is: it must be a push whose `message.data` is
/// the base64 of a notification for this app's package.
fn rtdn_body_problem(body: &[u8]) -> Option<String> {
    let push: Push = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return Some(format!("accepted a body that is not a push: {e}")),
    };
    let Ok(decoded) = STANDARD.decode(&push.message.data) else {
        return Some("accepted message.data that is not base64".into());
    };
    match serde_json::from_slice::<Notification>(&decoded) {
        Ok(n) if n.package_name == PACKAGE => None,
        Ok(n) => Some(format!(
            "accepted a notification for package {:?}",
            n.package_name
        )),
        Err(e) => Some(format!("accepted a notification that does not decode: {e}")),
    }
}

impl Target for GoogleRtdn {
    fn name(&self) -> &'static str {
        "google_rtdn"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["authorization", "body"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn check(&self, input: &Input) -> Verdict {
        if self.used.get() >= 20_000 {
            *self.app.borrow_mut() = super::app();
            self.used.set(0);
        }
        self.used.set(self.used.get() + 1);
        let app = self.app.borrow().clone();
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/notifications/google")
            .header("content-type", "application/json");
        if !input.field(0).is_empty() {
            let Ok(v) = http::HeaderValue::from_bytes(input.field(0)) else {
                return Verdict::Rejected;
            };
            req = req.header("authorization", v);
        }
        let Ok(req) = req.body(Bytes::copy_from_slice(input.field(1))) else {
            return Verdict::Rejected;
        };
        let resp = self.rt.block_on(handle(&app, Routes::Local, req));
        if resp.status() != http::StatusCode::OK {
            return Verdict::Rejected;
        }
        if let Some(problem) = rtdn_body_problem(input.field(1)) {
            return Verdict::Wrong(problem);
        }
        Verdict::Accepted(claims_of(&input.text(0)))
    }
}

pub fn google_rtdn() -> GoogleRtdn {
    let note = |extra: Value| {
        let mut n = json!({"version": "1.0", "packageName": PACKAGE,
                           "eventTimeMillis": (T0 * 1000).to_string()});
        if let (Some(n), Some(e)) = (n.as_object_mut(), extra.as_object()) {
            n.extend(e.clone());
        }
        n
    };
    let token = format!("Bearer {}", push_token("1234567890"));
    let bodies = [
        crate::fake_google::push_body(
            "msg-1",
            &note(
                json!({"subscriptionNotification": {"version": "1.0", "notificationType": 4,
                "purchaseToken": "sub-tok-1", "subscriptionId": "vip_monthly"}}),
            ),
        ),
        crate::fake_google::push_body(
            "msg-2",
            &note(
                json!({"oneTimeProductNotification": {"version": "1.0", "notificationType": 1,
                "purchaseToken": "otp-tok-1", "sku": "coins_100"}}),
            ),
        ),
        crate::fake_google::push_body(
            "msg-3",
            &note(
                json!({"voidedPurchaseNotification": {"purchaseToken": "otp-tok-2",
                "orderId": "GPA.1234-5678-9012-34567", "productType": 2, "refundType": 1}}),
            ),
        ),
        crate::fake_google::push_body(
            "msg-4",
            &note(json!({"testNotification": {"version": "1.0"}})),
        ),
    ];
    let seeds = bodies
        .iter()
        .map(|b| Input::new([token.as_bytes(), b.as_bytes()]))
        .collect();
    GoogleRtdn {
        app: RefCell::new(super::app()),
        used: Cell::new(0),
        rt: super::runtime(),
        seeds,
    }
}

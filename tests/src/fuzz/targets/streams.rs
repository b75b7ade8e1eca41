//! Stream tokens: the native token verifier itself, and `POST /streams/verify` (the hook
//! media servers call) in each request shape it understands, through the router.

use super::super::{Input, Target, Verdict};
use crate::{bearer, STREAM_SIGNING_KEYS, T0};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use tollgate::api::{handle, Routes};
use tollgate::app::App;
use tollgate::stream::native;

/// The native token verifier (`v1.{kid}.{claims}.{hmac}`) with the test keys, at T0.
pub struct StreamToken {
    keys: native::SigningKeys,
    seeds: Vec<Input>,
    /// Client IP, kid and claims JSON of each seed.
    plain: Vec<Input>,
    /// The test keys' secrets by kid, to sign re-signed mutants with.
    secrets: Vec<(String, Vec<u8>)>,
}

/// `(kid, secret)` of each entry of a `STREAM_SIGNING_KEYS` value.
fn secrets(spec: &str) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    spec.split(',')
        .filter_map(|e| e.split_once(':'))
        .map(|(kid, b64)| {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("test key is base64");
            (kid.to_owned(), secret)
        })
        .collect()
}

/// A native token over raw claims bytes: `v1.{kid}.{base64url(claims)}.{base64url(hmac)}`,
/// with the secret of `kid` (or the signing key's, for a kid the keys do not have).
fn native_token(secrets: &[(String, Vec<u8>)], kid: &str, claims: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = secrets
        .iter()
        .find(|(k, _)| k == kid)
        .or(secrets.first())
        .map(|(_, s)| s.as_slice())
        .unwrap_or_default();
    let signed = format!("v1.{kid}.{}", b64.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac.finalize().into_bytes()))
}

impl Target for StreamToken {
    fn name(&self) -> &'static str {
        "stream_token"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["token", "client_ip"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn plain_seeds(&self) -> &[Input] {
        &self.plain
    }

    fn seal(&self, plain: &Input) -> Input {
        let token = native_token(&self.secrets, &plain.text(1), plain.field(2));
        Input::new([token.as_bytes(), plain.field(0)])
    }

    fn check(&self, input: &Input) -> Verdict {
        let ip = input.text(1);
        let ip = (!ip.is_empty()).then_some(ip.as_str());
        match native::verify(&self.keys, &input.text(0), T0, ip) {
            Ok(claims) => Verdict::Accepted(format!("{claims:?}")),
            Err(_) => Verdict::Rejected,
        }
    }
}

pub fn stream_token() -> StreamToken {
    let keys = native::SigningKeys::parse(STREAM_SIGNING_KEYS).expect("stream keys");
    // The older key `t0` still verifies: sign with it alone.
    let old = STREAM_SIGNING_KEYS.split(',').nth(1).unwrap_or_default();
    let old = native::SigningKeys::parse(old).expect("old stream key");
    let claims = |sub: &str, ip: Option<&str>, preview: bool| native::Claims {
        stream: "concert".into(),
        sub: sub.into(),
        sid: format!("sess-{sub}"),
        exp: T0 + 300,
        ip: ip.map(str::to_owned),
        preview,
    };
    let signed = [
        (native::sign(&keys, &claims("fan-1", None, false)), ""),
        (
            native::sign(&keys, &claims("fan-2", Some("203.0.113.7"), true)),
            "203.0.113.7",
        ),
        (
            native::sign(&keys, &claims("fan-3", Some("2001:db8::7"), false)),
            "2001:db8::7",
        ),
        (native::sign(&old, &claims("fan-4", None, true)), ""),
    ];
    let seeds = signed
        .iter()
        .map(|(t, ip)| Input::new([t.as_bytes(), ip.as_bytes()]))
        .collect();
    // The token's parts: `v1`, kid, base64url claims, mac.
    let plain = signed
        .iter()
        .map(|(t, ip)| {
            use base64::Engine;
            let parts: Vec<&str> = t.split('.').collect();
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[2])
                .expect("genuine claims");
            Input::new([ip.as_bytes(), parts[1].as_bytes(), &claims])
        })
        .collect();
    StreamToken {
        keys,
        seeds,
        plain,
        secrets: secrets(STREAM_SIGNING_KEYS),
    }
}

/// `POST /streams/verify` as SRS, nginx-rtmp, MediaMTX, nginx `auth_request` and plain
/// clients call it, with tokens the app issued (so their sessions exist).
pub struct StreamVerify {
    app: Arc<App>,
    rt: tokio::runtime::Runtime,
    seeds: Vec<Input>,
}

impl Target for StreamVerify {
    fn name(&self) -> &'static str {
        "stream_verify"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["x-original-uri", "content-type", "query", "body"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn check(&self, input: &Input) -> Verdict {
        let query = input.field(2);
        let uri = if query.is_empty() {
            "/streams/verify".to_owned()
        } else {
            // Bytes a URI cannot hold never arrive.
            let Ok(q) = std::str::from_utf8(query) else {
                return Verdict::Rejected;
            };
            format!("/streams/verify?{q}")
        };
        let mut req = http::Request::builder().method("POST").uri(uri);
        for (i, name) in ["x-original-uri", "content-type"].iter().enumerate() {
            if !input.field(i).is_empty() {
                let Ok(v) = http::HeaderValue::from_bytes(input.field(i)) else {
                    return Verdict::Rejected;
                };
                req = req.header(*name, v);
            }
        }
        let Ok(req) = req.body(Bytes::copy_from_slice(input.field(3))) else {
            return Verdict::Rejected;
        };
        let resp = self.rt.block_on(handle(&self.app, Routes::Local, req));
        if resp.status() == http::StatusCode::OK {
            Verdict::Accepted(String::from_utf8_lossy(resp.body()).into_owned())
        } else {
            Verdict::Rejected
        }
    }
}

/// A native token for `user` on the catalog's stream, issued through the API at T0 (a free
/// preview: the test users own nothing).
fn issue(rt: &tokio::runtime::Runtime, app: &App, user: &str) -> String {
    let req = http::Request::builder()
        .method("POST")
        .uri("/streams/concert/tokens")
        .header("authorization", bearer(user))
        .header("content-type", "application/json")
        .body(Bytes::from(json!({"device_id": "phone-1"}).to_string()))
        .expect("request");
    let resp = rt.block_on(handle(app, Routes::Local, req));
    assert_eq!(
        resp.status(),
        http::StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let v: serde_json::Value = serde_json::from_slice(resp.body()).expect("token JSON");
    v["token"].as_str().expect("token").to_owned()
}

pub fn stream_verify() -> StreamVerify {
    let app = super::app();
    let rt = super::runtime();
    const JSON: &[u8] = b"application/json";
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    let mut seeds = Vec::new();
    for user in ["fan-1", "fan-2"] {
        let token = issue(&rt, &app, user);
        let srs = json!({"action": "on_play", "client_id": "107", "ip": "127.0.0.1",
            "vhost": "__defaultVhost__", "app": "live", "stream": "concert",
            "param": format!("?token={token}")});
        let mediamtx = json!({"user": "", "password": "", "token": "", "ip": "127.0.0.1",
            "action": "read", "path": "live/concert", "protocol": "hls", "id": null,
            "query": format!("token={token}")});
        let rtmp = format!("call=play&addr=127.0.0.1&app=live&name=concert&token={token}");
        let original = format!("/live/concert.m3u8?token={token}");
        let plain = json!({"token": token});
        seeds.extend([
            Input::new([b"", JSON, b"", srs.to_string().as_bytes()]),
            Input::new([b"", FORM, b"", rtmp.as_bytes()]),
            Input::new([b"", JSON, b"", mediamtx.to_string().as_bytes()]),
            Input::new([original.as_bytes(), b"", b"", b""]),
            Input::new([b"", JSON, b"", plain.to_string().as_bytes()]),
            Input::new([b"", b"", format!("token={token}").as_bytes(), b""]),
        ]);
    }
    StreamVerify { app, rt, seeds }
}

//! `Authorization: Bearer` JWTs, as the app authenticates its users: HS256 under the
//! configured secret and RS256 under the configured JWK set.

use super::super::{Input, Target, Verdict};
use crate::JWT_SECRET;
use serde_json::json;
use std::sync::Arc;
use tollgate::app::App;

pub struct Jwt {
    app: Arc<App>,
    seeds: Vec<Input>,
    /// Header and claims of each seed's token.
    plain: Vec<Input>,
    rsa: jsonwebtoken::EncodingKey,
    hmac: jsonwebtoken::EncodingKey,
}

impl Target for Jwt {
    fn name(&self) -> &'static str {
        "jwt"
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

    /// Signed with the RSA key when the header says RS256, else with the HMAC secret.
    fn seal(&self, plain: &Input) -> Input {
        let (key, alg) = if plain.text(0).contains("RS256") {
            (&self.rsa, jsonwebtoken::Algorithm::RS256)
        } else {
            (&self.hmac, jsonwebtoken::Algorithm::HS256)
        };
        let token = super::jws(plain.field(0), plain.field(1), key, alg);
        Input(vec![format!("Bearer {token}").into_bytes()])
    }

    fn check(&self, input: &Input) -> Verdict {
        // The router reads the header with `to_str`: visible ASCII only.
        let Ok(header) = http::HeaderValue::from_bytes(input.field(0)) else {
            return Verdict::Rejected;
        };
        let Ok(header) = header.to_str() else {
            return Verdict::Rejected;
        };
        match self.app.auth.user(None, Some(header)) {
            // User ids become parts of store keys: 1-128 visible ASCII characters, no `#`.
            Ok(user)
                if user.is_empty()
                    || user.len() > 128
                    || !user.bytes().all(|b| b.is_ascii_graphic() && b != b'#') =>
            {
                Verdict::Wrong(format!("accepted user id {user:?}"))
            }
            Ok(user) => Verdict::Accepted(user),
            Err(_) => Verdict::Rejected,
        }
    }
}

/// Tokens valid for 12 hours of real time (under the default maximum lifetime): expiry is
/// checked against the system clock.
const LIFETIME: i64 = 12 * 3600;

pub fn jwt() -> Jwt {
    use tollgate::clock::Clock;
    let now = tollgate::clock::SystemClock.now();
    let hs = tollgate::api::auth::mint_hs256(JWT_SECRET, "fan-1", now, LIFETIME)
        .expect("an HS256 token");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("push-key-1".into());
    let rsa = super::app_stores::push_key();
    let rs = jsonwebtoken::encode(
        &header,
        &json!({"sub": "fan-2", "iat": now, "exp": now + LIFETIME}),
        &rsa,
    )
    .expect("RS256 token");
    let seeds = vec![
        Input(vec![format!("Bearer {hs}").into_bytes()]),
        Input(vec![format!("Bearer {rs}").into_bytes()]),
        Input(vec![format!("bearer {hs}").into_bytes()]),
    ];
    Jwt {
        app: super::app(),
        seeds,
        plain: vec![super::jws_parts(&hs), super::jws_parts(&rs)],
        rsa,
        hmac: jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    }
}

//! Who is calling. Behind API Gateway the JWT authorizer has already verified the token and
//! we read its claims; elsewhere we verify `Authorization: Bearer` ourselves.

use crate::config::{AuthMode, Config};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("the token's subject is not a usable user id")]
    BadSubject,
}

enum Keys {
    Trusted,
    Verify {
        /// (kid, key, algorithm); a token's `kid` picks the key, or the only key is used.
        keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
        issuer: Option<String>,
        audience: Option<String>,
        /// Seconds; see [`Config::auth_max_lifetime_seconds`].
        max_lifetime: i64,
    },
}

/// Clock skew forgiven on `exp`, `nbf` and the lifetime check, in seconds.
const LEEWAY: u64 = 30;

pub struct Authenticator {
    keys: Keys,
}

/// NumericDates may be fractional; jsonwebtoken accepts them, so these do too.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: f64,
    iat: Option<f64>,
}

impl Claims {
    /// Whether the token lives longer than `max` seconds: counted from `iat` when present,
    /// and always from now, so that an `iat` set in the future cannot stretch it.
    fn outlives(&self, max: i64, now: i64) -> bool {
        let max = max as f64;
        let from_iat = self.iat.is_some_and(|iat| self.exp - iat > max);
        let from_now = self.exp - now as f64 > max + LEEWAY as f64;
        from_iat || from_now
    }
}

/// User ids become parts of store keys (`USER#<id>`, `IDEM#<id>#<key>`): keep them printable
/// and free of the `#` separator so no two users can share a key.
pub fn valid_user_id(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= 128 && sub.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        if config.auth_mode == AuthMode::Apigw {
            return Ok(Authenticator {
                keys: Keys::Trusted,
            });
        }
        let mut keys = Vec::new();
        if let Some(secret) = &config.auth_jwt_secret {
            keys.push((
                None,
                DecodingKey::from_secret(secret.expose().as_bytes()),
                Algorithm::HS256,
            ));
        }
        if let Some(path) = &config.auth_jwks_path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("AUTH_JWKS_PATH: cannot read {path:?}: {e}"))?;
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("AUTH_JWKS_PATH: not a JWK set: {e}"))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => {
                        return Err(
                            "AUTH_JWKS_PATH: only RSA and EC P-256 keys are supported".into()
                        )
                    }
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("AUTH_JWKS_PATH: unusable key: {e}"))?;
                keys.push((jwk.common.key_id.clone(), key, alg));
            }
        }
        Ok(Authenticator {
            keys: Keys::Verify {
                keys,
                issuer: config.auth_issuer.clone(),
                audience: config.auth_audience.clone(),
                max_lifetime: config.auth_max_lifetime_seconds,
            },
        })
    }

    /// The caller's user id. `authorizer_sub` is the `sub` claim API Gateway's authorizer put
    /// in the request context (Lambda only); `authorization` is the raw header.
    pub fn user(
        &self,
        authorizer_sub: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<String, AuthError> {
        let sub = match &self.keys {
            Keys::Trusted => authorizer_sub.ok_or(AuthError::Missing)?.to_owned(),
            Keys::Verify {
                keys,
                issuer,
                audience,
                max_lifetime,
            } => {
                let token = authorization
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::Missing)?;
                let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
                let (_, key, alg) = keys
                    .iter()
                    .find(|(kid, _, alg)| {
                        *alg == header.alg && (kid.is_none() || *kid == header.kid)
                    })
                    .ok_or(AuthError::Invalid)?;
                let mut v = Validation::new(*alg);
                v.leeway = LEEWAY;
                v.validate_nbf = true;
                // jsonwebtoken checks `iss` and `aud` only when the token has them: a
                // configured one must also be present.
                let mut required = vec!["exp", "sub"];
                match issuer {
                    Some(i) => {
                        v.set_issuer(&[i]);
                        required.push("iss");
                    }
                    None => v.iss = None,
                }
                match audience {
                    Some(a) => {
                        v.set_audience(&[a]);
                        required.push("aud");
                    }
                    None => v.validate_aud = false,
                }
                v.set_required_spec_claims(&required);
                let claims = decode::<Claims>(token, key, &v)
                    .map_err(|_| AuthError::Invalid)?
                    .claims;
                if claims.outlives(*max_lifetime, chrono::Utc::now().timestamp()) {
                    return Err(AuthError::Invalid);
                }
                claims.sub
            }
        };
        if valid_user_id(&sub) {
            Ok(sub)
        } else {
            Err(AuthError::BadSubject)
        }
    }
}

/// An HS256 token for `sub`, valid `ttl` seconds: the local server's demo token and tests.
pub fn mint_hs256(secret: &str, sub: &str, now: i64, ttl: i64) -> String {
    #[derive(serde::Serialize)]
    struct C<'a> {
        sub: &'a str,
        iat: i64,
        exp: i64,
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &C {
            sub,
            iat: now,
            exp: now + ttl,
        },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn jwt_auth() -> Authenticator {
        // The local server verifies tokens itself, with no issuer or audience required.
        let c = Config::from_lookup(Profile::Local, |k| match k {
            "AUTH_JWT_SECRET" => Some(SECRET.into()),
            "CATALOG_JSON" => Some(r#"{"products":[]}"#.into()),
            _ => None,
        })
        .unwrap();
        Authenticator::from_config(&c).unwrap()
    }

    #[test]
    fn verifies_hs256() {
        let a = jwt_auth();
        let now = chrono::Utc::now().timestamp();
        let t = mint_hs256(SECRET, "alice", now, 60);
        assert_eq!(
            a.user(None, Some(&format!("Bearer {t}"))),
            Ok("alice".into())
        );
        assert_eq!(a.user(Some("mallory"), None), Err(AuthError::Missing));
        let other = mint_hs256("another-secret-of-32-bytes-long!!", "alice", now, 60);
        assert_eq!(
            a.user(None, Some(&format!("Bearer {other}"))),
            Err(AuthError::Invalid)
        );
        let expired = mint_hs256(SECRET, "alice", now - 3600, 60);
        assert_eq!(
            a.user(None, Some(&format!("Bearer {expired}"))),
            Err(AuthError::Invalid)
        );
        let hashy = mint_hs256(SECRET, "a#b", now, 60);
        assert_eq!(
            a.user(None, Some(&format!("Bearer {hashy}"))),
            Err(AuthError::BadSubject)
        );
        assert_eq!(
            a.user(None, Some("Bearer not.a.jwt")),
            Err(AuthError::Invalid)
        );
        assert_eq!(a.user(None, Some("Basic abc")), Err(AuthError::Missing));
    }

    /// An HS256 token with exactly these claims.
    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn a_token_is_refused_before_its_not_before_time() {
        let a = jwt_auth();
        let now = chrono::Utc::now().timestamp();
        let early = token(
            serde_json::json!({"sub": "alice", "iat": now, "nbf": now + 600, "exp": now + 3600}),
        );
        assert_eq!(a.user(None, Some(&bearer(&early))), Err(AuthError::Invalid));
        // The same leeway as for `exp`: a few seconds of clock skew are forgiven.
        let skewed = token(
            serde_json::json!({"sub": "alice", "iat": now, "nbf": now + 10, "exp": now + 3600}),
        );
        assert_eq!(a.user(None, Some(&bearer(&skewed))), Ok("alice".into()));
        let started = token(
            serde_json::json!({"sub": "alice", "iat": now, "nbf": now - 10, "exp": now + 3600}),
        );
        assert_eq!(a.user(None, Some(&bearer(&started))), Ok("alice".into()));
    }

    #[test]
    fn a_token_may_live_at_most_the_maximum_lifetime() {
        let a = jwt_auth();
        let now = chrono::Utc::now().timestamp();
        let day = 86_400;
        let ok = token(serde_json::json!({"sub": "alice", "iat": now, "exp": now + day}));
        assert_eq!(a.user(None, Some(&bearer(&ok))), Ok("alice".into()));
        // Issued with a lifetime over the default maximum of a day, even if issued long ago.
        let long = token(serde_json::json!({"sub": "alice", "iat": now - 1000, "exp": now + day}));
        assert_eq!(a.user(None, Some(&bearer(&long))), Err(AuthError::Invalid));
        let year = token(serde_json::json!({"sub": "alice", "iat": now, "exp": now + 365 * day}));
        assert_eq!(a.user(None, Some(&bearer(&year))), Err(AuthError::Invalid));
        // Without `iat`, what is left of it counts.
        let no_iat = token(serde_json::json!({"sub": "alice", "exp": now + 3600}));
        assert_eq!(a.user(None, Some(&bearer(&no_iat))), Ok("alice".into()));
        let no_iat_long = token(serde_json::json!({"sub": "alice", "exp": now + 2 * day}));
        assert_eq!(
            a.user(None, Some(&bearer(&no_iat_long))),
            Err(AuthError::Invalid)
        );
        // An `iat` in the future does not stretch the allowance.
        let future_iat = token(
            serde_json::json!({"sub": "alice", "iat": now + 300 * day, "exp": now + 301 * day}),
        );
        assert_eq!(
            a.user(None, Some(&bearer(&future_iat))),
            Err(AuthError::Invalid)
        );
        // The maximum is configurable.
        let c = Config::from_lookup(Profile::Local, |k| match k {
            "AUTH_JWT_SECRET" => Some(SECRET.into()),
            "AUTH_JWT_MAX_LIFETIME_SECONDS" => Some("600".into()),
            "CATALOG_JSON" => Some(r#"{"products":[]}"#.into()),
            _ => None,
        })
        .unwrap();
        let short = Authenticator::from_config(&c).unwrap();
        let hour = token(serde_json::json!({"sub": "alice", "iat": now, "exp": now + 3600}));
        assert_eq!(
            short.user(None, Some(&bearer(&hour))),
            Err(AuthError::Invalid)
        );
        let minutes = token(serde_json::json!({"sub": "alice", "iat": now, "exp": now + 600}));
        assert_eq!(
            short.user(None, Some(&bearer(&minutes))),
            Ok("alice".into())
        );
    }

    #[test]
    fn issuer_and_audience_are_checked() {
        let c = Config::from_lookup(Profile::Lambda, |k| match k {
            "AUTH_MODE" => Some("jwt".into()),
            "AUTH_JWT_SECRET" => Some(SECRET.into()),
            "AUTH_JWT_ISSUER" => Some("https://issuer.example".into()),
            "AUTH_JWT_AUDIENCE" => Some("tollgate".into()),
            "CATALOG_JSON" => Some(r#"{"products":[]}"#.into()),
            _ => None,
        })
        .unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = |iss: &str, aud: &str| {
            token(
                serde_json::json!({"sub": "alice", "iss": iss, "aud": aud, "iat": now, "exp": now + 60}),
            )
        };
        let good = claims("https://issuer.example", "tollgate");
        assert_eq!(a.user(None, Some(&bearer(&good))), Ok("alice".into()));
        let other_iss = claims("https://evil.example", "tollgate");
        assert_eq!(
            a.user(None, Some(&bearer(&other_iss))),
            Err(AuthError::Invalid)
        );
        let other_aud = claims("https://issuer.example", "another-app");
        assert_eq!(
            a.user(None, Some(&bearer(&other_aud))),
            Err(AuthError::Invalid)
        );
        let none = mint_hs256(SECRET, "alice", now, 60);
        assert_eq!(a.user(None, Some(&bearer(&none))), Err(AuthError::Invalid));
    }

    #[test]
    fn apigw_trusts_authorizer_claims() {
        let c = Config::from_lookup(Profile::Lambda, |k| {
            (k == "CATALOG_JSON").then(|| r#"{"products":[]}"#.to_string())
        })
        .unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        assert_eq!(a.user(Some("bob"), None), Ok("bob".into()));
        assert_eq!(a.user(None, Some("Bearer x")), Err(AuthError::Missing));
    }
}

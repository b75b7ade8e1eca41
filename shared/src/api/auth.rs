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
    /// The claim that names the caller's roles ([`Config::auth_roles_claim`]).
    roles_claim: String,
}

/// The role that may use every admin route.
pub const ADMIN_ROLE: &str = "tollgate:admin";
/// The role that may read admin routes (customer support) but change nothing.
pub const SUPPORT_ROLE: &str = "tollgate:support";

/// What a caller may do besides watching: read from the roles claim, nothing by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub admin: bool,
    pub support: bool,
}

impl Roles {
    /// Roles named in a claim's text: OAuth's space-separated `scope`, or an array as API
    /// Gateway's JWT authorizer hands it on (`[a b]`), so both spellings of one token agree.
    pub fn from_text(text: &str) -> Roles {
        Self::from_names(
            text.split(|c: char| c.is_whitespace() || c == ',')
                .map(|n| n.trim_matches(|c| c == '[' || c == ']' || c == '"')),
        )
    }

    /// Roles in a verified token's claim: a string as [`Roles::from_text`], or an array of
    /// strings; any other shape names none.
    fn from_claim(v: &serde_json::Value) -> Roles {
        match v {
            serde_json::Value::String(s) => Self::from_text(s),
            serde_json::Value::Array(a) => Self::from_names(a.iter().filter_map(|n| n.as_str())),
            _ => Roles::default(),
        }
    }

    fn from_names<'a>(names: impl Iterator<Item = &'a str>) -> Roles {
        let mut r = Roles::default();
        for n in names {
            r.admin |= n == ADMIN_ROLE;
            r.support |= n == SUPPORT_ROLE;
        }
        r
    }

    /// Whether the caller may read operators' data (support or admin).
    pub fn may_read(&self) -> bool {
        self.admin || self.support
    }
}

/// Who is calling: the user id (`sub`) and their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub roles: Roles,
}

/// What API Gateway's JWT authorizer verified (Lambda only): the `sub` claim and the text
/// of the roles claim, as the authorizer passes claims on.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerClaims<'a> {
    pub sub: Option<&'a str>,
    pub roles: Option<&'a str>,
}

/// NumericDates may be fractional; jsonwebtoken accepts them, so these do too. The rest of
/// the claims are kept to find the roles claim, whose name is configured.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: f64,
    iat: Option<f64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
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
        let roles_claim = config.auth_roles_claim.clone();
        if config.auth_mode == AuthMode::Apigw {
            return Ok(Authenticator {
                keys: Keys::Trusted,
                roles_claim,
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
            roles_claim,
        })
    }

    /// The claim whose value names the caller's roles.
    pub fn roles_claim(&self) -> &str {
        &self.roles_claim
    }

    /// The caller's user id. `authorizer_sub` is the `sub` claim API Gateway's authorizer put
    /// in the request context (Lambda only); `authorization` is the raw header.
    pub fn user(
        &self,
        authorizer_sub: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<String, AuthError> {
        let claims = AuthorizerClaims {
            sub: authorizer_sub,
            roles: None,
        };
        self.caller(&claims, authorization).map(|c| c.user_id)
    }

    /// The caller and their roles: from what API Gateway's authorizer verified (Lambda
    /// behind a JWT authorizer), or from the bearer token in `authorization`.
    pub fn caller(
        &self,
        authorizer: &AuthorizerClaims<'_>,
        authorization: Option<&str>,
    ) -> Result<Caller, AuthError> {
        let (sub, roles) = match &self.keys {
            Keys::Trusted => (
                authorizer.sub.ok_or(AuthError::Missing)?.to_owned(),
                authorizer.roles.map(Roles::from_text).unwrap_or_default(),
            ),
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
                let roles = claims
                    .rest
                    .get(&self.roles_claim)
                    .map(Roles::from_claim)
                    .unwrap_or_default();
                (claims.sub, roles)
            }
        };
        if valid_user_id(&sub) {
            Ok(Caller {
                user_id: sub,
                roles,
            })
        } else {
            Err(AuthError::BadSubject)
        }
    }
}

/// An HS256 token for `sub`, valid `ttl` seconds: the local server's demo token and tests.
pub fn mint_hs256(
    secret: &str,
    sub: &str,
    now: i64,
    ttl: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    mint_hs256_scoped(secret, sub, None, now, ttl)
}

/// [`mint_hs256`] with a `scope` claim (space-separated roles, e.g. [`ADMIN_ROLE`]).
pub fn mint_hs256_scoped(
    secret: &str,
    sub: &str,
    scope: Option<&str>,
    now: i64,
    ttl: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    #[derive(serde::Serialize)]
    struct C<'a> {
        sub: &'a str,
        iat: i64,
        exp: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<&'a str>,
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &C {
            sub,
            iat: now,
            exp: now + ttl,
            scope,
        },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
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
        let t = mint_hs256(SECRET, "alice", now, 60).unwrap();
        assert_eq!(
            a.user(None, Some(&format!("Bearer {t}"))),
            Ok("alice".into())
        );
        assert_eq!(a.user(Some("mallory"), None), Err(AuthError::Missing));
        let other = mint_hs256("another-secret-of-32-bytes-long!!", "alice", now, 60).unwrap();
        assert_eq!(
            a.user(None, Some(&format!("Bearer {other}"))),
            Err(AuthError::Invalid)
        );
        let expired = mint_hs256(SECRET, "alice", now - 3600, 60).unwrap();
        assert_eq!(
            a.user(None, Some(&format!("Bearer {expired}"))),
            Err(AuthError::Invalid)
        );
        let hashy = mint_hs256(SECRET, "a#b", now, 60).unwrap();
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
        let none = mint_hs256(SECRET, "alice", now, 60).unwrap();
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

    #[test]
    fn roles_come_from_the_configured_claim_only() {
        let a = jwt_auth();
        let now = chrono::Utc::now().timestamp();
        let caller = |claims: serde_json::Value| {
            a.caller(&AuthorizerClaims::default(), Some(&bearer(&token(claims))))
                .unwrap()
                .roles
        };
        let base = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "op", "iat": now, "exp": now + 60});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let admin = caller(base(serde_json::json!({"scope": "openid tollgate:admin"})));
        assert!(admin.admin && !admin.support);
        let support = caller(base(serde_json::json!({"scope": "tollgate:support"})));
        assert!(support.support && !support.admin && support.may_read());
        // Near misses name no role.
        for scope in ["tollgate:administrator", "TOLLGATE:ADMIN", "admin", ""] {
            let r = caller(base(serde_json::json!({ "scope": scope })));
            assert_eq!(r, Roles::default(), "{scope:?}");
        }
        // By default a `roles` array is just another claim.
        let ignored = caller(base(serde_json::json!({"roles": ["tollgate:admin"]})));
        assert_eq!(ignored, Roles::default());
        // A viewer's token: no roles, and still a user.
        let viewer = mint_hs256(SECRET, "fan", now, 60).unwrap();
        let c = a
            .caller(&AuthorizerClaims::default(), Some(&bearer(&viewer)))
            .unwrap();
        assert_eq!(c.user_id, "fan");
        assert!(!c.roles.may_read());

        let c = Config::from_lookup(Profile::Local, |k| match k {
            "AUTH_JWT_SECRET" => Some(SECRET.into()),
            "AUTH_ROLES_CLAIM" => Some("roles".into()),
            "CATALOG_JSON" => Some(r#"{"products":[]}"#.into()),
            _ => None,
        })
        .unwrap();
        let by_roles = Authenticator::from_config(&c).unwrap();
        let t = token(base(serde_json::json!({"roles": ["x", "tollgate:admin"]})));
        let r = by_roles
            .caller(&AuthorizerClaims::default(), Some(&bearer(&t)))
            .unwrap()
            .roles;
        assert!(r.admin);
        let t = token(base(serde_json::json!({"scope": "tollgate:admin"})));
        let r = by_roles
            .caller(&AuthorizerClaims::default(), Some(&bearer(&t)))
            .unwrap()
            .roles;
        assert_eq!(r, Roles::default(), "only the configured claim counts");
    }

    #[test]
    fn authorizer_claims_name_roles_as_api_gateway_passes_them() {
        assert!(Roles::from_text("openid tollgate:admin").admin);
        assert!(Roles::from_text("[tollgate:support other]").support);
        assert!(Roles::from_text(r#"["tollgate:admin","x"]"#).admin);
        assert_eq!(Roles::from_text("[tollgate:admins]"), Roles::default());
        let c = Config::from_lookup(Profile::Lambda, |k| {
            (k == "CATALOG_JSON").then(|| r#"{"products":[]}"#.to_string())
        })
        .unwrap();
        let a = Authenticator::from_config(&c).unwrap();
        let claims = AuthorizerClaims {
            sub: Some("op"),
            roles: Some("[tollgate:admin]"),
        };
        let caller = a.caller(&claims, None).unwrap();
        assert_eq!(caller.user_id, "op");
        assert!(caller.roles.admin);
        let no_sub = AuthorizerClaims {
            sub: None,
            roles: Some("tollgate:admin"),
        };
        assert_eq!(a.caller(&no_sub, None), Err(AuthError::Missing));
    }
}

//! Google Play: the `GOOGLE_*` configuration, the Play Developer API client (OAuth 2
//! service-account JWT bearer flow with a cached access token,
//! `purchases.subscriptionsv2.get`, `purchases.products.get`, acknowledge, consume), the
//! Pub/Sub push OIDC token check, and the pre-order's payment parameters. The wire format is
//! [`wire`]; applying purchases is `service::google_purchases`' job.

pub mod wire;

use super::outbound::HttpClient;
use super::{PaymentCreator, ProviderError};
use crate::config::{ConfigError, ProviderVars, Secret};
use crate::domain::Order;
use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use wire::{ProductPurchase, PushClaims, SubscriptionV2};

pub const NAME: &str = "google";
const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";

#[derive(Clone, Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

#[derive(Clone)]
pub struct GoogleConfig {
    pub package_name: String,
    service_account: Option<ServiceAccount>,
    pub api_base_url: String,
    pub token_url: String,
    pub push_audience: String,
    pub push_service_account: String,
    /// An https(s) URL, or a file holding a JWK set.
    pub jwks: String,
}

impl std::fmt::Debug for GoogleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleConfig")
            .field("package_name", &self.package_name)
            .field(
                "client_email",
                &self
                    .service_account
                    .as_ref()
                    .map(|s| s.client_email.as_str()),
            )
            .field("api_base_url", &self.api_base_url)
            .field("token_url", &self.token_url)
            .field("push_audience", &self.push_audience)
            .field("push_service_account", &self.push_service_account)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

fn parse_service_account(text: String) -> Result<ServiceAccount, ConfigError> {
    let text = if text.trim_start().starts_with('{') {
        text
    } else {
        std::fs::read_to_string(text.trim()).map_err(|e| {
            err(
                "GOOGLE_SERVICE_ACCOUNT_JSON",
                format!("neither JSON nor a readable file: {e}"),
            )
        })?
    };
    let sa: ServiceAccount = serde_json::from_str(&text).map_err(|_| {
        err(
            "GOOGLE_SERVICE_ACCOUNT_JSON",
            "not a service-account key (client_email, private_key)",
        )
    })?;
    jsonwebtoken::EncodingKey::from_rsa_pem(sa.private_key.as_bytes()).map_err(|_| {
        err(
            "GOOGLE_SERVICE_ACCOUNT_JSON",
            "private_key is not an RSA PEM",
        )
    })?;
    Ok(sa)
}

fn err(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl GoogleConfig {
    /// Reads this provider's own variables; a missing or bad one stops start-up, named.
    pub fn from_vars(vars: &ProviderVars) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| vars.get(name).map(str::to_owned))
    }

    pub fn from_lookup(var: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let need = |name: &'static str| {
            var(name).ok_or_else(|| err(name, "required when the google provider is enabled"))
        };
        let package_name = need("GOOGLE_PACKAGE_NAME")?;
        // Only the functions that call the Play Developer API (the verifier) hold the key.
        let service_account = match var("GOOGLE_SERVICE_ACCOUNT_JSON") {
            None => None,
            Some(text) => Some(parse_service_account(text)?),
        };
        Ok(GoogleConfig {
            package_name,
            service_account,
            api_base_url: var("GOOGLE_API_BASE_URL")
                .unwrap_or_else(|| "https://androidpublisher.googleapis.com".into())
                .trim_end_matches('/')
                .to_owned(),
            token_url: var("GOOGLE_TOKEN_URL")
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            push_audience: need("GOOGLE_PUSH_AUDIENCE")?,
            push_service_account: need("GOOGLE_PUSH_SERVICE_ACCOUNT")?,
            jwks: var("GOOGLE_JWKS_URL")
                .unwrap_or_else(|| "https://www.googleapis.com/oauth2/v3/certs".into()),
        })
    }
}

/// Why a Pub/Sub push's token was refused (safe to log: never the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PushRejected(pub &'static str);

/// A push token whose signing key was found, not yet verified ([`Google::push_key`]).
pub struct PushToken {
    token: String,
    key: jsonwebtoken::DecodingKey,
}

/// The Play Developer API client and push verifier for this app.
pub struct Google {
    pub config: GoogleConfig,
    client: HttpClient,
    /// The cached access token and when (unix s, real time) to stop using it.
    token: Mutex<Option<(Secret, i64)>>,
    /// JWKS for push tokens and when it was fetched (unix s).
    jwks: Mutex<Option<(jsonwebtoken::jwk::JwkSet, i64)>>,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Google {
    /// `client` is the providers' shared outbound client.
    pub fn new(config: GoogleConfig, client: HttpClient) -> Self {
        Google {
            config,
            client,
            token: Mutex::new(None),
            jwks: Mutex::new(None),
        }
    }

    /// The `obfuscatedExternalAccountId` for a user of this app ([`wire::account_id`]).
    pub fn account_id(&self, user: &str) -> String {
        wire::account_id(&self.config.package_name, user)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ProviderError> {
        self.client.call("Google", method, url, headers, body).await
    }

    /// An OAuth access token for the Play Developer API, cached until a minute before expiry.
    async fn access_token(&self) -> Result<Secret, ProviderError> {
        let mut cached = self.token.lock().await;
        let now = real_now();
        if let Some((t, until)) = cached.as_ref() {
            if now < *until {
                return Ok(t.clone());
            }
        }
        // A missing key is a deployment error: retried (and alarmed in the DLQ), not dropped.
        let sa = self.config.service_account.as_ref().ok_or_else(|| {
            ProviderError::Unavailable(
                "GOOGLE_SERVICE_ACCOUNT_JSON is not configured in this function".into(),
            )
        })?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = sa.private_key_id.clone();
        let claims = serde_json::json!({
            "iss": sa.client_email, "scope": SCOPE, "aud": self.config.token_url,
            "iat": now, "exp": now + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
            .map_err(|_| ProviderError::Refused("service-account key unusable".into()))?;
        let assertion = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|_| ProviderError::Refused("could not sign the assertion".into()))?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let (status, body) = self
            .send(
                Method::POST,
                &self.config.token_url,
                &[("content-type", "application/x-www-form-urlencoded")],
                Bytes::from(form),
            )
            .await?;
        if !status.is_success() {
            return Err(if status.is_server_error() {
                ProviderError::Unavailable(format!("token endpoint answered {status}"))
            } else {
                ProviderError::Refused(format!("token endpoint refused: {status}"))
            });
        }
        #[derive(Deserialize)]
        struct TokenReply {
            access_token: String,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unavailable("token endpoint sent garbage".into()))?;
        let token = Secret::new(reply.access_token);
        let lifetime = reply.expires_in.unwrap_or(3600).clamp(0, 3600);
        *cached = Some((token.clone(), now + lifetime - 60));
        Ok(token)
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}/androidpublisher/v3/applications/{}/purchases/{tail}",
            self.config.api_base_url, self.config.package_name
        )
    }

    async fn api(&self, method: Method, tail: &str) -> Result<Bytes, ProviderError> {
        let token = self.access_token().await?;
        let auth = format!("Bearer {}", token.expose());
        let body = if method == Method::POST {
            Bytes::from_static(b"{}")
        } else {
            Bytes::new()
        };
        let (status, body) = self
            .send(
                method,
                &self.url(tail),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await?;
        match status.as_u16() {
            200..=299 => Ok(body),
            401 => {
                *self.token.lock().await = None;
                Err(ProviderError::Unavailable(
                    "Google refused the access token".into(),
                ))
            }
            429 | 500..=599 => Err(ProviderError::Unavailable(format!(
                "Google answered {status}"
            ))),
            _ => Err(ProviderError::Refused(format!("Google answered {status}"))),
        }
    }

    pub async fn get_subscription(&self, token: &str) -> Result<SubscriptionV2, ProviderError> {
        let body = self
            .api(Method::GET, &format!("subscriptionsv2/tokens/{token}"))
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("unexpected subscription: {e}")))
    }

    pub async fn get_product(
        &self,
        product_id: &str,
        token: &str,
    ) -> Result<ProductPurchase, ProviderError> {
        let body = self
            .api(
                Method::GET,
                &format!("products/{product_id}/tokens/{token}"),
            )
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("unexpected product purchase: {e}")))
    }

    pub async fn acknowledge(
        &self,
        product_id: &str,
        token: &str,
        subscription: bool,
    ) -> Result<(), ProviderError> {
        let kind = if subscription {
            "subscriptions"
        } else {
            "products"
        };
        self.api(
            Method::POST,
            &format!("{kind}/{product_id}/tokens/{token}:acknowledge"),
        )
        .await
        .map(|_| ())
    }

    pub async fn consume(&self, product_id: &str, token: &str) -> Result<(), ProviderError> {
        self.api(
            Method::POST,
            &format!("products/{product_id}/tokens/{token}:consume"),
        )
        .await
        .map(|_| ())
    }

    async fn jwk_set(&self, refresh: bool) -> Result<jsonwebtoken::jwk::JwkSet, PushRejected> {
        let mut cached = self.jwks.lock().await;
        let now = real_now();
        if let Some((set, at)) = cached.as_ref() {
            // Refetch for an unknown key id at most once a minute.
            if !refresh || now - at < 60 {
                return Ok(set.clone());
            }
        }
        let src = &self.config.jwks;
        let text = if src.starts_with("http://") || src.starts_with("https://") {
            let (status, body) = self
                .send(Method::GET, src, &[], Bytes::new())
                .await
                .map_err(|_| PushRejected("JWKS unreachable"))?;
            if !status.is_success() {
                return Err(PushRejected("JWKS unreachable"));
            }
            body.to_vec()
        } else {
            std::fs::read(src).map_err(|_| PushRejected("JWKS file unreadable"))?
        };
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&text).map_err(|_| PushRejected("JWKS is not a JWK set"))?;
        *cached = Some((set.clone(), now));
        Ok(set)
    }

    /// Verifies a Pub/Sub push `Authorization: Bearer` OIDC token: RS256 under Google's
    /// keys, issuer accounts.google.com, the configured audience and service account.
    pub async fn verify_push(&self, authorization: Option<&str>) -> Result<(), PushRejected> {
        let token = self.push_key(authorization).await?;
        self.check_push(&token)
    }

    /// The first half of [`Google::verify_push`], the cheap one: the token's header read and
    /// its key found in the JWKS (fetched when unknown). Nothing is verified yet.
    pub async fn push_key(&self, authorization: Option<&str>) -> Result<PushToken, PushRejected> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(PushRejected("missing bearer token"))?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| PushRejected("malformed token"))?;
        if header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(PushRejected("token is not RS256"));
        }
        let kid = header.kid.ok_or(PushRejected("token has no key id"))?;
        let mut set = self.jwk_set(false).await?;
        if set.find(&kid).is_none() {
            set = self.jwk_set(true).await?;
        }
        let jwk = set.find(&kid).ok_or(PushRejected("unknown key id"))?;
        let key =
            jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| PushRejected("unusable key"))?;
        Ok(PushToken {
            token: token.to_owned(),
            key,
        })
    }

    /// The second half of [`Google::verify_push`], the expensive one and synchronous, so
    /// that the caller may run it off the async workers: the RS256 signature and the claims.
    pub fn check_push(&self, t: &PushToken) -> Result<(), PushRejected> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[&self.config.push_audience]);
        v.set_issuer(&["accounts.google.com", "https://accounts.google.com"]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<PushClaims>(&t.token, &t.key, &v)
            .map_err(|_| PushRejected("token rejected"))?;
        if data.claims.email.as_deref() != Some(self.config.push_service_account.as_str())
            || data.claims.email_verified != Some(true)
        {
            return Err(PushRejected(
                "token is not from the configured service account",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl PaymentCreator for Google {
    fn sells_store_products(&self) -> bool {
        true
    }

    async fn payment_params(
        &self,
        order: &Order,
        _payer: &super::Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        Ok(serde_json::json!({
            "obfuscated_account_id": self.account_id(&order.user_id),
            "order_id": order.order_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_variable() {
        let e = GoogleConfig::from_lookup(&|_| None).unwrap_err();
        assert_eq!(e.name, "GOOGLE_PACKAGE_NAME");
        let e = GoogleConfig::from_lookup(&|k| match k {
            "GOOGLE_PACKAGE_NAME" => Some("com.example".into()),
            "GOOGLE_SERVICE_ACCOUNT_JSON" => Some("{\"client_email\":\"a\"}".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(e.name, "GOOGLE_SERVICE_ACCOUNT_JSON");
        let e = GoogleConfig::from_lookup(&|k| match k {
            "GOOGLE_PACKAGE_NAME" => Some("com.example".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(e.name, "GOOGLE_PUSH_AUDIENCE");
    }
}

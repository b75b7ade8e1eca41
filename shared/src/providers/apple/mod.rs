//! Apple App Store (StoreKit 2, App Store Server Notifications V2): the `APPLE_*`
//! configuration, the verifier of this app's signed data, the App Store Server API call used
//! by recovery, and the pre-order's payment parameters. The wire format is [`wire`]; applying
//! purchases is `service::apple_purchases`' job.

mod chains;
pub mod wire;

use super::{PaymentCreator, ProviderError};
use crate::config::{ConfigError, ProviderVars, Secret};
use crate::domain::Order;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use wire::{AppleRejection, Environment, Notification, RenewalInfo, Transaction, TrustRoots};

pub const NAME: &str = "apple";

/// The environments a deployment can be configured to accept (`APPLE_ENVIRONMENT`).
fn accepted_environment(s: &str) -> Option<Environment> {
    Some(match s {
        "Production" => Environment::Production,
        "Sandbox" => Environment::Sandbox,
        _ => return None,
    })
}

#[derive(Clone)]
pub struct AppleConfig {
    pub bundle_id: String,
    /// Checked against notifications' `appAppleId` when set; required for Production.
    pub app_apple_id: Option<i64>,
    /// Environments whose transactions are accepted (first = this deployment's own).
    pub environments: Vec<Environment>,
    pub roots: TrustRoots,
    pub api_base_url: String,
    pub issuer_id: Option<String>,
    pub key_id: Option<String>,
    pub private_key: Option<Secret>,
}

impl std::fmt::Debug for AppleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleConfig")
            .field("bundle_id", &self.bundle_id)
            .field("app_apple_id", &self.app_apple_id)
            .field("environments", &self.environments)
            .field("roots", &self.roots)
            .field("api_base_url", &self.api_base_url)
            .field("issuer_id", &self.issuer_id)
            .field("key_id", &self.key_id)
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
            .finish()
    }
}

fn err(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl AppleConfig {
    /// Reads this provider's own variables; a missing or bad one stops start-up, named.
    pub fn from_vars(vars: &ProviderVars) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| vars.get(name).map(str::to_owned))
    }

    /// `APPLE_*` variables. `APPLE_ENVIRONMENT` is `Production`
    /// (default) or `Sandbox`, optionally followed by further accepted environments
    /// (`Production,Sandbox` lets App Review's sandbox purchases through).
    pub fn from_lookup(var: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let bundle_id = var("APPLE_BUNDLE_ID").ok_or_else(|| {
            err(
                "APPLE_BUNDLE_ID",
                "required when the apple provider is enabled",
            )
        })?;
        let environments = var("APPLE_ENVIRONMENT")
            .unwrap_or_else(|| "Production".into())
            .split(',')
            .map(|e| {
                accepted_environment(e.trim()).ok_or_else(|| {
                    err(
                        "APPLE_ENVIRONMENT",
                        "must be Production or Sandbox (comma separated to accept both)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut environments = environments;
        // StoreKit testing (Xcode, and the LocalTesting environment of its test sessions)
        // is for test builds only: accepted when asked for, never by default, never
        // beside Production. Signatures and the chain are checked all the same.
        match var("APPLE_ACCEPT_LOCAL_TESTING").as_deref().map(str::trim) {
            None | Some("false") => {}
            Some("true") if environments.contains(&Environment::Production) => {
                return Err(err(
                    "APPLE_ACCEPT_LOCAL_TESTING",
                    "cannot be true while Production transactions are accepted",
                ))
            }
            Some("true") => environments.extend([Environment::Xcode, Environment::LocalTesting]),
            Some(_) => return Err(err("APPLE_ACCEPT_LOCAL_TESTING", "must be true or false")),
        }
        let app_apple_id = match var("APPLE_APP_APPLE_ID") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| err("APPLE_APP_APPLE_ID", "must be a number"))?,
            ),
        };
        if environments.contains(&Environment::Production) && app_apple_id.is_none() {
            return Err(err(
                "APPLE_APP_APPLE_ID",
                "required when Production transactions are accepted",
            ));
        }
        let roots = match var("APPLE_ROOT_CERTS") {
            None => TrustRoots::apple_default(),
            Some(v) => {
                let text = if v.contains("-----BEGIN") {
                    v
                } else {
                    std::fs::read_to_string(v.trim())
                        .map_err(|e| err("APPLE_ROOT_CERTS", format!("cannot read file: {e}")))?
                };
                TrustRoots::from_pem(&text).map_err(|e| err("APPLE_ROOT_CERTS", e))?
            }
        };
        Ok(AppleConfig {
            bundle_id,
            app_apple_id,
            environments,
            roots,
            api_base_url: var("APPLE_API_BASE_URL")
                .unwrap_or_else(|| "https://api.storekit.itunes.apple.com".into())
                .trim_end_matches('/')
                .to_owned(),
            issuer_id: var("APPLE_ISSUER_ID"),
            key_id: var("APPLE_KEY_ID"),
            private_key: var("APPLE_PRIVATE_KEY").map(Secret::new),
        })
    }
}

/// A notification and what it carries, all verified.
#[derive(Debug, Clone)]
pub struct VerifiedNotification {
    pub notification: Notification,
    pub transaction: Option<Transaction>,
    pub renewal: Option<RenewalInfo>,
}

/// Apple's verifier for this app (signature, chain, bundle id and environment) and its
/// App Store Server API client.
pub struct Apple {
    pub config: AppleConfig,
    client: super::outbound::HttpClient,
}

impl std::fmt::Debug for Apple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apple")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Apple {
    /// `client` is the providers' shared outbound client.
    pub fn new(config: AppleConfig, client: super::outbound::HttpClient) -> Self {
        Apple { config, client }
    }

    /// The App Store Server API bearer token: ES256 with the in-app purchase key, valid
    /// 5 minutes, for this bundle.
    fn api_token(&self) -> Result<String, ProviderError> {
        let missing = |name: &str| {
            ProviderError::Refused(format!("{name} is required for the App Store Server API"))
        };
        let issuer = self
            .config
            .issuer_id
            .as_ref()
            .ok_or_else(|| missing("APPLE_ISSUER_ID"))?;
        let kid = self
            .config
            .key_id
            .as_ref()
            .ok_or_else(|| missing("APPLE_KEY_ID"))?;
        let key = self
            .config
            .private_key
            .as_ref()
            .ok_or_else(|| missing("APPLE_PRIVATE_KEY"))?;
        let key = jsonwebtoken::EncodingKey::from_ec_pem(key.expose().as_bytes())
            .map_err(|_| ProviderError::Refused("APPLE_PRIVATE_KEY is not an EC PEM key".into()))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let claims = serde_json::json!({
            "iss": issuer, "iat": now, "exp": now + 300, "aud": "appstoreconnect-v1",
            "bid": self.config.bundle_id,
        });
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|_| ProviderError::Refused("could not sign the API token".into()))
    }

    /// "Look Up Order ID": the signed transactions of a customer's App Store order id (from
    /// their receipt e-mail). Empty when Apple says the id is invalid.
    pub async fn lookup_order(&self, order_id: &str) -> Result<Vec<String>, ProviderError> {
        if order_id.is_empty()
            || order_id.len() > 64
            || !order_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ProviderError::Refused("not an App Store order id".into()));
        }
        let auth = format!("Bearer {}", self.api_token()?);
        let url = format!("{}/inApps/v1/lookup/{order_id}", self.config.api_base_url);
        let (status, body) = self
            .client
            .call(
                "App Store Server API",
                http::Method::GET,
                &url,
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await?;
        match status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(ProviderError::Refused(format!(
                    "App Store Server API refused the credentials ({status})"
                )))
            }
            429 | 500..=599 => {
                return Err(ProviderError::Unavailable(format!(
                    "App Store Server API answered {status}"
                )))
            }
            _ => {
                return Err(ProviderError::Refused(format!(
                    "App Store Server API answered {status}"
                )))
            }
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lookup {
            status: i64,
            #[serde(default)]
            signed_transactions: Vec<String>,
        }
        let l: Lookup = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unavailable("unexpected order look-up answer".into()))?;
        Ok(if l.status == 0 {
            l.signed_transactions
        } else {
            Vec::new()
        })
    }

    fn check_env(&self, env: Environment) -> Result<(), AppleRejection> {
        if self.config.environments.contains(&env) {
            Ok(())
        } else {
            Err(AppleRejection::Environment(env))
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, jws: &str) -> Result<T, AppleRejection> {
        wire::decode_payload(jws, &self.config.roots)
    }

    pub fn verify_transaction(&self, jws: &str) -> Result<Transaction, AppleRejection> {
        let t: Transaction = self.decode(jws)?;
        if t.bundle_id != self.config.bundle_id {
            return Err(AppleRejection::BundleId);
        }
        self.check_env(t.environment)?;
        Ok(t)
    }

    pub fn verify_renewal(&self, jws: &str) -> Result<RenewalInfo, AppleRejection> {
        let r: RenewalInfo = self.decode(jws)?;
        self.check_env(r.environment)?;
        Ok(r)
    }

    pub fn verify_notification(
        &self,
        signed_payload: &str,
    ) -> Result<VerifiedNotification, AppleRejection> {
        let n: Notification = self.decode(signed_payload)?;
        // As Apple's library: the app is identified by `data` or `summary`; a notification
        // with neither names no app and is refused.
        let (bundle, app_id, env) = match (&n.data, &n.summary) {
            (Some(d), _) => (d.bundle_id.as_deref(), d.app_apple_id, d.environment),
            (None, Some(s)) => (s.bundle_id.as_deref(), s.app_apple_id, s.environment),
            (None, None) => return Err(AppleRejection::BundleId),
        };
        if bundle != Some(self.config.bundle_id.as_str()) {
            return Err(AppleRejection::BundleId);
        }
        if env == Environment::Production && app_id != self.config.app_apple_id {
            return Err(AppleRejection::AppAppleId);
        }
        self.check_env(env)?;
        let mut transaction = None;
        let mut renewal = None;
        if let Some(d) = &n.data {
            if let Some(t) = &d.signed_transaction_info {
                transaction = Some(self.verify_transaction(t)?);
            }
            if let Some(r) = &d.signed_renewal_info {
                renewal = Some(self.verify_renewal(r)?);
            }
        }
        Ok(VerifiedNotification {
            notification: n,
            transaction,
            renewal,
        })
    }
}

#[async_trait]
impl PaymentCreator for Apple {
    fn sells_store_products(&self) -> bool {
        true
    }

    async fn payment_params(
        &self,
        order: &Order,
        _payer: &super::Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        Ok(serde_json::json!({ "app_account_token": wire::app_account_token(&order.order_id) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_variable() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &'static str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = AppleConfig::from_lookup(&get(&[])).unwrap_err();
        assert_eq!(e.name, "APPLE_BUNDLE_ID");
        let e = AppleConfig::from_lookup(&get(&[("APPLE_BUNDLE_ID", "a.b")])).unwrap_err();
        assert_eq!(e.name, "APPLE_APP_APPLE_ID");
        let e = AppleConfig::from_lookup(&get(&[
            ("APPLE_BUNDLE_ID", "a.b"),
            ("APPLE_ENVIRONMENT", "Staging"),
        ]))
        .unwrap_err();
        assert_eq!(e.name, "APPLE_ENVIRONMENT");
        let c = AppleConfig::from_lookup(&get(&[
            ("APPLE_BUNDLE_ID", "a.b"),
            ("APPLE_ENVIRONMENT", "Sandbox"),
            ("APPLE_PRIVATE_KEY", "very-secret-key"),
        ]))
        .unwrap();
        assert_eq!(c.environments, vec![Environment::Sandbox]);
        assert!(!format!("{c:?}").contains("very-secret"));
        // StoreKit testing only when asked for, and never beside Production.
        let c = AppleConfig::from_lookup(&get(&[
            ("APPLE_BUNDLE_ID", "a.b"),
            ("APPLE_ENVIRONMENT", "Sandbox"),
            ("APPLE_ACCEPT_LOCAL_TESTING", "true"),
        ]))
        .unwrap();
        assert_eq!(
            c.environments,
            vec![
                Environment::Sandbox,
                Environment::Xcode,
                Environment::LocalTesting
            ]
        );
        let e = AppleConfig::from_lookup(&get(&[
            ("APPLE_BUNDLE_ID", "a.b"),
            ("APPLE_ENVIRONMENT", "Sandbox"),
            ("APPLE_ACCEPT_LOCAL_TESTING", "yes"),
        ]))
        .unwrap_err();
        assert_eq!(e.name, "APPLE_ACCEPT_LOCAL_TESTING");
        let e = AppleConfig::from_lookup(&get(&[
            ("APPLE_BUNDLE_ID", "a.b"),
            ("APPLE_APP_APPLE_ID", "1"),
            ("APPLE_ENVIRONMENT", "Production,Sandbox"),
            ("APPLE_ACCEPT_LOCAL_TESTING", "true"),
        ]))
        .unwrap_err();
        assert_eq!(e.name, "APPLE_ACCEPT_LOCAL_TESTING");
    }
}

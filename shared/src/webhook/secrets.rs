//! The signing keys of a line's endpoint: given in the catalog, or by reference (a Secrets
//! Manager ARN or `ssm:<name>`, read like the secret variables by [`crate::secret_refs`]).
//! A reference is read when a delivery first needs it and kept for the life of the process,
//! as the secret variables are for a cold start; a failed read is not kept, so the next
//! delivery reads again. The reader (the AWS SDK) is set up at the first reference, so a
//! process whose catalog has none never configures it.

use super::sign::SigningKey;
use crate::config::Secret;
use crate::domain::line::WebhookSecret;
use crate::secret_refs::{self, AwsSecretStores, SecretStores};
use crate::tls_roots::TlsRoots;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct WebhookSecrets {
    stores: tokio::sync::OnceCell<Arc<dyn SecretStores>>,
    roots: TlsRoots,
    /// Reference → value, for the life of the process.
    read: Mutex<HashMap<String, Secret>>,
}

impl WebhookSecrets {
    /// References are read through the AWS SDK, configured at the first one (trusting
    /// `roots`).
    pub fn new(roots: TlsRoots) -> Self {
        WebhookSecrets {
            stores: tokio::sync::OnceCell::new(),
            roots,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// References are read from `stores` (the SDK the app already configured, or a test's).
    pub fn with_stores(stores: Arc<dyn SecretStores>) -> Self {
        WebhookSecrets {
            stores: tokio::sync::OnceCell::new_with(Some(stores)),
            roots: TlsRoots::default(),
            read: Mutex::new(HashMap::new()),
        }
    }

    fn kept(&self, reference: &str) -> Option<Secret> {
        self.read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reference)
            .cloned()
    }

    async fn read(&self, reference: &str) -> Result<Secret, String> {
        if let Some(s) = self.kept(reference) {
            return Ok(s);
        }
        let parsed = secret_refs::parse(reference)?
            .ok_or_else(|| "not a Secrets Manager ARN or ssm: name".to_owned())?;
        let roots = self.roots;
        let stores = self
            .stores
            .get_or_try_init(|| async move {
                let sdk = crate::app::aws_sdk_config(roots)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<Arc<dyn SecretStores>, String>(Arc::new(AwsSecretStores::new(&sdk)))
            })
            .await?;
        let mut values = secret_refs::resolve(vec![("webhook secret", parsed)], stores.clone())
            .await
            .map_err(|e| e.problem)?;
        let value = values
            .remove("webhook secret")
            .ok_or_else(|| "the reference was not read".to_owned())?;
        self.read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.to_owned(), value.clone());
        Ok(value)
    }

    /// The endpoint's keys, every one usable, or why not (never a key's value).
    pub async fn keys(&self, secrets: &[WebhookSecret]) -> Result<Vec<SigningKey>, String> {
        let mut keys = Vec::with_capacity(secrets.len());
        for s in secrets {
            let key = match s {
                WebhookSecret::Value(v) => SigningKey::parse(v),
                WebhookSecret::Reference(r) => {
                    let value = self.read(r).await.map_err(|e| format!("secret {r}: {e}"))?;
                    SigningKey::parse(value.expose())
                }
            }
            .map_err(|_| "a secret is not a whsec_ key".to_owned())?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no signing key".into());
        }
        Ok(keys)
    }
}

//! Secrets by reference: a secret variable may hold, instead of the value, where to read it.
//!
//! - `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>` — the secret's
//!   `SecretString`; `…:secret:<name>:<json-key>` — one key of a JSON secret (also
//!   `…:<json-key>:<version-stage>:<version-id>`, either may be empty, as in ECS).
//! - `ssm:<parameter name>` — a Parameter Store parameter, `SecureString`s decrypted.
//!
//! Only the variables in [`SECRET_VARIABLES`] are resolved; any other variable is taken
//! literally, whatever it looks like. References are read once per cold start, before the
//! configuration is parsed ([`crate::config::Config::from_lookup`] stays synchronous and
//! pure), all at once: every Secrets Manager secret in its own request and the parameters in
//! `GetParameters` batches of ten, concurrently, so start-up waits one round trip however many
//! there are. A reference that cannot be read stops start-up naming the variable, never a
//! value.

use crate::config::{err, ConfigError, Secret};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The variables that may hold a reference instead of a value.
pub const SECRET_VARIABLES: &[&str] = &[
    "AUTH_JWT_SECRET",
    "SANDBOX_SECRET",
    "STREAM_SIGNING_KEYS",
    "NGINX_SECURE_LINK_SECRET",
    "TENCENT_PLAY_KEY",
    "ALIYUN_AUTH_KEY",
    "WECHATPAY_MERCHANT_PRIVATE_KEY",
    "WECHATPAY_API_V3_KEY",
    "WECHATPAY_PLATFORM_KEYS",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_PUBLIC_KEY",
    "HUYA_EXT_SECRET",
    "APPLE_PRIVATE_KEY",
    "GOOGLE_SERVICE_ACCOUNT_JSON",
];

/// Parameter Store's `GetParameters` takes at most ten names.
pub const SSM_BATCH: usize = 10;

/// Where a secret variable's value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    SecretsManager {
        secret: SecretId,
        json_key: Option<String>,
    },
    Parameter(String),
}

/// One version of one Secrets Manager secret: what one `GetSecretValue` reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId {
    /// The ARN up to the secret's name (a full or partial ARN).
    pub arn: String,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

/// What `value` refers to: `Ok(None)` for a plain value.
pub fn parse(value: &str) -> Result<Option<Reference>, String> {
    let value = value.trim();
    if let Some(name) = value.strip_prefix("ssm:") {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err("an ssm: reference needs a parameter name (ssm:/path/name)".into());
        }
        return Ok(Some(Reference::Parameter(name.to_owned())));
    }
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() < 3 || fields[0] != "arn" || fields[2] != "secretsmanager" {
        return Ok(None);
    }
    // arn:partition:secretsmanager:region:account:secret:name[:json-key[:stage[:version-id]]]
    if fields.len() < 7 || fields.len() > 10 || fields[5] != "secret" || fields[6].is_empty() {
        return Err(
            "a Secrets Manager reference is arn:<partition>:secretsmanager:<region>:<account>:\
             secret:<name>[:<json-key>[:<version-stage>[:<version-id>]]]"
                .into(),
        );
    }
    let field = |i: usize| {
        fields
            .get(i)
            .filter(|f| !f.is_empty())
            .map(|f| (*f).to_owned())
    };
    Ok(Some(Reference::SecretsManager {
        secret: SecretId {
            arn: fields[..7].join(":"),
            version_stage: field(8),
            version_id: field(9),
        },
        json_key: field(7),
    }))
}

/// The references among the secret variables `get` answers, in variable order.
pub fn references(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, Reference)>, ConfigError> {
    let mut found = Vec::new();
    for &name in SECRET_VARIABLES {
        let Some(value) = get(name) else { continue };
        if let Some(reference) = parse(&value).map_err(|problem| err(name, problem))? {
            found.push((name, reference));
        }
    }
    Ok(found)
}

/// What the resolver reads from: Secrets Manager and Parameter Store (or a fake in tests).
#[async_trait::async_trait]
pub trait SecretStores: Send + Sync {
    /// The secret's text (`SecretString`).
    async fn secret(&self, id: &SecretId) -> Result<String, String>;

    /// At most [`SSM_BATCH`] parameters, decrypted, in one request: the values found by
    /// name; names that do not exist are absent.
    async fn parameters(&self, names: &[String]) -> Result<HashMap<String, String>, String>;
}

/// Reads every reference at once and answers each variable's value.
pub async fn resolve(
    refs: Vec<(&'static str, Reference)>,
    stores: Arc<dyn SecretStores>,
) -> Result<HashMap<&'static str, Secret>, ConfigError> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    // Each secret and parameter is read once, however many variables name it.
    let mut secrets: BTreeMap<SecretId, Vec<&'static str>> = BTreeMap::new();
    let mut parameters: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for (name, r) in &refs {
        match r {
            Reference::SecretsManager { secret, .. } => {
                secrets.entry(secret.clone()).or_default().push(name)
            }
            Reference::Parameter(p) => parameters.entry(p.clone()).or_default().push(name),
        }
    }
    let mut reads = tokio::task::JoinSet::new();
    for id in secrets.keys().cloned() {
        let stores = stores.clone();
        reads.spawn(async move {
            let text = stores.secret(&id).await;
            Read::Secret(id, text)
        });
    }
    let names: Vec<String> = parameters.keys().cloned().collect();
    for batch in names.chunks(SSM_BATCH) {
        let (stores, batch) = (stores.clone(), batch.to_vec());
        reads.spawn(async move {
            let found = stores.parameters(&batch).await;
            Read::Parameters(batch, found)
        });
    }
    let mut secret_text: HashMap<SecretId, Result<String, String>> = HashMap::new();
    let mut parameter_text: HashMap<String, Result<String, String>> = HashMap::new();
    while let Some(read) = reads.join_next().await {
        match read.map_err(|e| err(refs[0].0, format!("reading its reference failed: {e}")))? {
            Read::Secret(id, text) => {
                secret_text.insert(id, text);
            }
            Read::Parameters(batch, Ok(mut found)) => {
                for p in batch {
                    let value = found
                        .remove(&p)
                        .ok_or_else(|| "it does not exist".to_owned());
                    parameter_text.insert(p, value);
                }
            }
            Read::Parameters(batch, Err(e)) => {
                parameter_text.extend(batch.into_iter().map(|p| (p, Err(e.clone()))));
            }
        }
    }
    // Variables in order, so the one a failure names does not depend on timing.
    let mut values = HashMap::new();
    for (name, r) in refs {
        let value = match r {
            Reference::Parameter(p) => match parameter_text.get(&p) {
                Some(Ok(v)) => v.clone(),
                Some(Err(e)) => return Err(err(name, format!("cannot read parameter {p}: {e}"))),
                None => return Err(err(name, format!("parameter {p} was not read"))),
            },
            Reference::SecretsManager { secret, json_key } => {
                let text = match secret_text.get(&secret) {
                    Some(Ok(text)) => text,
                    Some(Err(e)) => {
                        return Err(err(name, format!("cannot read secret {}: {e}", secret.arn)))
                    }
                    None => return Err(err(name, format!("secret {} was not read", secret.arn))),
                };
                match json_key {
                    None => text.clone(),
                    Some(key) => json_field(text, &key).map_err(|problem| {
                        err(name, format!("secret {}: {problem}", secret.arn))
                    })?,
                }
            }
        };
        values.insert(name, Secret::new(value));
    }
    Ok(values)
}

enum Read {
    Secret(SecretId, Result<String, String>),
    Parameters(Vec<String>, Result<HashMap<String, String>, String>),
}

/// The `key` of a JSON object secret: a string as it is, anything else as JSON text. The
/// problem never quotes the secret.
fn json_field(text: &str, key: &str) -> Result<String, String> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(text) else {
        return Err(format!("is not a JSON object, so it has no key {key:?}"));
    };
    match object.remove(key) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("has no key {key:?}")),
    }
}

/// Secrets Manager and Parameter Store through the AWS SDK.
pub struct AwsSecretStores {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl AwsSecretStores {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        AwsSecretStores {
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
        }
    }
}

#[async_trait::async_trait]
impl SecretStores for AwsSecretStores {
    async fn secret(&self, id: &SecretId) -> Result<String, String> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(&id.arn)
            .set_version_stage(id.version_stage.clone())
            .set_version_id(id.version_id.clone())
            .send()
            .await
            .map_err(|e| {
                // The service's code and message name the secret, never its value.
                let service = e.as_service_error().map(|s| {
                    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                    format!(
                        "{}: {}",
                        s.code().unwrap_or("error"),
                        s.message().unwrap_or("")
                    )
                });
                service.unwrap_or_else(|| {
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()
                })
            })?;
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| "it holds binary data, not text".to_owned())
    }

    async fn parameters(&self, names: &[String]) -> Result<HashMap<String, String>, String> {
        let out = self
            .ssm
            .get_parameters()
            .set_names(Some(names.to_vec()))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| aws_sdk_ssm::error::DisplayErrorContext(&e).to_string())?;
        Ok(out
            .parameters()
            .iter()
            .filter_map(|p| Some((p.name()?.to_owned(), p.value()?.to_owned())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tollgate/prod-AbCdEf";

    #[test]
    fn references_and_plain_values() {
        assert_eq!(parse("hunter2-plain").unwrap(), None);
        assert_eq!(parse("arn:aws:s3:::bucket/key").unwrap(), None);
        assert_eq!(
            parse("ssm:/tollgate/prod/wechat-key").unwrap(),
            Some(Reference::Parameter("/tollgate/prod/wechat-key".into()))
        );
        let whole = parse(ARN).unwrap().unwrap();
        assert_eq!(
            whole,
            Reference::SecretsManager {
                secret: SecretId {
                    arn: ARN.into(),
                    version_stage: None,
                    version_id: None
                },
                json_key: None
            }
        );
        let keyed = parse(&format!("{ARN}:jwt")).unwrap().unwrap();
        assert!(matches!(keyed, Reference::SecretsManager { json_key: Some(k), .. } if k == "jwt"));
        let staged = parse(&format!("{ARN}::AWSPREVIOUS")).unwrap().unwrap();
        assert!(matches!(
            staged,
            Reference::SecretsManager { json_key: None, secret: SecretId { version_stage: Some(s), .. } }
                if s == "AWSPREVIOUS"
        ));
        let china = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:k";
        assert!(parse(china).unwrap().is_some());
        for bad in [
            "ssm:",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
            "arn:aws:secretsmanager:us-east-1:123456789012:rotation:x",
            "arn:aws:secretsmanager:r:a:secret:n:k:s:v:extra",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_secret_variables_are_references() {
        let get = |k: &str| match k {
            "AUTH_JWT_SECRET" => Some("ssm:/a".to_owned()),
            "PUBLIC_BASE_URL" => Some("ssm:/b".to_owned()),
            "SANDBOX_SECRET" => Some("plain".to_owned()),
            _ => None,
        };
        let refs = references(&get).unwrap();
        assert_eq!(
            refs,
            vec![("AUTH_JWT_SECRET", Reference::Parameter("/a".into()))]
        );
        let bad = |k: &str| (k == "HUYA_EXT_SECRET").then(|| "ssm:".to_owned());
        assert_eq!(references(&bad).unwrap_err().name, "HUYA_EXT_SECRET");
    }

    /// Secrets and parameters in memory, recording each request.
    #[derive(Default)]
    struct Fake {
        secrets: HashMap<String, String>,
        parameters: HashMap<String, String>,
        requests: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl SecretStores for Fake {
        async fn secret(&self, id: &SecretId) -> Result<String, String> {
            self.requests
                .lock()
                .unwrap()
                .push(format!("secret {}", id.arn));
            self.secrets
                .get(&id.arn)
                .cloned()
                .ok_or_else(|| "ResourceNotFoundException".into())
        }
        async fn parameters(&self, names: &[String]) -> Result<HashMap<String, String>, String> {
            assert!(names.len() <= SSM_BATCH);
            self.requests
                .lock()
                .unwrap()
                .push(format!("parameters {}", names.len()));
            Ok(names
                .iter()
                .filter_map(|n| Some((n.clone(), self.parameters.get(n)?.clone())))
                .collect())
        }
    }

    fn refs(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Reference)> {
        pairs
            .iter()
            .map(|(n, v)| (*n, parse(v).unwrap().unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn each_secret_is_read_once_and_parameters_in_batches_of_ten() {
        let mut fake = Fake::default();
        fake.secrets.insert(
            ARN.into(),
            r#"{"jwt":"jwt-hunter2","sandbox":"sandbox-hunter2","n":7}"#.into(),
        );
        let mut pairs: Vec<(&'static str, String)> = vec![
            ("AUTH_JWT_SECRET", format!("{ARN}:jwt")),
            ("SANDBOX_SECRET", format!("{ARN}:sandbox")),
            ("STREAM_SIGNING_KEYS", format!("{ARN}:n")),
        ];
        for (i, &name) in SECRET_VARIABLES[3..].iter().enumerate() {
            fake.parameters
                .insert(format!("/p/{i}"), format!("value-{i}"));
            pairs.push((name, format!("ssm:/p/{i}")));
        }
        let borrowed: Vec<(&'static str, &str)> =
            pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let fake = Arc::new(fake);
        let values = resolve(refs(&borrowed), fake.clone()).await.unwrap();
        assert_eq!(values["AUTH_JWT_SECRET"].expose(), "jwt-hunter2");
        assert_eq!(values["SANDBOX_SECRET"].expose(), "sandbox-hunter2");
        assert_eq!(values["STREAM_SIGNING_KEYS"].expose(), "7");
        assert_eq!(values["HUYA_EXT_SECRET"].expose(), "value-8");
        let mut requests = fake.requests.lock().unwrap().clone();
        requests.sort();
        assert_eq!(
            requests,
            vec![
                "parameters 1".to_owned(),
                "parameters 10".to_owned(),
                format!("secret {ARN}")
            ]
        );
        assert!(!format!("{values:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn failures_name_the_variable_and_key_never_the_value() {
        let mut fake = Fake::default();
        fake.secrets.insert(ARN.into(), "not-json-hunter2".into());
        let fake = Arc::new(fake);
        let e = resolve(
            refs(&[("HUYA_EXT_SECRET", &format!("{ARN}:ext"))]),
            fake.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.name, "HUYA_EXT_SECRET");
        assert!(
            e.problem.contains("\"ext\"") && !e.problem.contains("hunter2"),
            "{e}"
        );
        let missing = "arn:aws:secretsmanager:us-east-1:1:secret:gone";
        let e = resolve(
            refs(&[
                ("AUTH_JWT_SECRET", "ssm:/there"),
                ("APPLE_PRIVATE_KEY", missing),
            ]),
            fake.clone(),
        )
        .await
        .unwrap_err();
        // Both fail; the first in variable order is reported.
        assert_eq!(e.name, "AUTH_JWT_SECRET");
        assert!(e.problem.contains("/there"), "{e}");
        let e = resolve(refs(&[("APPLE_PRIVATE_KEY", missing)]), fake)
            .await
            .unwrap_err();
        assert_eq!(e.name, "APPLE_PRIVATE_KEY");
        assert!(e.problem.contains("ResourceNotFound"), "{e}");
    }
}

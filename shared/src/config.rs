//! One `Config`, read from the environment once per cold start. A missing or malformed
//! variable stops start-up with a message naming it; secret values never appear in messages
//! or `Debug` output.

use std::fmt;
use std::time::Duration;

pub use crate::secret::Secret;

/// Where the process runs: defaults differ between a Lambda and the laptop server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Lambda,
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// API Gateway's JWT authorizer already verified the token; trust its claims.
    Apigw,
    /// Verify `Authorization: Bearer` here.
    Jwt,
}

pub use crate::domain::session::DevicePolicy;
use crate::stream::native::SigningKeys;
use crate::stream::StreamKeys;

#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    pub table_name: Option<String>,
    pub queue_url: Option<String>,
    /// Where the verifier puts messages that can never succeed (else SQS's redrive does).
    pub dead_letter_queue_url: Option<String>,
    /// Where the catalog comes from (`CATALOG_JSON`, `CATALOG_PATH` or `CATALOG_S3_URI`).
    pub catalog: CatalogConfig,
    /// How often a changing catalog source is looked at again (`CATALOG_REFRESH_SECONDS`).
    pub catalog_refresh_seconds: u64,
    pub providers: Vec<String>,
    pub order_ttl_seconds: i64,
    /// `MAX_NEW_ORDERS_PER_USER`: orders one user may create per window of
    /// `order_ttl_seconds` (see [`crate::domain::order_quota`]).
    pub max_new_orders_per_user: u32,
    /// `ORDER_RETENTION_DAYS` in seconds: how long an unpaid order is kept once expired or
    /// cancelled before the store may delete it; `None` (0 days): kept for ever.
    pub order_retention_seconds: Option<i64>,
    pub auth_mode: AuthMode,
    pub auth_jwt_secret: Option<Secret>,
    pub auth_jwks_path: Option<String>,
    pub auth_issuer: Option<String>,
    pub auth_audience: Option<String>,
    /// The longest lifetime a verified token may have (`exp` − `iat`, or `exp` − now): a
    /// leaked long-lived token would otherwise stay usable for as long as its issuer chose.
    pub auth_max_lifetime_seconds: i64,
    /// `AUTH_ROLES_CLAIM`: the claim that carries a caller's roles (`scope`, space-separated,
    /// by default; or an array such as `roles`). Admin routes need `tollgate:admin` in it, or
    /// `tollgate:support` to read.
    pub auth_roles_claim: String,
    pub stream_token_ttl_seconds: i64,
    pub max_devices: u32,
    pub device_policy: DevicePolicy,
    /// `STREAM_BIND_IP`: put the caller's address in each issued token, so that it only plays
    /// from that address (native and nginx formats).
    pub stream_bind_ip: bool,
    /// `PARTIAL_REFUND_REVOKES`: a partial refund, once confirmed, also ends the order's
    /// access (the order stays PAID, with what remains refundable); by default only the
    /// refund that reaches what was paid does.
    pub partial_refund_revokes: bool,
    /// `STATS_TIME_ZONE` (IANA name, `Asia/Shanghai` by default): the operator's day, in
    /// which the figures are counted and `GET /admin/stats` reads them.
    pub stats_zone: crate::domain::stats::StatsZone,
    /// The key of each stream-token format (`STREAM_SIGNING_KEYS`, `NGINX_SECURE_LINK_SECRET`,
    /// `TENCENT_PLAY_KEY`, `ALIYUN_AUTH_KEY`).
    pub stream_keys: StreamKeys,
    pub sandbox_secret: Option<Secret>,
    /// Where clients reach this deployment (for sandbox pay URLs), when set. Unset, the
    /// local server uses the address it bound, which only it knows, and only once bound.
    pub public_base_url: Option<String>,
    pub port: u16,
    pub sweep_interval_seconds: u64,
    /// What one client may hold of the local server.
    pub server_limits: ServerLimits,
    /// The providers' own variables, kept raw: each provider module parses its own (so a
    /// bad one is reported by the module that understands it) and only when enabled, so
    /// `Config` knows no provider's types.
    pub provider_vars: ProviderVars,
    /// `TLS_ROOTS`: which root certificates outbound TLS trusts.
    pub tls_roots: crate::tls_roots::TlsRoots,
    /// When failed webhook deliveries are tried again and given up (`WEBHOOK_RETRY_*`,
    /// `WEBHOOK_GIVE_UP_SECONDS`): the same for the local runner, the dispatcher function
    /// and an operator's redelivery.
    pub webhook_retry: crate::webhook::deliver::RetryPolicy,
    /// `WEBHOOK_QUEUE_URL`: where the dispatcher function parks deliveries to try again.
    pub webhook_queue_url: Option<String>,
    /// `WEBHOOK_DEAD_LETTER_QUEUE_URL`: where it reports the deliveries it gave up.
    pub webhook_dead_letter_queue_url: Option<String>,
}

/// Where the catalog comes from. Only the text of `CATALOG_JSON` is known here; a file or an
/// S3 object is read when the app starts (see [`crate::live_catalog`]), so that parsing the
/// configuration reads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogConfig {
    /// `CATALOG_JSON`: fixed for the life of the process.
    Json(String),
    /// `CATALOG_PATH` (the local server's default: `./catalog.example.json`): re-read when the
    /// file changes.
    File(std::path::PathBuf),
    /// `CATALOG_S3_URI`: re-read when the object's ETag changes.
    S3 { bucket: String, key: String },
}

/// Every variable a provider module may read. Values are kept as [`Secret`]s because several
/// are keys; `Debug` shows only which names are set.
pub const PROVIDER_VARIABLES: &[&str] = &[
    "PROVIDER_HTTP_TIMEOUT_SECONDS",
    "WECHATPAY_MCH_ID",
    "WECHATPAY_APP_ID",
    "WECHATPAY_API_V3_KEY",
    "WECHATPAY_MERCHANT_SERIAL",
    "WECHATPAY_MERCHANT_PRIVATE_KEY",
    "WECHATPAY_PLATFORM_KEYS",
    "WECHATPAY_BASE_URL",
    "WECHATPAY_NOTIFY_URL",
    "ALIPAY_APP_ID",
    "ALIPAY_SELLER_ID",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_PUBLIC_KEY",
    "ALIPAY_GATEWAY_URL",
    "ALIPAY_NOTIFY_URL",
    "ALIPAY_RETURN_URL",
    "HUYA_APP_ID",
    "HUYA_EXT_SECRET",
    "HUYA_EXT_UUID",
    "HUYA_MAX_SKEW_SECONDS",
    "APPLE_BUNDLE_ID",
    "APPLE_APP_APPLE_ID",
    "APPLE_ENVIRONMENT",
    "APPLE_ACCEPT_LOCAL_TESTING",
    "APPLE_ROOT_CERTS",
    "APPLE_API_BASE_URL",
    "APPLE_ISSUER_ID",
    "APPLE_KEY_ID",
    "APPLE_PRIVATE_KEY",
    "GOOGLE_PACKAGE_NAME",
    "GOOGLE_SERVICE_ACCOUNT_JSON",
    "GOOGLE_PUSH_AUDIENCE",
    "GOOGLE_PUSH_SERVICE_ACCOUNT",
    "GOOGLE_API_BASE_URL",
    "GOOGLE_TOKEN_URL",
    "GOOGLE_JWKS_URL",
];

/// Limits of the local server's HTTP listener, so that slow or greedy clients cannot hold its
/// connections, memory or file descriptors (the Lambdas sit behind API Gateway, which has
/// its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to receive a request's whole head (`LOCAL_HEADER_TIMEOUT_SECONDS`). hyper starts
    /// this timer as soon as a connection waits for a request, including a kept-alive one
    /// between requests, so it is also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Time to receive a request's whole body once its head has arrived
    /// (`LOCAL_BODY_TIMEOUT_SECONDS`); then 408 and the connection is closed.
    pub body_timeout: Duration,
    /// The largest request head, and so the read buffer, of one connection
    /// (`LOCAL_MAX_HEADER_BYTES`); a larger head gets 431.
    pub max_header_bytes: usize,
    /// Connections served at once (`LOCAL_MAX_CONNECTIONS`); the next ones wait, unaccepted,
    /// in the listen backlog until one closes.
    pub max_connections: usize,
}

/// hyper refuses a read buffer below 8 KiB.
pub const MIN_HEADER_BYTES: i64 = 8 * 1024;

#[derive(Clone, Default)]
pub struct ProviderVars(std::collections::BTreeMap<&'static str, Secret>);

impl ProviderVars {
    /// The trimmed value of a set, non-blank variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.expose().trim())
    }

    /// Like [`get`](Self::get), but absence is a start-up error naming the variable.
    pub fn require(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| err(name, "required by an enabled provider"))
    }
}

impl fmt::Debug for ProviderVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration {name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

pub fn err(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

/// The secret used by the local server when none is configured. Printed on start so a
/// developer can mint tokens; never used by a Lambda deployment.
pub const LOCAL_DEV_JWT_SECRET: &str = "tollgate-local-development-secret-do-not-deploy";
/// Native stream-token key of the local server when none is configured (never in Lambda).
pub const LOCAL_DEV_STREAM_KEYS: &str = "dev:dG9sbGdhdGUtbG9jYWwtc3RyZWFtLWtleS1kZXY=";
pub const LOCAL_DEV_SANDBOX_SECRET: &str = "tollgate-local-sandbox-secret";

pub const KNOWN_PROVIDERS: &[&str] = &["sandbox", "wechat", "alipay", "huya", "apple", "google"];

impl Config {
    pub fn from_env(profile: Profile) -> Result<Self, ConfigError> {
        Self::from_lookup(profile, |k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(
        profile: Profile,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let local = profile == Profile::Local;
        // The built-in development secrets are public (they are in this file): the local
        // server may use them only on data that dies with the process. With a real table or
        // queue (named here), each must be configured like in a deployment.
        let real_backend = ["TABLE_NAME", "QUEUE_URL"]
            .into_iter()
            .find(|name| local && var(name).is_some());
        let development_secrets = local && real_backend.is_none();
        let needed = |name: &'static str, backend: &str| {
            err(
                name,
                format!(
                    "must be set when {backend} is set: the local server's built-in \
                     development value is public"
                ),
            )
        };
        let int =
            |name: &'static str, default: i64, min: i64, max: i64| -> Result<i64, ConfigError> {
                match var(name) {
                    None => Ok(default),
                    Some(v) => match v.trim().parse::<i64>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(err(name, format!("must be an integer in {min}..={max}"))),
                    },
                }
            };
        let catalog = match (
            var("CATALOG_JSON"),
            var("CATALOG_PATH"),
            var("CATALOG_S3_URI"),
        ) {
            (_, _, Some(uri)) => {
                if let Some(other) = ["CATALOG_JSON", "CATALOG_PATH"]
                    .into_iter()
                    .find(|name| var(name).is_some())
                {
                    return Err(err(
                        "CATALOG_S3_URI",
                        format!("set CATALOG_S3_URI or {other}, not both"),
                    ));
                }
                let (bucket, key) = crate::live_catalog::parse_s3_uri(&uri)
                    .ok_or_else(|| err("CATALOG_S3_URI", "must be s3://<bucket>/<key>"))?;
                CatalogConfig::S3 { bucket, key }
            }
            (Some(json), _, None) => CatalogConfig::Json(json),
            (None, Some(path), None) => CatalogConfig::File(path.trim().into()),
            (None, None, None) if local => CatalogConfig::File("catalog.example.json".into()),
            (None, None, None) => {
                return Err(err(
                    "CATALOG_JSON",
                    "set CATALOG_JSON, CATALOG_PATH or CATALOG_S3_URI",
                ))
            }
        };
        let providers: Vec<String> = var("PROVIDERS")
            .unwrap_or_else(|| {
                if local {
                    "sandbox".into()
                } else {
                    String::new()
                }
            })
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(bad) = providers
            .iter()
            .find(|p| !KNOWN_PROVIDERS.contains(&p.as_str()))
        {
            return Err(err(
                "PROVIDERS",
                format!(
                    "unknown provider {bad:?} (known: {})",
                    KNOWN_PROVIDERS.join(", ")
                ),
            ));
        }
        let auth_mode = match var("AUTH_MODE").as_deref() {
            None if local => AuthMode::Jwt,
            None => AuthMode::Apigw,
            Some("apigw") => AuthMode::Apigw,
            Some("jwt") => AuthMode::Jwt,
            Some(_) => return Err(err("AUTH_MODE", "must be apigw or jwt")),
        };
        let mut auth_jwt_secret = var("AUTH_JWT_SECRET").map(Secret::new);
        let auth_jwks_path = var("AUTH_JWKS_PATH");
        if auth_mode == AuthMode::Jwt && auth_jwt_secret.is_none() && auth_jwks_path.is_none() {
            if development_secrets {
                auth_jwt_secret = Some(Secret::new(LOCAL_DEV_JWT_SECRET));
            } else if let Some(backend) = real_backend {
                return Err(needed("AUTH_JWT_SECRET", backend));
            } else {
                return Err(err(
                    "AUTH_JWT_SECRET",
                    "AUTH_MODE=jwt needs AUTH_JWT_SECRET or AUTH_JWKS_PATH",
                ));
            }
        }
        if let Some(s) = &auth_jwt_secret {
            if s.expose().len() < 32 {
                return Err(err("AUTH_JWT_SECRET", "must be at least 32 bytes"));
            }
        }
        let auth_issuer = var("AUTH_JWT_ISSUER");
        let auth_audience = var("AUTH_JWT_AUDIENCE");
        // A deployment that verifies tokens itself must know whose tokens, for whom: without
        // both, any token signed by the same key (another app's, another stage's) is accepted.
        if !local && auth_mode == AuthMode::Jwt {
            if auth_issuer.is_none() {
                return Err(err("AUTH_JWT_ISSUER", "required with AUTH_MODE=jwt"));
            }
            if auth_audience.is_none() {
                return Err(err("AUTH_JWT_AUDIENCE", "required with AUTH_MODE=jwt"));
            }
        }
        let auth_roles_claim = var("AUTH_ROLES_CLAIM").unwrap_or_else(|| "scope".into());
        if auth_roles_claim.is_empty()
            || auth_roles_claim.len() > 64
            || !auth_roles_claim.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(err(
                "AUTH_ROLES_CLAIM",
                "must be a claim name of 1-64 printable characters",
            ));
        }
        // Only the function that verifies sandbox callbacks is given the key (template.yaml),
        // so its absence is an error there, at the callback, not at every function's start.
        let mut sandbox_secret = var("SANDBOX_SECRET").map(Secret::new);
        if local && sandbox_secret.is_none() && providers.iter().any(|p| p == "sandbox") {
            if let Some(backend) = real_backend {
                return Err(needed("SANDBOX_SECRET", backend));
            }
            sandbox_secret = Some(Secret::new(LOCAL_DEV_SANDBOX_SECRET));
        }
        if matches!(&sandbox_secret, Some(s) if s.expose().len() < 16) {
            return Err(err("SANDBOX_SECRET", "must be at least 16 bytes"));
        }
        if let (Some(backend), None) = (real_backend, var("STREAM_SIGNING_KEYS")) {
            return Err(needed("STREAM_SIGNING_KEYS", backend));
        }
        let port = int("PORT", 3000, 0, 65535)? as u16;
        let device_policy = match var("DEVICE_POLICY").as_deref() {
            None | Some("evict") => DevicePolicy::Evict,
            Some("deny") => DevicePolicy::Deny,
            Some(_) => return Err(err("DEVICE_POLICY", "must be evict or deny")),
        };
        let stream_bind_ip = match var("STREAM_BIND_IP").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(err("STREAM_BIND_IP", "must be true or false")),
        };
        let partial_refund_revokes = match var("PARTIAL_REFUND_REVOKES").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(err("PARTIAL_REFUND_REVOKES", "must be true or false")),
        };
        let stats_zone = match var("STATS_TIME_ZONE") {
            None => crate::domain::stats::StatsZone::default(),
            Some(name) => crate::domain::stats::StatsZone::named(name.trim()).ok_or_else(|| {
                err(
                    "STATS_TIME_ZONE",
                    "must be an IANA time zone name such as Asia/Shanghai",
                )
            })?,
        };
        let stream_keys = StreamKeys {
            native: match var("STREAM_SIGNING_KEYS") {
                Some(spec) => Some(
                    SigningKeys::parse(&spec)
                        .map_err(|e| err("STREAM_SIGNING_KEYS", e.to_string()))?,
                ),
                None if local => SigningKeys::parse(LOCAL_DEV_STREAM_KEYS).ok(),
                None => None,
            },
            nginx: var("NGINX_SECURE_LINK_SECRET").map(Secret::new),
            tencent: var("TENCENT_PLAY_KEY").map(Secret::new),
            aliyun: var("ALIYUN_AUTH_KEY").map(Secret::new),
        };
        Ok(Config {
            profile,
            table_name: var("TABLE_NAME"),
            queue_url: var("QUEUE_URL"),
            dead_letter_queue_url: var("DEAD_LETTER_QUEUE_URL"),
            catalog,
            catalog_refresh_seconds: int("CATALOG_REFRESH_SECONDS", 60, 1, 86_400)? as u64,
            providers,
            order_ttl_seconds: int("ORDER_TTL_SECONDS", 900, 1, 7 * 86_400)?,
            max_new_orders_per_user: int("MAX_NEW_ORDERS_PER_USER", 20, 1, 10_000)? as u32,
            order_retention_seconds: match int("ORDER_RETENTION_DAYS", 30, 0, 3_650)? {
                0 => None,
                days => Some(days * 86_400),
            },
            auth_mode,
            auth_jwt_secret,
            auth_jwks_path,
            auth_issuer,
            auth_audience,
            auth_max_lifetime_seconds: int(
                "AUTH_JWT_MAX_LIFETIME_SECONDS",
                86_400,
                60,
                30 * 86_400,
            )?,
            auth_roles_claim,
            stream_token_ttl_seconds: int("STREAM_TOKEN_TTL_SECONDS", 300, 1, 86_400)?,
            max_devices: int("MAX_DEVICES", 2, 1, 100)? as u32,
            device_policy,
            stream_bind_ip,
            partial_refund_revokes,
            stats_zone,
            stream_keys,
            sandbox_secret,
            public_base_url: var("PUBLIC_BASE_URL")
                .map(|u| u.trim().trim_end_matches('/').to_owned()),
            port,
            sweep_interval_seconds: int("SWEEP_INTERVAL_SECONDS", 60, 1, 86_400)? as u64,
            server_limits: ServerLimits {
                header_timeout: Duration::from_secs(
                    int("LOCAL_HEADER_TIMEOUT_SECONDS", 10, 1, 300)? as u64,
                ),
                body_timeout: Duration::from_secs(
                    int("LOCAL_BODY_TIMEOUT_SECONDS", 10, 1, 300)? as u64
                ),
                max_header_bytes: int(
                    "LOCAL_MAX_HEADER_BYTES",
                    16 * 1024,
                    MIN_HEADER_BYTES,
                    1024 * 1024,
                )? as usize,
                max_connections: int("LOCAL_MAX_CONNECTIONS", 512, 1, 65_535)? as usize,
            },
            tls_roots: crate::tls_roots::TlsRoots::from_var(var("TLS_ROOTS").as_deref())?,
            webhook_retry: crate::webhook::deliver::RetryPolicy::from_lookup(var)?,
            webhook_queue_url: var("WEBHOOK_QUEUE_URL"),
            webhook_dead_letter_queue_url: var("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
            provider_vars: ProviderVars(
                PROVIDER_VARIABLES
                    .iter()
                    .filter_map(|&name| var(name).map(|v| (name, Secret::new(v))))
                    .collect(),
            ),
        })
    }

    /// The window counter every `POST /orders` goes through.
    pub fn order_quota(&self) -> crate::domain::OrderQuota {
        crate::domain::OrderQuota::limited(self.max_new_orders_per_user, self.order_ttl_seconds)
    }

    /// Until when an order closed unpaid at `closed_at` is kept (its `ttl`), if not for ever.
    pub fn order_retained_until(&self, closed_at: i64) -> Option<i64> {
        self.order_retention_seconds.map(|r| closed_at + r)
    }

    pub fn provider_enabled(&self, name: &str) -> bool {
        self.providers.iter().any(|p| p == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(profile: Profile, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.entry("CATALOG_JSON".into())
            .or_insert_with(|| r#"{"products":[]}"#.into());
        Config::from_lookup(profile, |k| m.get(k).cloned())
    }

    #[test]
    fn webhook_retry_settings_are_read_once_and_a_bad_one_stops_start_up() {
        let c = cfg(
            Profile::Local,
            &[
                ("WEBHOOK_RETRY_BASE_SECONDS", "2"),
                ("WEBHOOK_RETRY_MAX_SECONDS", "8"),
                ("WEBHOOK_GIVE_UP_SECONDS", "60"),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                c.webhook_retry.base_s,
                c.webhook_retry.cap_s,
                c.webhook_retry.give_up_after_s
            ),
            (2, 8, 60)
        );
        for name in [
            "WEBHOOK_RETRY_BASE_SECONDS",
            "WEBHOOK_RETRY_MAX_SECONDS",
            "WEBHOOK_GIVE_UP_SECONDS",
        ] {
            let e = cfg(Profile::Lambda, &[("TABLE_NAME", "t"), (name, "soon")]).unwrap_err();
            assert_eq!(e.name, name);
        }
    }

    #[test]
    fn provider_variables_are_kept_but_never_printed() {
        let c = cfg(
            Profile::Lambda,
            &[
                ("WECHATPAY_API_V3_KEY", "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"),
                ("HUYA_EXT_SECRET", "  hush  "),
                ("ALIPAY_APP_ID", " "),
            ],
        )
        .unwrap();
        assert_eq!(c.provider_vars.get("HUYA_EXT_SECRET"), Some("hush"));
        assert_eq!(c.provider_vars.get("ALIPAY_APP_ID"), None, "blank = unset");
        let e = c.provider_vars.require("ALIPAY_APP_ID").unwrap_err();
        assert_eq!(e.name, "ALIPAY_APP_ID");
        let shown = format!("{c:?}");
        assert!(shown.contains("WECHATPAY_API_V3_KEY"));
        assert!(
            !shown.contains("a7cde1") && !shown.contains("hush"),
            "{shown}"
        );
    }

    #[test]
    fn lambda_defaults_and_errors_name_the_variable() {
        let c = cfg(Profile::Lambda, &[]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::Apigw);
        assert_eq!(c.order_ttl_seconds, 900);
        assert_eq!(c.max_new_orders_per_user, 20);
        assert_eq!(c.order_quota().window_seconds, 900);
        assert_eq!(c.order_retained_until(1_000), Some(1_000 + 30 * 86_400));
        let kept = cfg(Profile::Lambda, &[("ORDER_RETENTION_DAYS", "0")]).unwrap();
        assert_eq!(
            kept.order_retained_until(1_000),
            None,
            "0 days: kept for ever"
        );
        for (name, bad) in [
            ("MAX_NEW_ORDERS_PER_USER", "0"),
            ("MAX_NEW_ORDERS_PER_USER", "many"),
            ("ORDER_RETENTION_DAYS", "-1"),
            ("ORDER_RETENTION_DAYS", "3651"),
        ] {
            assert_eq!(cfg(Profile::Lambda, &[(name, bad)]).unwrap_err().name, name);
        }
        assert!(c.providers.is_empty());
        let e = cfg(Profile::Lambda, &[("ORDER_TTL_SECONDS", "soon")]).unwrap_err();
        assert_eq!(e.name, "ORDER_TTL_SECONDS");
        let e = cfg(
            Profile::Lambda,
            &[("PROVIDERS", "sandbox"), ("SANDBOX_SECRET", "short")],
        )
        .unwrap_err();
        assert_eq!(e.name, "SANDBOX_SECRET");
        assert!(cfg(Profile::Lambda, &[("PROVIDERS", "sandbox")])
            .unwrap()
            .sandbox_secret
            .is_none());
        let e = cfg(Profile::Lambda, &[("PROVIDERS", "paypal")]).unwrap_err();
        assert_eq!(e.name, "PROVIDERS");
        let e = cfg(Profile::Lambda, &[("AUTH_MODE", "jwt")]).unwrap_err();
        assert_eq!(e.name, "AUTH_JWT_SECRET");
        let e = cfg(
            Profile::Lambda,
            &[("AUTH_MODE", "jwt"), ("AUTH_JWT_SECRET", "short")],
        )
        .unwrap_err();
        assert_eq!(e.name, "AUTH_JWT_SECRET");
        let e = cfg(Profile::Lambda, &[("STREAM_SIGNING_KEYS", "k1:short")]).unwrap_err();
        assert_eq!(e.name, "STREAM_SIGNING_KEYS");
        assert!(cfg(Profile::Lambda, &[])
            .unwrap()
            .stream_keys
            .native
            .is_none());
        assert!(cfg(Profile::Local, &[])
            .unwrap()
            .stream_keys
            .native
            .is_some());
    }

    #[test]
    fn catalog_sources() {
        let c = cfg(Profile::Lambda, &[]).unwrap();
        assert!(matches!(c.catalog, CatalogConfig::Json(_)));
        assert_eq!(c.catalog_refresh_seconds, 60);
        let only = |vars: &[(&str, &str)]| {
            let m: HashMap<&str, &str> = vars.iter().copied().collect();
            Config::from_lookup(Profile::Lambda, |k| m.get(k).map(|v| v.to_string()))
        };
        let c = only(&[
            ("CATALOG_S3_URI", "s3://tollgate-config/prod/catalog.json"),
            ("CATALOG_REFRESH_SECONDS", "300"),
        ])
        .unwrap();
        assert_eq!(
            c.catalog,
            CatalogConfig::S3 {
                bucket: "tollgate-config".into(),
                key: "prod/catalog.json".into()
            }
        );
        assert_eq!(c.catalog_refresh_seconds, 300);
        let c = only(&[("CATALOG_PATH", "/etc/catalog.json")]).unwrap();
        assert_eq!(c.catalog, CatalogConfig::File("/etc/catalog.json".into()));
        for (vars, name) in [
            (
                vec![("CATALOG_S3_URI", "https://bucket/key")],
                "CATALOG_S3_URI",
            ),
            (
                vec![
                    ("CATALOG_S3_URI", "s3://bucket/key"),
                    ("CATALOG_PATH", "/c.json"),
                ],
                "CATALOG_S3_URI",
            ),
            (
                vec![
                    ("CATALOG_PATH", "/c.json"),
                    ("CATALOG_REFRESH_SECONDS", "0"),
                ],
                "CATALOG_REFRESH_SECONDS",
            ),
            (vec![], "CATALOG_JSON"),
        ] {
            assert_eq!(only(&vars).unwrap_err().name, name, "{vars:?}");
        }
    }

    #[test]
    fn partial_refunds_keep_access_unless_told() {
        assert!(!cfg(Profile::Lambda, &[]).unwrap().partial_refund_revokes);
        let on = cfg(Profile::Lambda, &[("PARTIAL_REFUND_REVOKES", "true")]).unwrap();
        assert!(on.partial_refund_revokes);
        let e = cfg(Profile::Lambda, &[("PARTIAL_REFUND_REVOKES", "yes")]).unwrap_err();
        assert_eq!(e.name, "PARTIAL_REFUND_REVOKES");
    }

    #[test]
    fn the_operators_day_is_shanghais_unless_told() {
        assert_eq!(
            cfg(Profile::Lambda, &[]).unwrap().stats_zone.name(),
            "Asia/Shanghai"
        );
        let berlin = cfg(Profile::Lambda, &[("STATS_TIME_ZONE", "Europe/Berlin")]).unwrap();
        assert_eq!(berlin.stats_zone.name(), "Europe/Berlin");
        let e = cfg(Profile::Lambda, &[("STATS_TIME_ZONE", "Beijing")]).unwrap_err();
        assert_eq!(e.name, "STATS_TIME_ZONE");
    }

    #[test]
    fn stream_bind_ip_is_off_unless_true() {
        assert!(!cfg(Profile::Lambda, &[]).unwrap().stream_bind_ip);
        let on = cfg(Profile::Lambda, &[("STREAM_BIND_IP", "true")]).unwrap();
        assert!(on.stream_bind_ip);
        let off = cfg(Profile::Lambda, &[("STREAM_BIND_IP", "false")]).unwrap();
        assert!(!off.stream_bind_ip);
        let e = cfg(Profile::Lambda, &[("STREAM_BIND_IP", "yes")]).unwrap_err();
        assert_eq!(e.name, "STREAM_BIND_IP");
    }

    #[test]
    fn lambda_jwt_mode_requires_issuer_and_audience() {
        let secret = ("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        let e = cfg(Profile::Lambda, &[("AUTH_MODE", "jwt"), secret]).unwrap_err();
        assert_eq!(e.name, "AUTH_JWT_ISSUER");
        let e = cfg(
            Profile::Lambda,
            &[
                ("AUTH_MODE", "jwt"),
                secret,
                ("AUTH_JWT_ISSUER", "https://issuer.example"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.name, "AUTH_JWT_AUDIENCE");
        let c = cfg(
            Profile::Lambda,
            &[
                ("AUTH_MODE", "jwt"),
                secret,
                ("AUTH_JWT_ISSUER", "https://issuer.example"),
                ("AUTH_JWT_AUDIENCE", "tollgate"),
            ],
        )
        .unwrap();
        assert_eq!(c.auth_issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(c.auth_audience.as_deref(), Some("tollgate"));
        // API Gateway's authorizer checks them in apigw mode; the local server may omit them.
        assert!(cfg(Profile::Lambda, &[]).is_ok());
        assert!(cfg(Profile::Local, &[secret]).is_ok());
    }

    #[test]
    fn the_local_server_keeps_development_secrets_to_its_embedded_store() {
        const JWT: (&str, &str) = ("AUTH_JWT_SECRET", "a-real-secret-of-at-least-32-bytes!");
        const SANDBOX: (&str, &str) = ("SANDBOX_SECRET", "a-real-sandbox-secret");
        const STREAM: (&str, &str) = ("STREAM_SIGNING_KEYS", "k1:c3RyZWFtLXNpZ25pbmcta2V5LTE=");
        for backend in [
            ("TABLE_NAME", "tollgate"),
            ("QUEUE_URL", "https://sqs.example/q"),
        ] {
            let e = cfg(Profile::Local, &[backend]).unwrap_err();
            assert_eq!(e.name, "AUTH_JWT_SECRET");
            assert!(e.problem.contains(backend.0), "{e}");
            let e = cfg(Profile::Local, &[backend, JWT]).unwrap_err();
            assert_eq!(e.name, "SANDBOX_SECRET");
            let e = cfg(Profile::Local, &[backend, JWT, SANDBOX]).unwrap_err();
            assert_eq!(e.name, "STREAM_SIGNING_KEYS");
            let c = cfg(Profile::Local, &[backend, JWT, SANDBOX, STREAM]).unwrap();
            assert_eq!(c.auth_jwt_secret.unwrap().expose(), JWT.1);
            assert_eq!(c.sandbox_secret.unwrap().expose(), SANDBOX.1);
            assert_eq!(c.stream_keys.native.unwrap().signing_kid(), "k1");
            // Without the sandbox, its key is not needed.
            let no_sandbox = cfg(
                Profile::Local,
                &[backend, JWT, STREAM, ("PROVIDERS", "huya")],
            );
            assert!(no_sandbox.is_ok(), "{no_sandbox:?}");
            let jwks = cfg(
                Profile::Local,
                &[backend, ("AUTH_JWKS_PATH", "/keys.json"), SANDBOX, STREAM],
            );
            assert!(jwks.is_ok(), "{jwks:?}");
        }
        // The embedded store keeps them.
        let c = cfg(Profile::Local, &[]).unwrap();
        assert_eq!(c.auth_jwt_secret.unwrap().expose(), LOCAL_DEV_JWT_SECRET);
        assert_eq!(c.sandbox_secret.unwrap().expose(), LOCAL_DEV_SANDBOX_SECRET);
    }

    #[test]
    fn local_defaults() {
        let c = cfg(Profile::Local, &[("PORT", "4000")]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::Jwt);
        assert_eq!(c.providers, vec!["sandbox"]);
        // The server knows its address once bound (PORT may be 0).
        assert_eq!(c.public_base_url, None);
        let c = cfg(
            Profile::Local,
            &[("PUBLIC_BASE_URL", "https://pay.example/ ")],
        )
        .unwrap();
        assert_eq!(c.public_base_url.as_deref(), Some("https://pay.example"));
    }

    #[test]
    fn local_server_limits_have_defaults_and_bounds() {
        let c = cfg(Profile::Local, &[]).unwrap();
        assert_eq!(
            c.server_limits,
            ServerLimits {
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(10),
                max_header_bytes: 16 * 1024,
                max_connections: 512,
            }
        );
        assert_eq!(c.auth_max_lifetime_seconds, 86_400);
        let c = cfg(
            Profile::Local,
            &[
                ("LOCAL_HEADER_TIMEOUT_SECONDS", "1"),
                ("LOCAL_BODY_TIMEOUT_SECONDS", "2"),
                ("LOCAL_MAX_HEADER_BYTES", "8192"),
                ("LOCAL_MAX_CONNECTIONS", "3"),
                ("AUTH_JWT_MAX_LIFETIME_SECONDS", "3600"),
            ],
        )
        .unwrap();
        assert_eq!(c.server_limits.header_timeout, Duration::from_secs(1));
        assert_eq!(c.server_limits.body_timeout, Duration::from_secs(2));
        assert_eq!(c.server_limits.max_header_bytes, 8192);
        assert_eq!(c.server_limits.max_connections, 3);
        assert_eq!(c.auth_max_lifetime_seconds, 3600);
        for (name, bad) in [
            ("LOCAL_HEADER_TIMEOUT_SECONDS", "0"),
            ("LOCAL_BODY_TIMEOUT_SECONDS", "forever"),
            ("LOCAL_MAX_HEADER_BYTES", "4096"),
            ("LOCAL_MAX_CONNECTIONS", "0"),
            ("AUTH_JWT_MAX_LIFETIME_SECONDS", "0"),
        ] {
            assert_eq!(cfg(Profile::Local, &[(name, bad)]).unwrap_err().name, name);
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = cfg(
            Profile::Lambda,
            &[
                ("PROVIDERS", "sandbox"),
                ("SANDBOX_SECRET", "hunter2-very-secret"),
            ],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = cfg(
            Profile::Lambda,
            &[
                ("STREAM_SIGNING_KEYS", "k1:c3RyZWFtLXNpZ25pbmcta2V5LTE="),
                ("NGINX_SECURE_LINK_SECRET", "nginx-hunter2"),
                ("TENCENT_PLAY_KEY", "tencent-hunter2"),
                ("ALIYUN_AUTH_KEY", "aliyun-hunter2"),
            ],
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("c3RyZWFt"),
            "{debug}"
        );
        assert_eq!(c.stream_keys.native.unwrap().signing_kid(), "k1");
    }
}

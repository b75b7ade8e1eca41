//! The application: configuration, catalog, store and clock, built once per cold start and
//! shared by every request.
//!
//! Start-up, in order: the secret variables that hold references are resolved (all at once,
//! see [`crate::secret_refs`]); the configuration is parsed from the environment with those
//! values in place; then the DynamoDB connection is warmed while the catalog is read from
//! S3, concurrently. So a cold start with secrets by reference and an S3 catalog waits two
//! round trips of AWS, however many secrets there are.

use crate::api::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::config::{CatalogConfig, Config, ConfigError, Profile};
use crate::cpu_pool::CpuPool;
use crate::domain::Catalog;
use crate::live_catalog::{CatalogView, FileSource, LiveCatalog, S3Source};
use crate::providers::apple::{self, Apple, AppleConfig};
use crate::providers::google::{self, Google, GoogleConfig};
use crate::providers::outbound::SharedHttpClient;
use crate::providers::{alipay, huya, sandbox, wechat, Providers};
use crate::queue::{JobQueue, MemoryQueue, SqsQueue};
use crate::secret_refs::{self, AwsSecretStores};
use crate::store::{DynamoStore, MemoryStore, Store};
use crate::tls_roots::TlsRoots;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Clone)]
pub enum Queue {
    Sqs(Arc<SqsQueue>),
    Memory(Arc<MemoryQueue>),
}

impl Queue {
    pub fn jobs(&self) -> &dyn JobQueue {
        match self {
            Queue::Sqs(q) => q.as_ref(),
            Queue::Memory(q) => q.as_ref(),
        }
    }
}

pub struct App {
    pub config: Config,
    /// The catalog: take [`LiveCatalog::current`] once per request.
    pub catalog: LiveCatalog,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub auth: Authenticator,
    pub providers: Providers,
    /// The App Store verifier, when the apple provider is enabled.
    pub apple: Option<Arc<Apple>>,
    /// The Play Developer API client, when the google provider is enabled.
    pub google: Option<Arc<Google>>,
    /// Where signature checks of unauthenticated requests run: on blocking threads, a few at
    /// a time, in the local server; in place in a Lambda.
    pub cpu: CpuPool,
    /// The job queue: SQS when `QUEUE_URL` is set, in-process in the local server.
    pub queue: Option<Queue>,
    /// Where this process itself listens (local server only; set once bound). Shared with
    /// the sandbox provider, whose pay URLs default to it.
    pub self_url: Arc<OnceLock<String>>,
    /// The one outbound HTTPS client: the providers' calls and the webhooks.
    pub http: Arc<SharedHttpClient>,
    /// The webhook retry queue (`WEBHOOK_QUEUE_URL`, the dispatcher function's); `None`
    /// elsewhere, where the local runner keeps its retries itself.
    pub webhook_queue: Option<Arc<dyn crate::webhook::retry_queue::RetryQueue>>,
    /// The webhooks' keys given by reference, read at their first use and kept.
    pub webhook_secrets: Arc<crate::webhook::secrets::WebhookSecrets>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Other(String),
}

impl App {
    /// Builds the app from explicit parts (tests inject a store and a clock). The catalog
    /// comes from `CATALOG_JSON` or `CATALOG_PATH`; an S3 catalog needs [`App::load`].
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let catalog = local_catalog(&config, clock.as_ref())?.ok_or_else(|| ConfigError {
            name: "CATALOG_S3_URI",
            problem: "an S3 catalog is read when the app is loaded from its environment".into(),
        })?;
        Self::with_catalog(config, catalog, store, clock)
    }

    /// Builds the app around a catalog already read.
    pub fn with_catalog(
        config: Config,
        catalog: LiveCatalog,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let auth = Authenticator::from_config(&config).map_err(StartupError::Other)?;
        let self_url = Arc::new(OnceLock::new());
        let http = Arc::new(outbound_client(&config)?);
        let config_roots = config.tls_roots;
        let (providers, apple, google) =
            build_providers(&config, &catalog.view(), clock.clone(), &self_url, &http)?;
        let cpu = match config.profile {
            Profile::Local => CpuPool::per_cpu(),
            Profile::Lambda => CpuPool::inline(),
        };
        Ok(App {
            config,
            catalog,
            store,
            clock,
            auth,
            providers,
            apple,
            google,
            cpu,
            queue: None,
            self_url,
            http,
            webhook_queue: None,
            webhook_secrets: Arc::new(crate::webhook::secrets::WebhookSecrets::new(config_roots)),
        })
    }

    /// Reads the process environment and connects to AWS when configured.
    pub async fn from_env(profile: Profile) -> Result<Arc<Self>, StartupError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::load(profile, &env, None, Arc::new(SystemClock)).await
    }

    /// Builds the app from the variables `env` answers: resolves secret references, parses
    /// the configuration, then opens the DynamoDB connection (so the first request pays no
    /// TLS handshake) while it reads an S3 catalog. `sdk` replaces the SDK configuration of
    /// the environment (tests point it at a local endpoint); AWS is only configured when
    /// something needs it.
    pub async fn load(
        profile: Profile,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        sdk: Option<aws_config::SdkConfig>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, StartupError> {
        let mut phases = InitPhases::new(env("TOLLGATE_INIT_TIMING").is_some());
        let refs = secret_refs::references(env)?;
        let mut sdk = sdk;
        // Read before the configuration: the SDK may be needed to resolve it.
        let roots = TlsRoots::from_var(env("TLS_ROOTS").as_deref())?;
        let resolved = if refs.is_empty() {
            Default::default()
        } else {
            let sdk = match &sdk {
                Some(sdk) => sdk,
                None => sdk.insert(aws_sdk_config(roots).await?),
            };
            phases.mark("sdk_config");
            secret_refs::resolve(refs, Arc::new(AwsSecretStores::new(sdk))).await?
        };
        phases.mark("references");
        let config = Config::from_lookup(profile, |name| match resolved.get(name) {
            Some(value) => Some(value.expose().to_owned()),
            None => env(name),
        })?;
        phases.mark("config");
        // Parsed first, so a bad variable is reported before any AWS set-up.
        let needs_aws = config.table_name.is_some()
            || config.queue_url.is_some()
            || config.webhook_queue_url.is_some()
            || matches!(config.catalog, CatalogConfig::S3 { .. });
        if needs_aws && sdk.is_none() {
            sdk = Some(aws_sdk_config(roots).await?);
        }
        phases.mark("sdk_config");
        let dynamo = match (&config.table_name, &sdk) {
            (Some(table), Some(sdk)) => Some(
                DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table.clone())
                    .with_stats_zone(config.stats_zone.clone()),
            ),
            _ => None,
        };
        let warm = async {
            if let Some(store) = &dynamo {
                warm_up(store).await;
            }
        };
        let s3_catalog = async {
            match (&config.catalog, &sdk) {
                (CatalogConfig::S3 { bucket, key }, Some(sdk)) => {
                    let source = S3Source {
                        client: s3_client(sdk),
                        bucket: bucket.clone(),
                        key: key.clone(),
                    };
                    let interval = config.catalog_refresh_seconds;
                    LiveCatalog::watch(Box::new(source), interval, clock.now_ms())
                        .await
                        .map(Some)
                }
                _ => Ok(None),
            }
        };
        let ((), s3_catalog) = tokio::join!(warm, s3_catalog);
        phases.mark("warm_up");
        let catalog = match s3_catalog? {
            Some(catalog) => catalog,
            None => local_catalog(&config, clock.as_ref())?.ok_or_else(|| ConfigError {
                name: "CATALOG_S3_URI",
                problem: "needs AWS configuration".into(),
            })?,
        };
        phases.mark("catalog");
        let store: Arc<dyn Store> = match dynamo {
            Some(store) => Arc::new(store),
            None if profile == Profile::Local => {
                Arc::new(MemoryStore::new().with_stats_zone(config.stats_zone.clone()))
            }
            None => {
                return Err(ConfigError {
                    name: "TABLE_NAME",
                    problem: "required in Lambda".into(),
                }
                .into())
            }
        };
        let queue = match (&config.queue_url, &sdk) {
            (Some(url), Some(sdk)) => Some(Queue::Sqs(Arc::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                url.clone(),
                config.dead_letter_queue_url.clone(),
            )))),
            _ if profile == Profile::Local => {
                Some(Queue::Memory(Arc::new(MemoryQueue::new(clock.clone()))))
            }
            _ => None,
        };
        let webhook_queue: Option<Arc<dyn crate::webhook::retry_queue::RetryQueue>> =
            match (&config.webhook_queue_url, &sdk) {
                (Some(url), Some(sdk)) => Some(Arc::new(SqsQueue::new(
                    aws_sdk_sqs::Client::new(sdk),
                    url.clone(),
                    config.webhook_dead_letter_queue_url.clone(),
                ))),
                _ => None,
            };
        let mut app = App::with_catalog(config, catalog, store, clock)?;
        app.queue = queue;
        app.webhook_queue = webhook_queue;
        if let Some(sdk) = &sdk {
            app.webhook_secrets = Arc::new(crate::webhook::secrets::WebhookSecrets::with_stores(
                Arc::new(AwsSecretStores::new(sdk)),
            ));
        }
        phases.mark("providers");
        phases.report();
        Ok(Arc::new(app))
    }
}

/// Where start-up time goes, when `TOLLGATE_INIT_TIMING` is set: one `init phases` line (log
/// target `tollgate::init_timing`, level info) with the microseconds of each phase, wall
/// clock (`phases`) and CPU time of the whole process (`cpu_phases`, where `/proc` tells;
/// `cpu_before_us` is what the process used before the load began: loading, the runtime,
/// logging), for the cold-start measurements. CPU time is what a busy machine does not
/// distort. Costs nothing when unset.
struct InitPhases {
    last: Option<std::time::Instant>,
    spent: Vec<(&'static str, u128)>,
    cpu_started: Option<u64>,
    cpu_last: Option<u64>,
    cpu_spent: Vec<(&'static str, u64)>,
}

impl InitPhases {
    fn new(on: bool) -> Self {
        let cpu = on
            .then(|| crate::cpu_time::process_cpu_ns("self"))
            .flatten();
        InitPhases {
            last: on.then(std::time::Instant::now),
            spent: Vec::new(),
            cpu_started: cpu,
            cpu_last: cpu,
            cpu_spent: Vec::new(),
        }
    }

    /// The time since the previous mark belongs to `phase` (added up if it recurs).
    fn mark(&mut self, phase: &'static str) {
        if let Some(last) = self.last {
            let now = std::time::Instant::now();
            let us = (now - last).as_micros();
            match self.spent.iter_mut().find(|(p, _)| *p == phase) {
                Some((_, total)) => *total += us,
                None => self.spent.push((phase, us)),
            }
            self.last = Some(now);
            if let (Some(before), Some(cpu)) =
                (self.cpu_last, crate::cpu_time::process_cpu_ns("self"))
            {
                let us = cpu.saturating_sub(before) / 1_000;
                match self.cpu_spent.iter_mut().find(|(p, _)| *p == phase) {
                    Some((_, total)) => *total += us,
                    None => self.cpu_spent.push((phase, us)),
                }
                self.cpu_last = Some(cpu);
            }
        }
    }

    fn report(&self) {
        if self.last.is_some() {
            let object = |pairs: Vec<(&str, u64)>| {
                serde_json::Value::Object(
                    pairs
                        .into_iter()
                        .map(|(p, us)| (p.to_owned(), serde_json::Value::from(us)))
                        .collect(),
                )
            };
            let phases = object(self.spent.iter().map(|(p, us)| (*p, *us as u64)).collect());
            let cpu_phases = object(self.cpu_spent.to_vec());
            // -1: `/proc` could not tell.
            let cpu_before_us = self
                .cpu_started
                .map_or(-1, |ns| i64::try_from(ns / 1_000).unwrap_or(i64::MAX));
            tracing::info!(target: "tollgate::init_timing", %phases, %cpu_phases, cpu_before_us, "init phases");
        }
    }
}

/// The catalog of `CATALOG_JSON` or `CATALOG_PATH`, read now; `None` for an S3 catalog.
fn local_catalog(config: &Config, clock: &dyn Clock) -> Result<Option<LiveCatalog>, StartupError> {
    Ok(match &config.catalog {
        CatalogConfig::Json(json) => Some(LiveCatalog::fixed(
            Catalog::from_json(json).map_err(|e| StartupError::Other(format!("catalog: {e}")))?,
        )),
        CatalogConfig::File(path) => Some(LiveCatalog::watch_file(
            FileSource { path: path.clone() },
            config.catalog_refresh_seconds,
            clock.now_ms(),
        )?),
        CatalogConfig::S3 { .. } => None,
    })
}

/// S3 with path-style addresses when the endpoint is overridden (a local S3 such as moto
/// or MinIO serves no per-bucket host names); AWS itself gets virtual-hosted addresses.
fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The providers, plus the App Store verifier and Play client when those are enabled.
type Built = (Providers, Option<Arc<Apple>>, Option<Arc<Google>>);

/// Every enabled provider, configured; one that this build cannot serve, or whose variables
/// are missing or malformed, stops start-up with a message naming the variable. All of them
/// share one outbound HTTPS client. `self_url` is where the local server will listen, once
/// bound.
fn build_providers(
    config: &Config,
    catalog: &CatalogView,
    clock: Arc<dyn Clock>,
    self_url: &Arc<OnceLock<String>>,
    shared: &SharedHttpClient,
) -> Result<Built, StartupError> {
    let mut providers = Providers::default();
    let mut apple_verifier = None;
    let mut google_client = None;
    let vars = &config.provider_vars;
    let http_client = || shared.client().map_err(StartupError::Other);
    for name in &config.providers {
        match name.as_str() {
            apple::NAME => {
                let a = Arc::new(Apple::new(AppleConfig::from_vars(vars)?, http_client()?));
                providers.with_creator(apple::NAME, a.clone());
                apple_verifier = Some(a);
            }
            google::NAME => {
                let g = Arc::new(Google::new(GoogleConfig::from_vars(vars)?, http_client()?));
                providers.with_creator(google::NAME, g.clone());
                google_client = Some(g);
            }
            sandbox::NAME => {
                let secret = config.sandbox_secret.clone();
                let p = Arc::new(match &config.public_base_url {
                    Some(base) => sandbox::Sandbox::new(secret, base.clone()),
                    // The bound address, known only once the local server listens (PORT may
                    // be 0). A Lambda has no pay page: the configured port stands in.
                    None => {
                        let own = self_url.clone();
                        let fallback = format!("http://127.0.0.1:{}", config.port);
                        sandbox::Sandbox::with_base_url(secret, move || {
                            own.get().cloned().unwrap_or_else(|| fallback.clone())
                        })
                    }
                });
                providers
                    .with_creator(sandbox::NAME, p.clone())
                    .with_verifier(sandbox::NAME, p.clone())
                    .with_refunds(sandbox::NAME, p);
            }
            alipay::NAME => {
                let http = http_client()?;
                let p = alipay::Alipay::from_vars(vars, catalog, http, clock.clone())?;
                providers.with_full_service(alipay::NAME, Arc::new(p));
            }
            huya::NAME => {
                let p = Arc::new(huya::Huya::from_vars(vars, catalog)?);
                providers.with_verifier(huya::NAME, p);
            }
            wechat::NAME => {
                let http = http_client()?;
                let p = wechat::WechatPay::from_vars(vars, catalog, http, clock.clone())?;
                providers.with_full_service(wechat::NAME, Arc::new(p));
            }
            other => {
                return Err(ConfigError {
                    name: "PROVIDERS",
                    problem: format!("provider {other:?} is not available in this build yet"),
                }
                .into())
            }
        }
    }
    // Orders paid with coins are refunded by the store alone, whatever PROVIDERS says.
    providers.with_refunds(
        crate::service::coin_orders::PROVIDER,
        Arc::new(crate::service::coin_orders::CoinRefunds),
    );
    Ok((providers, apple_verifier, google_client))
}

/// The outbound client with its timeout (`PROVIDER_HTTP_TIMEOUT_SECONDS`) and roots
/// (`TLS_ROOTS`), not built until a provider or the webhooks need it.
fn outbound_client(config: &Config) -> Result<SharedHttpClient, StartupError> {
    let secs = match config.provider_vars.get("PROVIDER_HTTP_TIMEOUT_SECONDS") {
        None => crate::providers::outbound::DEFAULT_TIMEOUT_SECONDS,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=25).contains(n))
            .ok_or_else(|| ConfigError {
                name: "PROVIDER_HTTP_TIMEOUT_SECONDS",
                problem: "must be an integer in 1..=25".into(),
            })?,
    };
    Ok(SharedHttpClient::new(
        Duration::from_secs(secs),
        config.tls_roots,
    ))
}

/// One SDK configuration per process, with timeouts so a slow dependency fails a request
/// instead of hanging it until the Lambda deadline. `AWS_ENDPOINT_URL` is honoured by the SDK.
/// `roots` says which certificates its HTTPS client trusts (see [`TlsRoots`]).
pub async fn aws_sdk_config(roots: TlsRoots) -> Result<aws_config::SdkConfig, StartupError> {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let loader = roots
        .sdk_loader(aws_config::defaults(aws_config::BehaviorVersion::latest()))
        .map_err(StartupError::Other)?;
    Ok(loader
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await)
}

async fn warm_up(store: &DynamoStore) {
    // Any cheap authorised call opens the connection; its answer does not matter.
    let r = store
        .client()
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("WARMUP".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("WARMUP".into()),
        )
        .send()
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "DynamoDB warm-up failed");
    }
}

//! The catalog the app sells from, replaced whole when its source changes.
//!
//! A deployment may change prices or add products without a redeploy: with `CATALOG_S3_URI`
//! (or `CATALOG_PATH` on a laptop) the source is looked at again at most once per
//! `CATALOG_REFRESH_SECONDS`, lazily, by the request that finds the interval over; the others
//! go on with the catalog they have, so a warm function costs one cheap request per interval
//! and none per request. A new version must parse and validate before it replaces the old
//! one; an invalid one is refused (logged, counted as `CatalogRejected`) and the old one
//! keeps serving. Readers take an [`Arc`] snapshot, so one request sees one catalog
//! throughout, and an order keeps what it was sold with (its price and grants are on the
//! order), whatever the catalog says later.

use crate::config::{err, ConfigError};
use crate::domain::Catalog;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The name of the metric counted for each refused catalog version (alarmed on).
pub const REJECTED_METRIC: &str = "CatalogRejected";

/// A cheap, cloneable view of the current catalog, for the parts (providers) that need the
/// catalog at the moment they use it rather than at start-up.
#[derive(Clone)]
pub struct CatalogView(Arc<ArcSwap<Catalog>>);

impl CatalogView {
    /// A view of a catalog that never changes (tests, `CATALOG_JSON`).
    pub fn fixed(catalog: Catalog) -> Self {
        CatalogView(Arc::new(ArcSwap::from_pointee(catalog)))
    }

    /// The catalog now; hold it for the whole of one piece of work.
    pub fn current(&self) -> Arc<Catalog> {
        self.0.load_full()
    }
}

impl std::fmt::Debug for CatalogView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.0.load();
        f.debug_struct("CatalogView")
            .field("products", &c.products().len())
            .field("streams", &c.streams().len())
            .finish()
    }
}

/// A version of the catalog's text, and what identifies it (an S3 ETag, a file's size and
/// modification time).
pub struct Fetched {
    pub text: String,
    pub version: Option<String>,
}

/// Where a changing catalog comes from.
#[async_trait::async_trait]
pub trait CatalogSource: Send + Sync {
    /// The variable that names the source, for start-up errors.
    fn variable(&self) -> &'static str;

    /// The current text, or `None` when it is still `known` (a conditional read).
    async fn fetch(&self, known: Option<&str>) -> Result<Option<Fetched>, String>;
}

/// The catalog, its source, and when the source is next looked at.
pub struct LiveCatalog {
    view: CatalogView,
    source: Option<Box<dyn CatalogSource>>,
    interval_ms: i64,
    /// The earliest time of the next look; whoever moves it forward does the look.
    next_check_ms: AtomicI64,
    /// The version being served; held while a look is under way.
    version: tokio::sync::Mutex<Option<String>>,
    /// Invalid versions refused so far (what `CatalogRejected` counts in CloudWatch).
    rejections: AtomicU64,
}

impl LiveCatalog {
    /// A catalog that never changes (`CATALOG_JSON`, tests).
    pub fn fixed(catalog: Catalog) -> Self {
        LiveCatalog {
            view: CatalogView::fixed(catalog),
            source: None,
            interval_ms: i64::MAX,
            next_check_ms: AtomicI64::new(i64::MAX),
            version: tokio::sync::Mutex::new(None),
            rejections: AtomicU64::new(0),
        }
    }

    /// Reads `source` once; its first version must be valid, or start-up stops naming the
    /// variable. Then it is looked at again at most every `interval_s` from `now_ms`.
    pub async fn watch(
        source: Box<dyn CatalogSource>,
        interval_s: u64,
        now_ms: i64,
    ) -> Result<Self, ConfigError> {
        let first = source.fetch(None).await;
        Self::start(source, first, interval_s, now_ms)
    }

    /// [`watch`](Self::watch) for a file, read without waiting (the app is built
    /// synchronously in tests and the local server).
    pub fn watch_file(
        source: FileSource,
        interval_s: u64,
        now_ms: i64,
    ) -> Result<Self, ConfigError> {
        let first = source.read(None);
        Self::start(Box::new(source), first, interval_s, now_ms)
    }

    fn start(
        source: Box<dyn CatalogSource>,
        first: Result<Option<Fetched>, String>,
        interval_s: u64,
        now_ms: i64,
    ) -> Result<Self, ConfigError> {
        let name = source.variable();
        let first = first
            .map_err(|e| err(name, e))?
            .ok_or_else(|| err(name, "the source answered \"unchanged\" to a first read"))?;
        let catalog =
            Catalog::from_json(&first.text).map_err(|e| err(name, format!("invalid: {e}")))?;
        let interval_ms = i64::try_from(interval_s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        Ok(LiveCatalog {
            view: CatalogView::fixed(catalog),
            source: Some(source),
            interval_ms,
            next_check_ms: AtomicI64::new(now_ms.saturating_add(interval_ms)),
            version: tokio::sync::Mutex::new(first.version),
            rejections: AtomicU64::new(0),
        })
    }

    /// The catalog now: one snapshot per request.
    pub fn current(&self) -> Arc<Catalog> {
        self.view.current()
    }

    /// How many invalid versions were refused since start-up.
    pub fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }

    /// A view that follows the replacements, for providers.
    pub fn view(&self) -> CatalogView {
        self.view.clone()
    }

    /// Looks at the source if the interval is over and nobody else is looking. Never fails:
    /// an unreachable source or an invalid version leaves the current catalog in place.
    /// Answers what happened, for tests and logs.
    pub async fn refresh_if_due(&self, now_ms: i64) -> Refresh {
        let Some(source) = &self.source else {
            return Refresh::NotDue;
        };
        let due = self.next_check_ms.load(Ordering::Acquire);
        if now_ms < due {
            return Refresh::NotDue;
        }
        // Single flight: one caller moves the deadline and looks; the others carry on.
        if self
            .next_check_ms
            .compare_exchange(
                due,
                now_ms.saturating_add(self.interval_ms),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Refresh::NotDue;
        }
        let Ok(mut version) = self.version.try_lock() else {
            return Refresh::NotDue;
        };
        let name = source.variable();
        match source.fetch(version.as_deref()).await {
            Ok(None) => Refresh::Unchanged,
            Ok(Some(fetched)) => match Catalog::from_json(&fetched.text) {
                Ok(catalog) => {
                    self.view.0.store(Arc::new(catalog));
                    tracing::info!(source = name, version = ?fetched.version, "catalog replaced");
                    *version = fetched.version;
                    Refresh::Replaced
                }
                Err(e) => {
                    // The version is not remembered, so it is refused (and counted) again at
                    // every look until it is fixed: the alarm stays on while it is there.
                    self.rejections.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::count(REJECTED_METRIC, 1, &[]);
                    tracing::error!(
                        source = name,
                        version = ?fetched.version,
                        error = %e,
                        "new catalog version is invalid; keeping the current one"
                    );
                    Refresh::Rejected(e.to_string())
                }
            },
            Err(e) => {
                tracing::warn!(source = name, error = %e, "catalog source unreadable; keeping the current catalog");
                Refresh::Unreadable(e)
            }
        }
    }
}

/// What one [`LiveCatalog::refresh_if_due`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Not due, or another caller is looking.
    NotDue,
    Unchanged,
    Replaced,
    /// The new version was invalid (why); the current catalog stays.
    Rejected(String),
    /// The source could not be read (why); the current catalog stays.
    Unreadable(String),
}

/// `CATALOG_PATH`: a file, re-read when its size or modification time changes.
pub struct FileSource {
    pub path: std::path::PathBuf,
}

impl FileSource {
    fn read(&self, known: Option<&str>) -> Result<Option<Fetched>, String> {
        let shown = self.path.display();
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let stamp = format!("{}-{modified}", meta.len());
        if known == Some(stamp.as_str()) {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Ok(Some(Fetched {
            text,
            version: Some(stamp),
        }))
    }
}

#[async_trait::async_trait]
impl CatalogSource for FileSource {
    fn variable(&self) -> &'static str {
        "CATALOG_PATH"
    }

    /// A small local file: read in place rather than on a blocking thread.
    async fn fetch(&self, known: Option<&str>) -> Result<Option<Fetched>, String> {
        self.read(known)
    }
}

/// `CATALOG_S3_URI`: an S3 object, read again only when its ETag changed (a conditional
/// `GetObject` with `If-None-Match`, answered 304 when unchanged).
pub struct S3Source {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub key: String,
}

#[async_trait::async_trait]
impl CatalogSource for S3Source {
    fn variable(&self) -> &'static str {
        "CATALOG_S3_URI"
    }

    async fn fetch(&self, known: Option<&str>) -> Result<Option<Fetched>, String> {
        let uri = format!("s3://{}/{}", self.bucket, self.key);
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(known.map(str::to_owned))
            .send()
            .await;
        let object = match answer {
            Ok(o) => o,
            Err(e) => {
                if e.raw_response().map(|r| r.status().as_u16()) == Some(304) {
                    return Ok(None);
                }
                return Err(format!(
                    "cannot read {uri}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ));
            }
        };
        let version = object.e_tag().map(str::to_owned);
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot read {uri}: {e}"))?
            .into_bytes();
        let text =
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("{uri} is not UTF-8 text"))?;
        Ok(Some(Fetched { text, version }))
    }
}

/// `s3://bucket/key` → (bucket, key).
pub fn parse_s3_uri(uri: &str) -> Option<(String, String)> {
    let (bucket, key) = uri.trim().strip_prefix("s3://")?.split_once('/')?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    (bucket_ok && !key.is_empty()).then(|| (bucket.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const V1: &str = r#"{"products":[{"id":"ticket","title":"Ticket","kind":"credits",
        "credits":10,"price":{"amount":100,"currency":"CNY"}}]}"#;
    const V2: &str = r#"{"products":[{"id":"ticket","title":"Ticket","kind":"credits",
        "credits":10,"price":{"amount":250,"currency":"CNY"}}]}"#;

    /// A source whose text tests replace, counting the reads that reach it.
    #[derive(Clone, Default)]
    struct Scripted(Arc<Mutex<(String, u32, u32)>>);

    impl Scripted {
        fn set(&self, text: &str) {
            let mut s = self.0.lock().unwrap();
            s.0 = text.into();
            s.1 += 1;
        }
        fn reads(&self) -> u32 {
            self.0.lock().unwrap().2
        }
    }

    #[async_trait::async_trait]
    impl CatalogSource for Scripted {
        fn variable(&self) -> &'static str {
            "CATALOG_S3_URI"
        }
        async fn fetch(&self, known: Option<&str>) -> Result<Option<Fetched>, String> {
            let mut s = self.0.lock().unwrap();
            s.2 += 1;
            let version = s.1.to_string();
            if known == Some(version.as_str()) {
                return Ok(None);
            }
            Ok(Some(Fetched {
                text: s.0.clone(),
                version: Some(version),
            }))
        }
    }

    fn price(c: &Catalog) -> i64 {
        c.product("ticket").unwrap().price.unwrap().amount
    }

    #[tokio::test]
    async fn a_new_version_replaces_the_old_at_most_once_per_interval() {
        let src = Scripted::default();
        src.set(V1);
        let live = LiveCatalog::watch(Box::new(src.clone()), 60, 0)
            .await
            .unwrap();
        let view = live.view();
        assert_eq!(price(&live.current()), 100);
        src.set(V2);
        assert_eq!(live.refresh_if_due(59_999).await, Refresh::NotDue);
        assert_eq!(src.reads(), 1, "no read before the interval is over");
        let before = live.current();
        assert_eq!(live.refresh_if_due(60_000).await, Refresh::Replaced);
        assert_eq!(price(&live.current()), 250);
        assert_eq!(price(&view.current()), 250, "views follow");
        assert_eq!(price(&before), 100, "a snapshot taken before stays whole");
        assert_eq!(live.refresh_if_due(60_001).await, Refresh::NotDue);
        assert_eq!(live.refresh_if_due(120_000).await, Refresh::Unchanged);
        assert_eq!(src.reads(), 3);
    }

    #[tokio::test]
    async fn an_invalid_version_is_refused_every_time_and_the_old_one_stays() {
        let src = Scripted::default();
        src.set(V1);
        let live = LiveCatalog::watch(Box::new(src.clone()), 1, 0)
            .await
            .unwrap();
        src.set(r#"{"products":[{"id":"ticket"}]}"#);
        assert!(matches!(
            live.refresh_if_due(1_000).await,
            Refresh::Rejected(_)
        ));
        assert_eq!(price(&live.current()), 100);
        assert!(matches!(
            live.refresh_if_due(2_000).await,
            Refresh::Rejected(_)
        ));
        src.set(V2);
        assert_eq!(live.refresh_if_due(3_000).await, Refresh::Replaced);
        assert_eq!(price(&live.current()), 250);
    }

    #[tokio::test]
    async fn concurrent_callers_look_once() {
        let src = Scripted::default();
        src.set(V1);
        let live = Arc::new(
            LiveCatalog::watch(Box::new(src.clone()), 60, 0)
                .await
                .unwrap(),
        );
        src.set(V2);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let live = live.clone();
            tasks.spawn(async move { live.refresh_if_due(61_000).await });
        }
        let mut replaced = 0;
        while let Some(r) = tasks.join_next().await {
            if r.unwrap() == Refresh::Replaced {
                replaced += 1;
            }
        }
        assert_eq!(replaced, 1);
        assert_eq!(src.reads(), 2, "the first read and exactly one look");
    }

    #[tokio::test]
    async fn an_invalid_first_version_stops_start_up_naming_the_variable() {
        let src = Scripted::default();
        src.set("{");
        let e = LiveCatalog::watch(Box::new(src), 60, 0)
            .await
            .err()
            .unwrap();
        assert_eq!(e.name, "CATALOG_S3_URI");
    }

    #[tokio::test]
    async fn a_file_is_read_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("tollgate-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.json");
        std::fs::write(&path, V1).unwrap();
        let live = LiveCatalog::watch(Box::new(FileSource { path: path.clone() }), 5, 0)
            .await
            .unwrap();
        assert_eq!(live.refresh_if_due(5_000).await, Refresh::Unchanged);
        // A different size is a change even within the file system's time resolution.
        std::fs::write(&path, V2.replace("Ticket", "Ticket two")).unwrap();
        assert_eq!(live.refresh_if_due(10_000).await, Refresh::Replaced);
        assert_eq!(price(&live.current()), 250);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            live.refresh_if_due(15_000).await,
            Refresh::Unreadable(_)
        ));
        assert_eq!(price(&live.current()), 250);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn s3_uris() {
        assert_eq!(
            parse_s3_uri("s3://my-bucket/conf/catalog.json"),
            Some(("my-bucket".into(), "conf/catalog.json".into()))
        );
        for bad in [
            "s3://bucket",
            "s3://b/x",
            "https://b/x",
            "s3://Bucket/x",
            "s3://bucket/",
        ] {
            assert_eq!(parse_s3_uri(bad), None, "{bad}");
        }
    }
}

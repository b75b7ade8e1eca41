//! Business and health metrics as CloudWatch Embedded Metric Format (EMF): one JSON line on
//! stdout per event, which CloudWatch Logs turns into metrics with no API call and no extra
//! dependency. Only Lambdas emit them (the local server stays quiet unless `METRICS=emf`).
//! Tests read what was counted with [`Recording`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// One count kept by a [`Recording`]: name, dimensions, value.
type Counted = (String, Vec<(String, String)>, i64);

thread_local! {
    /// The counts made on this thread while a [`Recording`] is alive.
    static RECORDED: RefCell<Option<Vec<Counted>>> = const { RefCell::new(None) };
}

pub const NAMESPACE: &str = "Tollgate";

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Counts `value` of metric `name` with the given dimensions.
pub fn count(name: &str, value: i64, dimensions: &[(&str, &str)]) {
    emit_count(name, value, dimensions, line);
}

/// Counts `value` of metric `name` by each of `dimensions` apart (one series per
/// dimension, and the total), where [`count`] makes one series of all of them together: an
/// order is counted by `Provider` and by `Line` without a series per pair, and the total is
/// still counted once.
pub fn count_apart(name: &str, value: i64, dimensions: &[(&str, &str)]) {
    emit_count(name, value, dimensions, line_apart);
}

/// An EMF document of a count: name, value, dimensions, timestamp (ms).
type CountDocument = fn(&str, i64, &[(&str, &str)], i64) -> String;

/// Keeps the count for a [`Recording`] of this thread, and prints its EMF document (made
/// by `document`) when metrics are enabled.
fn emit_count(name: &str, value: i64, dimensions: &[(&str, &str)], document: CountDocument) {
    RECORDED.with(|r| {
        if let Some(kept) = r.borrow_mut().as_mut() {
            let dims = dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            kept.push((name.to_owned(), dims, value));
        }
    });
    if ENABLED.load(Ordering::Relaxed) {
        println!(
            "{}",
            document(
                name,
                value,
                dimensions,
                chrono::Utc::now().timestamp_millis()
            )
        );
    }
}

/// Records how long something took, in milliseconds (`name` ends in `Ms` by convention).
/// CloudWatch keeps the distribution of the values, so the dashboard and the alarms read
/// their p50, p90 and p99. Latency is measured on the monotonic clock, not the app's
/// [`crate::clock::Clock`]: it is about this process, not about business time.
pub fn timing(name: &str, elapsed: std::time::Duration, dimensions: &[(&str, &str)]) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    RECORDED.with(|r| {
        if let Some(kept) = r.borrow_mut().as_mut() {
            let dims = dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            // Kept in whole microseconds, so that a test sees that something was timed.
            kept.push((name.to_owned(), dims, (ms * 1000.0).round() as i64));
        }
    });
    if ENABLED.load(Ordering::Relaxed) {
        println!(
            "{}",
            timing_line(name, ms, dimensions, chrono::Utc::now().timestamp_millis())
        );
    }
}

/// Runs `work` and records its duration as [`timing`] `name`.
pub async fn timed<T>(
    name: &str,
    dimensions: &[(&str, &str)],
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    timing(name, started.elapsed(), dimensions);
    out
}

/// Keeps every count made on the current thread from [`Recording::start`] until it is
/// dropped, so that a test can say what a request counted. A single-threaded test runtime
/// (`#[tokio::test]`) runs the handler, and the local server's tasks, on the test's thread;
/// other threads' counts, other tests' included, are not seen.
#[derive(Debug)]
pub struct Recording(());

impl Recording {
    pub fn start() -> Self {
        RECORDED.with(|r| *r.borrow_mut() = Some(Vec::new()));
        Recording(())
    }

    /// The sum of the counts of `name` whose dimensions include all of `dimensions`.
    pub fn total(&self, name: &str, dimensions: &[(&str, &str)]) -> i64 {
        RECORDED.with(|r| {
            r.borrow().as_ref().map_or(0, |kept| {
                kept.iter()
                    .filter(|(n, dims, _)| {
                        n == name
                            && dimensions
                                .iter()
                                .all(|(k, v)| dims.iter().any(|(dk, dv)| dk == k && dv == v))
                    })
                    .map(|(_, _, value)| value)
                    .sum()
            })
        })
    }
}

impl Recording {
    /// How many timings of `name` whose dimensions include all of `dimensions` were made.
    pub fn samples(&self, name: &str, dimensions: &[(&str, &str)]) -> usize {
        RECORDED.with(|r| {
            r.borrow().as_ref().map_or(0, |kept| {
                kept.iter()
                    .filter(|(n, dims, _)| {
                        n == name
                            && dimensions
                                .iter()
                                .all(|(k, v)| dims.iter().any(|(dk, dv)| dk == k && dv == v))
                    })
                    .count()
            })
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDED.with(|r| *r.borrow_mut() = None);
    }
}

/// The EMF document for one metric.
pub fn line(name: &str, value: i64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    document(
        name,
        value.into(),
        "Count",
        dimensions,
        together(dims),
        timestamp_ms,
    )
}

/// The EMF document of a count by each dimension apart ([`count_apart`]).
pub fn line_apart(
    name: &str,
    value: i64,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> String {
    let mut sets: Vec<Vec<&str>> = dimensions.iter().map(|(k, _)| vec![*k]).collect();
    sets.push(Vec::new());
    document(name, value.into(), "Count", dimensions, sets, timestamp_ms)
}

/// One dimension set of all the dimensions and, when there are any, the total: each metric
/// also goes out without dimensions, so alarms watch totals.
fn together(dims: Vec<&str>) -> Vec<Vec<&str>> {
    if dims.is_empty() {
        vec![dims]
    } else {
        vec![dims, Vec::new()]
    }
}

/// The EMF document for one duration in milliseconds.
pub fn timing_line(name: &str, ms: f64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    // Microsecond precision is plenty, and keeps the line short.
    let value = serde_json::Number::from_f64((ms * 1000.0).round() / 1000.0)
        .map_or(serde_json::Value::from(0), serde_json::Value::Number);
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    document(
        name,
        value,
        "Milliseconds",
        dimensions,
        together(dims),
        timestamp_ms,
    )
}

fn document(
    name: &str,
    value: serde_json::Value,
    unit: &str,
    dimensions: &[(&str, &str)],
    sets: Vec<Vec<&str>>,
    timestamp_ms: i64,
) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": [{ "Name": name, "Unit": unit }],
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
    }
    doc.insert(name.to_owned(), value);
    serde_json::Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_sums_the_counts_with_the_dimensions_asked_for() {
        count("CallbackRejected", 1, &[("Provider", "alipay")]);
        let r = Recording::start();
        count(
            "CallbackRejected",
            1,
            &[("Provider", "alipay"), ("Reason", "a")],
        );
        count(
            "CallbackRejected",
            2,
            &[("Provider", "alipay"), ("Reason", "b")],
        );
        count("OrdersPaid", 1, &[("Provider", "alipay")]);
        assert_eq!(r.total("CallbackRejected", &[("Provider", "alipay")]), 3);
        assert_eq!(r.total("CallbackRejected", &[("Reason", "b")]), 2);
        assert_eq!(r.total("CallbackRejected", &[("Provider", "wechat")]), 0);
        // Another thread's counts are its own.
        std::thread::spawn(|| count("OrdersPaid", 5, &[]))
            .join()
            .unwrap();
        assert_eq!(r.total("OrdersPaid", &[]), 1);
    }

    #[test]
    fn emf_document() {
        let l = line(
            "OrdersPaid",
            1,
            &[("Provider", "wechat")],
            1_800_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_800_000_000_000i64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Tollgate");
        assert_eq!(m["Dimensions"], serde_json::json!([["Provider"], []]));
        assert_eq!(m["Metrics"][0]["Name"], "OrdersPaid");
        assert_eq!(
            (v["Provider"].clone(), v["OrdersPaid"].clone()),
            ("wechat".into(), 1.into())
        );
        assert!(!l.contains('\n'), "one line per document");
        let bare: serde_json::Value =
            serde_json::from_str(&line("DevicesEvicted", 2, &[], 0)).unwrap();
        assert_eq!(
            bare["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([[]])
        );
    }

    #[test]
    fn a_count_apart_is_one_series_per_dimension_and_the_total() {
        let l = line_apart(
            "OrdersPaid",
            1,
            &[("Provider", "wechat"), ("Line", "music")],
            7,
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Provider"], ["Line"], []])
        );
        assert_eq!(
            (v["Provider"].clone(), v["Line"].clone()),
            ("wechat".into(), "music".into())
        );
        let r = Recording::start();
        count_apart(
            "OrdersPaid",
            1,
            &[("Provider", "wechat"), ("Line", "music")],
        );
        assert_eq!(r.total("OrdersPaid", &[("Line", "music")]), 1);
        assert_eq!(r.total("OrdersPaid", &[]), 1);
    }

    #[test]
    fn a_timing_is_a_millisecond_metric_with_its_percentiles_left_to_cloudwatch() {
        let l = timing_line("SettleMs", 12.3456789, &[("Provider", "alipay")], 5);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Metrics"][0]["Unit"], "Milliseconds");
        assert_eq!(m["Dimensions"], serde_json::json!([["Provider"], []]));
        assert_eq!(v["SettleMs"], 12.346);
        assert_eq!(v["Provider"], "alipay");
        let r = Recording::start();
        timing(
            "SettleMs",
            std::time::Duration::from_millis(3),
            &[("Provider", "alipay")],
        );
        timing(
            "SettleMs",
            std::time::Duration::from_millis(4),
            &[("Provider", "wechat")],
        );
        assert_eq!(r.samples("SettleMs", &[]), 2);
        assert_eq!(r.samples("SettleMs", &[("Provider", "alipay")]), 1);
        assert_eq!(r.total("SettleMs", &[("Provider", "alipay")]), 3_000);
    }
}

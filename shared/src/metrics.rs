//! Business and health metrics as CloudWatch Embedded Metric Format (EMF): one JSON line on
//! stdout per event, which CloudWatch Logs turns into metrics with no API call and no extra
//! dependency. Only Lambdas emit them (the local server stays quiet unless `METRICS=emf`).

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub const NAMESPACE: &str = "Tollgate";

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Counts `value` of metric `name` with the given dimensions.
pub fn count(name: &str, value: i64, dimensions: &[(&str, &str)]) {
    if ENABLED.load(Ordering::Relaxed) {
        println!(
            "{}",
            line(
                name,
                value,
                dimensions,
                chrono::Utc::now().timestamp_millis()
            )
        );
    }
}

/// The EMF document for one metric.
pub fn line(name: &str, value: i64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    let mut doc = serde_json::Map::new();
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    doc.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // Each metric also goes out without dimensions, so alarms watch totals.
                "Dimensions": if dims.is_empty() { serde_json::json!([dims]) } else { serde_json::json!([dims, []]) },
                "Metrics": [{ "Name": name, "Unit": "Count" }],
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
    }
    doc.insert(name.to_owned(), value.into());
    serde_json::Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

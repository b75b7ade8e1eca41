//! The funnel's metrics by business line: each order is counted once by its provider and
//! once by its product's line, and once in the total (so a line's series add up to it).

use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::metrics::Recording;
use tollgate::store::MemoryStore;
use tollgate_tests::*;

#[tokio::test]
async fn orders_are_counted_by_provider_and_by_line_apart() {
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["lines"] = serde_json::json!([
        {"id": "passes", "products": {"ids": ["pass"]}},
        {"id": "shows", "products": {"ids": ["concert", "coins-100", "vip", "vip-plus"]}}
    ]);
    let s = TestServer::start(app_with(
        Arc::new(MemoryStore::new()),
        ManualClock::at(T0),
        &[("CATALOG_JSON", catalog.to_string())],
    ))
    .await;
    // Recording sees this thread only: the test runtime is single-threaded, so the server's
    // tasks run here too.
    let r = Recording::start();
    s.buy("fan", "pass", Some("7d")).await;
    s.buy("fan", "coins-100", None).await;
    s.buy("fan-2", "coins-100", None).await;
    for name in ["OrdersCreated", "OrdersPaid"] {
        assert_eq!(r.total(name, &[("Line", "passes")]), 1, "{name}");
        assert_eq!(r.total(name, &[("Line", "shows")]), 2, "{name}");
        assert_eq!(r.total(name, &[("Provider", "sandbox")]), 3, "{name}");
        assert_eq!(
            r.total(name, &[]),
            3,
            "{name}: the total counts each order once"
        );
    }
    s.stop().await;
}

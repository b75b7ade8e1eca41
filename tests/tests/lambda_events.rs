//! Replays every sample in `events/` through the real Lambda handler entry
//! (`tollgate::lambda::handle_event`) and checks the status the manifest promises, so the
//! samples documented in the README never rot. Regenerate with `scripts/gen_events.py`.

use std::path::Path;
use std::sync::Arc;
use tollgate::api::Routes;
use tollgate::app::App;
use tollgate::clock::ManualClock;
use tollgate::domain::{Currency, Money, Order, OrderId, OrderState};
use tollgate::store::MemoryStore;
use tollgate_tests::api_gateway::routes_of;
use tollgate_tests::*;

fn events_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn seeded(id: &str, provider: &str) -> Order {
    Order {
        order_id: OrderId::parse(id).unwrap(),
        user_id: "event-user".into(),
        product_id: "pass".into(),
        plan_id: Some("7d".into()),
        amount: Money::new(900, Currency::CNY).unwrap(),
        provider: provider.into(),
        channel: None,
        grants: vec!["channel:main".into()],
        term: Some(tollgate::domain::Term::Days(7)),
        credits: 0,
        state: OrderState::Pending,
        created_at: T0 - 60,
        expires_at: T0 + 840,
        paid_at: None,
        late: false,
        provider_txn_id: None,
        closed_at: None,
        retain_until: None,
        refunded_at: None,
        refunded_amount: 0,
        refund_ids: Default::default(),
        payment: None,
        sweep_attempts: 0,
        last_error: None,
        refund_reversed_at: None,
        refund_reversal_reason: None,
        stream_id: None,
        refund_requested: 0,
        access_revoked_at: None,
        max_views: None,
    }
}

#[tokio::test]
async fn every_sample_event_gets_its_status() {
    let store = Arc::new(MemoryStore::new());
    for (id, provider) in [
        ("01KQ0000000000000000000001", "sandbox"),
        ("01KQ0000000000000000000002", "sandbox"),
        ("01KQ0000000000000000000003", "sandbox"),
        ("01KQ0000000000000000000004", "wechat"),
        ("01KQ0000000000000000000005", "alipay"),
    ] {
        tollgate::store::Store::create_order(&*store, &seeded(id, provider), None, &UNCAPPED, T0)
            .await
            .unwrap();
    }
    let mut due = seeded("01KQ0000000000000000000006", "sandbox");
    due.expires_at = T0 - 60;
    tollgate::store::Store::create_order(&*store, &due, None, &UNCAPPED, T0)
        .await
        .unwrap();
    // The callbacks need no provider server: an unreachable base URL is fine.
    let mut env: Vec<(&str, String)> = tollgate_tests::wechat::env("http://127.0.0.1:9");
    env.extend(tollgate_tests::alipay::env("http://127.0.0.1:9/gateway.do"));
    env.extend(tollgate_tests::huya::env());
    env.push((
        "PROVIDERS",
        "sandbox,wechat,alipay,huya,apple,google".into(),
    ));
    env.push(("AUTH_MODE", "apigw".into()));
    env.push(("APPLE_BUNDLE_ID", tollgate_tests::apple::BUNDLE.into()));
    env.push(("APPLE_APP_APPLE_ID", "1234567".into()));
    env.push((
        "APPLE_ROOT_CERTS",
        tollgate_tests::apple::fixture_path("root.pem"),
    ));
    env.push((
        "GOOGLE_PACKAGE_NAME",
        tollgate_tests::fake_google::PACKAGE.into(),
    ));
    env.push((
        "GOOGLE_PUSH_AUDIENCE",
        tollgate_tests::fake_google::AUDIENCE.into(),
    ));
    env.push((
        "GOOGLE_PUSH_SERVICE_ACCOUNT",
        tollgate_tests::fake_google::PUSH_ACCOUNT.into(),
    ));
    env.push((
        "GOOGLE_JWKS_URL",
        tollgate_tests::fake_google::fixture_path("push_jwks.json"),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let clock = ManualClock::at(T0);
    let mut app = App::new(test_config(&env), store.clone(), Arc::new(clock.clone())).unwrap();
    // Play purchases and notifications queue verification jobs.
    let queue = Arc::new(tollgate::queue::MemoryQueue::new(Arc::new(clock)));
    app.queue = Some(tollgate::app::Queue::Memory(queue.clone()));
    let app = Arc::new(app);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("manifest.json")).unwrap())
            .unwrap();
    let mut listed = std::collections::HashSet::new();
    for case in manifest.as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        listed.insert(file.to_owned());
        let text = std::fs::read_to_string(events_dir().join(file)).unwrap();
        match case["function"].as_str().unwrap() {
            "sweeper" => {
                let _: serde_json::Value = serde_json::from_str(&text).unwrap();
                let report = tollgate::lambda::handle_schedule(&app, i64::MAX).await;
                assert_eq!(
                    u64::from(report.expired),
                    case["expired"].as_u64().unwrap(),
                    "{file}: {report:?}"
                );
                continue;
            }
            "verifier" => {
                let batch: aws_lambda_events::event::sqs::SqsEvent =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let r = tollgate::lambda::handle_sqs_batch(&app, batch).await;
                assert_eq!(
                    r.batch_item_failures.len() as u64,
                    case["batch_item_failures"].as_u64().unwrap(),
                    "{file}"
                );
                continue;
            }
            "dispatcher" => {
                let batch: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let r = tollgate::lambda::dispatcher::handle_event(&app, batch)
                    .await
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(
                    r["batchItemFailures"].as_array().unwrap().len() as u64,
                    case["batch_item_failures"].as_u64().unwrap(),
                    "{file}: {r}"
                );
                continue;
            }
            _ => {}
        }
        let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let resp = tollgate::lambda::handle_event(
            &app,
            routes_of(case["function"].as_str().unwrap()),
            req,
        )
        .await;
        assert_eq!(
            resp.status().as_u16() as u64,
            case["status"].as_u64().unwrap(),
            "{file}: {:?}",
            resp.body()
        );
    }
    // Every sample is in the manifest.
    for function in [
        "create-order",
        "provider-callback",
        "stream-token",
        "store-notifications",
        "sweeper",
        "verifier",
        "dispatcher",
    ] {
        for entry in std::fs::read_dir(events_dir().join(function)).unwrap() {
            let name = format!(
                "{function}/{}",
                entry.unwrap().file_name().to_string_lossy()
            );
            assert!(
                listed.contains(&name),
                "{name} is not in events/manifest.json"
            );
        }
    }
    // The effects are real: the paid samples granted (sandbox, WeChat, Alipay and the App
    // Store purchase; Huya to its own buyer), the operator's promotion and coins were
    // written with their audit records, the cancel sample cancelled.
    let items = tollgate::store::Store::user_items(&*store, "event-user")
        .await
        .unwrap();
    assert_eq!(items.grants.len(), 5, "{:?}", items.grants);
    assert!(items.grants.iter().any(|g| g.source_id == "apple:700001"));
    assert!(items
        .grants
        .iter()
        .any(|g| g.source_id.starts_with("promo#") && g.product_id == "pass"));
    assert_eq!(
        items.credits, 70,
        "100 coins from the operator, 30 spent on a gift"
    );
    let trail = tollgate::store::Store::user_audit(&*store, "event-user", 10, None, None)
        .await
        .unwrap();
    // Both at the replay's one instant: their order within it is not defined.
    let mut actions: Vec<_> = trail.records.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["grant", "wallet"]);
    assert!(trail.records.iter().all(|r| r.actor == "ops"));
    let huya = tollgate::store::Store::user_items(&*store, "huya:hy-event-profile")
        .await
        .unwrap();
    assert_eq!(huya.grants.len(), 1);
    // The Play purchase and the renewal push each queued one verification job.
    assert_eq!(queue.len(), 2);
    let cancelled = tollgate::store::Store::get_order(
        &*store,
        &OrderId::parse("01KQ0000000000000000000002").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(cancelled.state, OrderState::Cancelled);
}

#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let app = Arc::new(
        App::new(
            test_config(&[
                ("AUTH_MODE", "apigw"),
                ("PROVIDERS", "sandbox,apple"),
                ("APPLE_BUNDLE_ID", tollgate_tests::apple::BUNDLE),
                ("APPLE_APP_APPLE_ID", "1234567"),
                (
                    "APPLE_ROOT_CERTS",
                    &tollgate_tests::apple::fixture_path("root.pem"),
                ),
            ]),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::at(T0)),
        )
        .unwrap(),
    );
    let text = std::fs::read_to_string(events_dir().join("create-order/create.json")).unwrap();
    for routes in [
        Routes::Callbacks,
        Routes::Streams,
        Routes::StoreNotifications,
    ] {
        let req = lambda_http::request::from_str(&text).unwrap();
        assert_eq!(
            tollgate::lambda::handle_event(&app, routes, req)
                .await
                .status(),
            404
        );
    }
    // The unauthenticated store routes exist only in the store-notifications function.
    let text = std::fs::read_to_string(
        events_dir().join("store-notifications/apple-notification-test.json"),
    )
    .unwrap();
    for routes in [Routes::Orders, Routes::Callbacks, Routes::Streams] {
        let req = lambda_http::request::from_str(&text).unwrap();
        assert_eq!(
            tollgate::lambda::handle_event(&app, routes, req)
                .await
                .status(),
            404
        );
    }
}

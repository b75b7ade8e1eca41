//! The dispatcher end to end, on both stores: events recorded by real store writes, sent
//! over real HTTP to receivers on loopback, signed (checked by the spec's verifier in
//! `tollgate_tests::webhooks`), retried on the controllable time of each tick.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tollgate::domain::event::DeliveryState;
use tollgate::domain::line::Lines;
use tollgate::domain::{Order, OrderQuota, OrderState};
use tollgate::providers::outbound::HttpClient;
use tollgate::store::{MemoryStore, SettleOutcome, Settlement, Store};
use tollgate::webhook::deliver::{Dispatcher, RetryPolicy};
use tollgate::webhook::run::LocalRunner;
use tollgate_tests::conformance::pending;
use tollgate_tests::fake::Seen;
use tollgate_tests::webhooks::{verify, Receiver};
use tollgate_tests::wrappers::CountingStore;

const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const T: i64 = 3_700_000_000;
const UNCAPPED: OrderQuota = OrderQuota {
    limit: None,
    window_seconds: 900,
};

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(MemoryStore::new()))];
    if let Some(d) = tollgate_tests::moto_store().await {
        out.push(("dynamo", Arc::new(d)));
    }
    out
}

fn runner(base_s: &str, max_s: &str) -> LocalRunner {
    let policy = RetryPolicy::from_lookup(|n| match n {
        "WEBHOOK_RETRY_BASE_SECONDS" => Some(base_s.to_owned()),
        "WEBHOOK_RETRY_MAX_SECONDS" => Some(max_s.to_owned()),
        _ => None,
    })
    .unwrap();
    let http = HttpClient::new(Duration::from_secs(5), Default::default()).unwrap();
    LocalRunner::new(Dispatcher::new(http, policy))
}

/// One line with every product, posting `events` (all when `None`) to `url`.
fn one_line(url: &str, events: Option<&[&str]>, products: &[&str]) -> Lines {
    let mut hook = serde_json::json!({"url": url, "secret": KEY});
    if let Some(e) = events {
        hook["events"] = serde_json::json!(e);
    }
    Lines::parse(
        serde_json::json!([{"id": "main", "products": {"pattern": "*"}, "webhooks": [hook]}]),
        products,
    )
    .unwrap()
}

/// Creates and pays an order of `product` for `user` at `at`: its events are recorded.
async fn paid_order(store: &dyn Store, seed: u64, user: &str, product: &str, at: i64) -> Order {
    let mut o = pending(seed, user, at);
    o.product_id = product.into();
    store.create_order(&o, None, &UNCAPPED, at).await.unwrap();
    let s = Settlement {
        order_id: o.order_id.clone(),
        user_id: o.user_id.clone(),
        product_id: o.product_id.clone(),
        expected_state: OrderState::Pending,
        amount: o.amount,
        provider: o.provider.clone(),
        provider_txn_id: format!("txn-{}", o.order_id),
        paid_at: at,
        grants: o.grants_at(at),
        credits: 0,
        recorded_at: at,
        stream_id: None,
    };
    assert_eq!(store.settle(&s).await.unwrap(), SettleOutcome::Settled);
    o
}

fn body(s: &Seen) -> serde_json::Value {
    serde_json::from_slice(&s.body).unwrap()
}

/// Every request is signed, names its event as `webhook-id` and in the body.
fn check_requests(seen: &[Seen]) {
    for s in seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.header("content-type"), "application/json");
        assert!(verify(KEY, s), "signature of {}", s.header("webhook-id"));
        assert_eq!(body(s)["id"], s.header("webhook-id"));
    }
}

/// Ticks every `step` seconds from `from` until nothing waits (at most `max` ticks);
/// returns the time reached.
async fn drain(
    r: &mut LocalRunner,
    store: &dyn Store,
    lines: &Lines,
    from: i64,
    step: i64,
    max: u32,
) -> i64 {
    let mut now = from;
    for _ in 0..max {
        r.tick(store, lines, now).await.unwrap();
        if r.waiting() == 0 {
            return now;
        }
        now += step;
    }
    panic!("deliveries still waiting after {max} ticks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_five_times_then_recovering_gets_every_event_under_one_id() {
    for (name, store) in stores().await {
        let rx = Receiver::start().await;
        rx.mode.fail_next.store(5, Ordering::SeqCst);
        let lines = one_line(&rx.url(), None, &[]);
        let user = format!("f5-{name}");
        for i in 0..3 {
            paid_order(&*store, 9_200 + i, &user, "pass", T).await;
        }
        let mut r = runner("1", "2");
        drain(&mut r, &*store, &lines, T, 3, 40).await;
        let seen = rx.seen();
        check_requests(&seen);
        // 3 orders: created, paid, two grants each.
        let mut per_id: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for s in &seen {
            per_id.entry(s.header("webhook-id").to_owned()).or_default();
        }
        assert_eq!(per_id.len(), 12, "{name}: every event, each its own id");
        assert_eq!(
            seen.len(),
            12 + 5,
            "{name}: five failures retried, nothing else twice"
        );
        let page = store
            .events_since(T - 60, T + 1_000, 100, None)
            .await
            .unwrap();
        let mut attempts = 0;
        for rec in page.records.iter().filter(|r| r.event.user_id == user) {
            let d = &rec.deliveries[&rx.url()];
            assert_eq!(d.state, DeliveryState::Delivered, "{name}");
            assert_eq!(d.last_status, Some(204));
            assert!(per_id.contains_key(&rec.event.id));
            attempts += d.attempts;
        }
        assert_eq!(attempts, 17, "{name}: attempts recorded as made");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_down_while_200_payments_settle_receives_all_200_after() {
    for (name, store) in stores().await {
        let rx = Receiver::start().await;
        rx.mode.down.store(true, Ordering::SeqCst);
        let lines = one_line(&rx.url(), Some(&["order.paid"]), &[]);
        let user = format!("down-{name}");
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let store = store.clone();
            let user = user.clone();
            tasks.push(tokio::spawn(async move {
                paid_order(&*store, 10_000 + i, &user, "pass", T)
                    .await
                    .order_id
            }));
        }
        let mut orders = BTreeSet::new();
        for t in tasks {
            orders.insert(t.await.unwrap().to_string());
        }
        // Down for a day (memory) or ten minutes (DynamoDB: its single-threaded emulator
        // takes minutes for each round of 200 retries): retried, never given up.
        let (down_for, cap) = if name == "memory" {
            (86_400, "3600")
        } else {
            (600, "300")
        };
        let mut r = runner("1", cap);
        let mut now = T;
        while now < T + down_for {
            r.tick(&*store, &lines, now).await.unwrap();
            now += 300;
        }
        assert_eq!(r.waiting(), 200, "{name}: every delivery still waiting");
        rx.mode.down.store(false, Ordering::SeqCst);
        drain(&mut r, &*store, &lines, now, 300, 30).await;
        let delivered: BTreeSet<String> = rx
            .seen()
            .iter()
            .filter(|s| body(s)["type"] == "order.paid")
            .map(|s| body(s)["data"]["order_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(delivered, orders, "{name}: all 200 after the outage");
        check_requests(&rx.seen());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_post_and_acknowledgement_sends_again_under_the_same_id() {
    for (name, store) in stores().await {
        let counting = CountingStore::new(store.clone());
        let rx = Receiver::start().await;
        let lines = one_line(&rx.url(), Some(&["order.paid"]), &[]);
        let o = paid_order(&*store, 9_300, &format!("crash-{name}"), "pass", T).await;
        counting.fail_next("put_event_deliveries", 1);
        let mut first = runner("1", "2");
        assert!(first.tick(&*counting, &lines, T).await.is_err(), "{name}");
        assert_eq!(rx.seen().len(), 1, "{name}: posted, not acknowledged");
        // A new process (the crashed one is gone): it finds the record still pending.
        let mut second = runner("1", "2");
        second.tick(&*counting, &lines, T + 5).await.unwrap();
        let seen = rx.seen();
        assert_eq!(seen.len(), 2, "{name}");
        assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
        assert_eq!(body(&seen[1])["data"]["order_id"], o.order_id.as_str());
        let rec = store
            .get_event(seen[0].header("webhook-id"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.deliveries[&rx.url()].state, DeliveryState::Delivered);
        // Nothing more is sent once it is acknowledged.
        second.tick(&*counting, &lines, T + 10).await.unwrap();
        assert_eq!(rx.seen().len(), 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_routed_by_product_prefix_to_their_line() {
    for (name, store) in stores().await {
        let music = Receiver::start().await;
        let games = Receiver::start().await;
        let lines = Lines::parse(
            serde_json::json!([
                {"id": "music", "products": {"prefix": "music-"},
                 "webhooks": [{"url": music.url(), "secret": KEY}]},
                {"id": "games", "products": {"prefix": "games-"},
                 "webhooks": [{"url": games.url(), "secret": KEY, "events": ["order.paid"]}]}
            ]),
            &["music-pass", "games-pass"],
        )
        .unwrap();
        let user = format!("route-{name}");
        let m = paid_order(&*store, 9_400, &user, "music-pass", T).await;
        let g = paid_order(&*store, 9_401, &user, "games-pass", T).await;
        let mut r = runner("1", "2");
        r.tick(&*store, &lines, T).await.unwrap();
        let to_music = music.seen();
        let to_games = games.seen();
        check_requests(&to_music);
        check_requests(&to_games);
        assert_eq!(to_music.len(), 4, "{name}: every event of the music line");
        for s in &to_music {
            assert_eq!(body(s)["line"], "music");
            assert_eq!(body(s)["product_id"], "music-pass");
        }
        assert_eq!(
            to_games.len(),
            1,
            "{name}: the games line wants order.paid only"
        );
        assert_eq!(body(&to_games[0])["data"]["order_id"], g.order_id.as_str());
        assert_eq!(body(&to_games[0])["line"], "games");
        assert!(to_music
            .iter()
            .any(|s| body(s)["data"]["order_id"] == m.order_id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_410_disables_the_endpoint() {
    for (name, store) in stores().await {
        let rx = Receiver::start().await;
        rx.mode.gone.store(true, Ordering::SeqCst);
        let lines = one_line(&rx.url(), Some(&["order.paid"]), &[]);
        let user = format!("gone-{name}");
        paid_order(&*store, 9_500, &user, "pass", T).await;
        let mut r = runner("1", "2");
        r.tick(&*store, &lines, T).await.unwrap();
        assert_eq!(rx.seen().len(), 1);
        assert_eq!(r.waiting(), 0, "{name}: a 410 is final");
        let disabled = store.disabled_endpoints().await.unwrap();
        assert_eq!(disabled, vec![(rx.url(), T)], "{name}");
        // Later events are not sent to it, even once it would answer.
        rx.mode.gone.store(false, Ordering::SeqCst);
        paid_order(&*store, 9_501, &user, "pass", T + 20).await;
        r.tick(&*store, &lines, T + 20).await.unwrap();
        assert_eq!(rx.seen().len(), 1, "{name}");
        let page = store.events_since(T + 20, T + 20, 100, None).await.unwrap();
        let paid = page
            .records
            .iter()
            .find(|r| r.event.user_id == user && r.event.kind.as_str() == "order.paid")
            .unwrap();
        assert_eq!(paid.deliveries[&rx.url()].state, DeliveryState::Disabled);
        assert_eq!(paid.deliveries[&rx.url()].attempts, 0);
    }
}

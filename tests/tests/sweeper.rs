//! The sweeper, the re-query queue and the verifier: cost, fault injection, races, retries.
//! Time moves only through the injected clock.

use std::sync::Arc;
use tollgate::app::{App, Queue};
use tollgate::clock::ManualClock;
use tollgate::domain::{Order, OrderState};
use tollgate::queue::memory::Delivery;
use tollgate::queue::{Job, JobQueue, MemoryQueue};
use tollgate::service::sweep::sweep;
use tollgate::store::{SettleOutcome, Settlement, Store};
use tollgate_tests::conformance::pending;
use tollgate_tests::fake_provider::{Answer, FakeServer, ScriptedProvider, NAME};
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

const FOREVER: i64 = i64::MAX;

struct Env {
    app: Arc<App>,
    store: Arc<CountingStore>,
    clock: ManualClock,
    fake: FakeServer,
    queue: Arc<MemoryQueue>,
}

async fn env(backend: Backend) -> Option<Env> {
    let inner = store_for(backend).await?;
    let store = CountingStore::new(inner);
    let clock = ManualClock::at(T0);
    let fake = FakeServer::start().await;
    let mut app = App::new(test_config(&[]), store.clone(), Arc::new(clock.clone())).unwrap();
    ScriptedProvider::register(&fake.base, &mut app.providers);
    let queue = Arc::new(MemoryQueue::new(Arc::new(clock.clone())));
    app.queue = Some(Queue::Memory(queue.clone()));
    Some(Env {
        app: Arc::new(app),
        store,
        clock,
        fake,
        queue,
    })
}

impl Env {
    /// A PENDING order of the scripted provider, expiring at T0 + 900.
    async fn order(&self, seed: u64, answers: Vec<Answer>) -> Order {
        let mut o = pending(seed, "sweep-user", T0);
        o.provider = NAME.into();
        self.store
            .create_order(&o, None, &UNCAPPED, T0)
            .await
            .unwrap();
        self.fake.script(o.order_id.as_str(), answers);
        o
    }

    async fn state(&self, o: &Order) -> Order {
        self.store.get_order(&o.order_id).await.unwrap().unwrap()
    }

    async fn grants(&self) -> usize {
        self.store
            .user_items("sweep-user")
            .await
            .unwrap()
            .grants
            .len()
    }
}

fn paid(o: &Order) -> Answer {
    Answer::Paid {
        txn: format!("txn-{}", o.order_id),
        amount: o.amount.amount,
    }
}

async fn cost_grows_with_due_orders(backend: Backend, bulk: u64) {
    let Some(e) = env(backend).await else { return };
    // `bulk` orders that must not be read: half paid, half not yet due.
    for i in 0..bulk {
        let mut o = pending(10_000 + i, "bulk-user", T0);
        o.provider = NAME.into();
        if i % 2 == 0 {
            o.expires_at = T0 + 100_000;
            e.store.create_order(&o, None, &UNCAPPED, T0).await.unwrap();
        } else {
            e.store.create_order(&o, None, &UNCAPPED, T0).await.unwrap();
            let st = Settlement {
                order_id: o.order_id.clone(),
                user_id: o.user_id.clone(),
                expected_state: OrderState::Pending,
                amount: o.amount,
                provider: o.provider.clone(),
                provider_txn_id: format!("b{i}"),
                paid_at: T0,
                product_id: o.product_id.clone(),
                grants: vec![],
                credits: 0,
                recorded_at: T0,
                stream_id: None,
            };
            assert_eq!(e.store.settle(&st).await.unwrap(), SettleOutcome::Settled);
        }
    }
    let mut due = Vec::new();
    for i in 0..10 {
        due.push(e.order(i, vec![Answer::NotPaid]).await);
    }
    e.clock.set(T0 + 901);
    e.store.reset();
    let report = sweep(&e.app, FOREVER).await;
    assert_eq!(report.expired, 10, "{report:?}");
    assert_eq!(report.examined, 10);
    assert_eq!(
        e.store.due_items.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "only the due orders were read"
    );
    assert_eq!(e.store.calls("get_order"), 10);
    assert_eq!(e.store.calls("due_orders"), u64::from(Order::DUE_SHARDS));
    for o in &due {
        assert_eq!(e.state(o).await.state, OrderState::Expired);
        assert_eq!(
            e.fake.closes(o.order_id.as_str()),
            1,
            "closed at the provider first"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reads_only_due_orders_memory() {
    cost_grows_with_due_orders(Backend::Memory, 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reads_only_due_orders_dynamo() {
    // Fewer bulk orders: moto is single-threaded and slow to load; the shape is the same.
    cost_grows_with_due_orders(Backend::Dynamo, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_provider_is_retried_until_it_answers() {
    let e = env(Backend::Memory).await.unwrap();
    let o = pending(1, "x", T0);
    let o = e
        .order(
            1,
            vec![Answer::ServerError, Answer::Hang, Answer::Garbage, paid(&o)],
        )
        .await;
    e.clock.set(T0 + 900);
    for (round, wait) in [(1u32, 60), (2, 120), (3, 240)] {
        let r = sweep(&e.app, FOREVER).await;
        assert_eq!((r.deferred, r.settled), (1, 0), "round {round}: {r:?}");
        let now = e.state(&o).await;
        assert_eq!(
            (now.state, now.sweep_attempts),
            (OrderState::Pending, round)
        );
        // Deferred: not looked at again before its backoff is over.
        assert_eq!(sweep(&e.app, FOREVER).await.examined, 0);
        e.clock.advance(wait);
    }
    let r = sweep(&e.app, FOREVER).await;
    assert_eq!(r.settled, 1, "{r:?}");
    let done = e.state(&o).await;
    assert_eq!((done.state, done.late), (OrderState::Paid, false));
    assert_eq!(e.grants().await, o.grants.len());
    assert_eq!(e.fake.queries(o.order_id.as_str()), 4);
    assert_eq!(
        e.fake.closes(o.order_id.as_str()),
        0,
        "a paid order is never closed"
    );
    // Nothing is left to sweep.
    e.clock.advance(10_000);
    assert_eq!(sweep(&e.app, FOREVER).await.examined, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_hand_the_order_to_the_queue() {
    let e = env(Backend::Memory).await.unwrap();
    let o = pending(2, "x", T0);
    let mut answers = vec![Answer::ServerError; 5];
    answers.push(Answer::ServerError);
    answers.push(paid(&o));
    let o = e.order(2, answers).await;
    e.clock.set(T0 + 900);
    let mut handed = 0;
    for _ in 0..5 {
        handed += sweep(&e.app, FOREVER).await.handed_off;
        e.clock.advance(1_800);
    }
    assert_eq!(handed, 1);
    assert_eq!(e.queue.len(), 1);
    // The verifier's first try fails (retry with backoff), the second finds it paid.
    tollgate::local::run_local_jobs(&e.app).await;
    assert_eq!(e.state(&o).await.state, OrderState::Pending);
    assert_eq!(e.queue.len(), 1, "retried, not lost");
    e.clock.advance(900);
    tollgate::local::run_local_jobs(&e.app).await;
    assert_eq!(e.state(&o).await.state, OrderState::Paid);
    assert!(e.queue.is_empty());
    assert_eq!(e.grants().await, o.grants.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_leaves_the_order_for_the_next_run() {
    let e = env(Backend::Memory).await.unwrap();
    let o = e.order(3, vec![Answer::NotPaid]).await;
    e.clock.set(T0 + 900);
    e.store.fail_next("close_order", 1);
    let r = sweep(&e.app, FOREVER).await;
    assert_eq!((r.errors, r.expired), (1, 0), "{r:?}");
    assert_eq!(e.state(&o).await.state, OrderState::Pending);
    // The index unreadable for every shard: nothing happens, nothing breaks.
    e.store.fail_next("due_orders", Order::DUE_SHARDS);
    let r = sweep(&e.app, FOREVER).await;
    assert_eq!((r.errors, r.expired), (Order::DUE_SHARDS, 0), "{r:?}");
    let r = sweep(&e.app, FOREVER).await;
    assert_eq!(r.expired, 1, "{r:?}");
    assert_eq!(e.state(&o).await.state, OrderState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_stops_before_its_deadline() {
    let e = env(Backend::Memory).await.unwrap();
    e.order(4, vec![Answer::NotPaid]).await;
    e.clock.set(T0 + 900);
    let r = sweep(&e.app, e.clock.now_ms_for_test() + 1_000).await;
    assert!(r.stopped_early);
    assert_eq!(r.examined, 0);
    assert_eq!(
        sweep(&e.app, FOREVER).await.expired,
        1,
        "the next run resumes"
    );
}

trait NowMs {
    fn now_ms_for_test(&self) -> i64;
}
impl NowMs for ManualClock {
    fn now_ms_for_test(&self) -> i64 {
        tollgate::clock::Clock::now_ms(self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_exhausted_jobs_end_in_the_dead_letters() {
    let e = env(Backend::Memory).await.unwrap();
    let o = e.order(5, vec![Answer::ServerError]).await;
    e.queue.restore(vec![(
        0,
        Delivery {
            body: "{not json".into(),
            receive_count: 0,
        },
    )]);
    e.queue
        .send(
            &Job::RequeryOrder {
                order_id: o.order_id.to_string(),
            },
            0,
        )
        .await
        .unwrap();
    tollgate::local::run_local_jobs(&e.app).await;
    let dead = e.queue.dead_letters();
    assert_eq!(dead.len(), 1, "the poison message, at once: {dead:?}");
    assert!(dead[0].1.contains("malformed"));
    // The failing job is retried with backoff until the eighth receive.
    for _ in 0..20 {
        e.clock.advance(900);
        tollgate::local::run_local_jobs(&e.app).await;
    }
    assert_eq!(e.queue.dead_letters().len(), 2);
    assert!(e.queue.is_empty());
    assert_eq!(e.fake.queries(o.order_id.as_str()), 8);
    // Nothing is lost: the order is still PENDING and still in the due index.
    assert_eq!(e.state(&o).await.state, OrderState::Pending);
    let r = sweep(&e.app, FOREVER).await;
    assert_eq!(r.examined, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_an_order_paid_meanwhile_is_done() {
    let e = env(Backend::Memory).await.unwrap();
    let o = pending(6, "x", T0);
    let o = e.order(6, vec![paid(&o)]).await;
    e.queue
        .send(
            &Job::RequeryOrder {
                order_id: o.order_id.to_string(),
            },
            0,
        )
        .await
        .unwrap();
    e.queue
        .send(
            &Job::RequeryOrder {
                order_id: o.order_id.to_string(),
            },
            0,
        )
        .await
        .unwrap();
    tollgate::local::run_local_jobs(&e.app).await;
    assert!(e.queue.is_empty());
    assert_eq!(e.state(&o).await.state, OrderState::Paid);
    assert_eq!(e.grants().await, o.grants.len(), "two jobs, one settle");
    assert_eq!(
        e.fake.queries(o.order_id.as_str()),
        1,
        "the second job saw it paid without asking"
    );
}

/// The embedded store gives memory back: orders the sweeper expired unpaid are deleted once
/// `ORDER_RETENTION_DAYS` have passed, with their idempotency keys and window counters;
/// the paid order, its grant and its payment stay.
#[tokio::test]
async fn memory_store_prunes_unpaid_orders_after_retention() {
    let store = Arc::new(tollgate::store::MemoryStore::new());
    let clock = ManualClock::at(T0);
    let app = test_app_with(
        store.clone(),
        clock.clone(),
        &[("ORDER_RETENTION_DAYS", "2")],
    );
    let s = TestServer::start(app.clone()).await;
    let auth = bearer("pruned");
    let mut unpaid = Vec::new();
    for i in 0..9 {
        let key = format!("prune-{i}");
        let r = s
            .request(
                "POST",
                "/orders",
                &[("authorization", &auth), ("idempotency-key", &key)],
                r#"{"product_id":"pass","plan_id":"7d","provider":"sandbox"}"#,
            )
            .await;
        assert_eq!(r.status, 201);
        unpaid.push(
            tollgate::domain::OrderId::parse(r.json()["order_id"].as_str().unwrap()).unwrap(),
        );
    }
    let paid = s.buy("pruned", "pass", Some("7d")).await;
    let paid = tollgate::domain::OrderId::parse(&paid).unwrap();
    clock.set(T0 + 901);
    assert_eq!(sweep(&app, FOREVER).await.expired, 9);
    let closed = store.get_order(&unpaid[0]).await.unwrap().unwrap();
    assert_eq!(closed.state, OrderState::Expired);
    assert_eq!(closed.retain_until, Some(T0 + 901 + 2 * DAY));
    let before = store.item_count();

    // A second short of the retention nothing goes; then a sweep deletes them.
    clock.set(T0 + 901 + 2 * DAY - 1);
    sweep(&app, FOREVER).await;
    assert!(store.get_order(&unpaid[0]).await.unwrap().is_some());
    clock.set(T0 + 901 + 2 * DAY);
    sweep(&app, FOREVER).await;
    for id in &unpaid {
        assert_eq!(store.get_order(id).await.unwrap(), None, "{id} deleted");
    }
    let after = store.item_count();
    // 9 orders and their 9 idempotency keys (24 h); the user's window counter went with
    // its window, at the first sweep.
    assert_eq!(before - after, 9 + 9, "before {before}, after {after}");
    let kept = store.get_order(&paid).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.retain_until), (OrderState::Paid, None));
    assert_eq!(store.user_items("pruned").await.unwrap().grants.len(), 1);
    s.stop().await;
}

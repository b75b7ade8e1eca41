//! The outbox on both stores: a payment and its events are one write (a failure injected
//! into the settle's transaction leaves neither), and simultaneous settles of one order
//! write its `order.paid` once.
use std::sync::Arc;
use tollgate::domain::event::{event_id, EventType};
use tollgate::domain::{OrderQuota, OrderState};
use tollgate::store::{MemoryStore, SettleOutcome, Settlement, Store, StoreError};
use tollgate_tests::conformance::pending;
use tollgate_tests::faults::{occupy_event_id, EventIds};
use tollgate_tests::moto_store;

const T: i64 = 3_600_000_000;
const UNCAPPED: OrderQuota = OrderQuota {
    limit: None,
    window_seconds: 900,
};

fn settlement(o: &tollgate::domain::Order, txn: &str) -> Settlement {
    Settlement {
        order_id: o.order_id.clone(),
        user_id: o.user_id.clone(),
        product_id: o.product_id.clone(),
        expected_state: OrderState::Pending,
        amount: o.amount,
        provider: o.provider.clone(),
        provider_txn_id: txn.into(),
        paid_at: T + 10,
        grants: o.grants_at(T + 10),
        credits: o.credits,
        recorded_at: T + 10,
        stream_id: None,
    }
}

/// The types of `user`'s events around `T`.
async fn types_of(store: &dyn Store, user: &str) -> Vec<String> {
    let page = store.events_since(T, T + 100, 1_000, None).await.unwrap();
    assert!(!page.more);
    let mut out: Vec<String> = page
        .records
        .iter()
        .filter(|r| r.event.user_id == user)
        .map(|r| r.event.kind.as_str().to_owned())
        .collect();
    out.sort();
    out
}

async fn all_or_nothing(store: &dyn Store, occupy: EventIds<'_>) {
    let o = pending(9_101, "aon-user", T);
    store.create_order(&o, None, &UNCAPPED, T).await.unwrap();
    occupy_event_id(occupy, &event_id(EventType::OrderPaid, o.order_id.as_str())).await;
    let failed = store.settle(&settlement(&o, "aon-txn")).await;
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    // Neither the payment nor any of its events.
    let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(stored.state, OrderState::Pending);
    assert_eq!(stored.paid_at, None);
    assert_eq!(
        store.order_for_txn("sandbox", "aon-txn").await.unwrap(),
        None
    );
    assert!(store
        .user_items("aon-user")
        .await
        .unwrap()
        .grants
        .is_empty());
    assert_eq!(types_of(store, "aon-user").await, ["order.created"]);
    for kind in [EventType::GrantCreated] {
        for g in o.grants_at(T + 10) {
            let id = event_id(kind, &format!("aon-user\n{}\n{}", g.scope, g.source_id));
            assert_eq!(store.get_event(&id).await.unwrap(), None);
        }
    }
}

/// 40 settles of one order at once (half with the one transaction, half with others): one
/// settles, and its events are written once.
async fn settled_once_concurrently(store: Arc<dyn Store>) {
    let o = pending(9_102, "conc-user", T);
    store.create_order(&o, None, &UNCAPPED, T).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let s = settlement(&o, &format!("conc-txn-{}", i % 2 * i));
        tasks.push(tokio::spawn(async move { store.settle(&s).await }));
    }
    let mut settled = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == SettleOutcome::Settled {
            settled += 1;
        }
    }
    assert_eq!(settled, 1);
    assert_eq!(
        types_of(&*store, "conc-user").await,
        [
            "grant.created",
            "grant.created",
            "order.created",
            "order.paid"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_payment_and_events_are_one_write() {
    let store = Arc::new(MemoryStore::new());
    all_or_nothing(&*store, EventIds::Memory(&store)).await;
    settled_once_concurrently(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_payment_and_events_are_one_write() {
    let Some(store) = moto_store().await else {
        return;
    };
    let store = Arc::new(store);
    all_or_nothing(&*store, EventIds::Dynamo(&store)).await;
    settled_once_concurrently(store).await;
}

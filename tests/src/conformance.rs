//! One conformance suite for every `Store`: run against the embedded store in plain
//! `cargo test`, and against DynamoDB (moto) by the test command.

use std::collections::HashSet;
use std::sync::Arc;
use tollgate::domain::checkpoint;
use tollgate::domain::grant::{self, Term};
use tollgate::domain::refund::{RefundCount, RefundReversal};
use tollgate::domain::session::{DeviceSession, Sessions};
use tollgate::domain::{
    Currency, Grant, Money, Order, OrderId, OrderQuota, OrderState, PurchaseState,
};
use tollgate::store::*;

use crate::UNCAPPED;

fn cny(amount: i64) -> Money {
    Money::new(amount, Currency::CNY).expect("money")
}

fn new_id(seed: u64) -> OrderId {
    let mut r = [0u8; 10];
    let nanos = tollgate::clock::SystemClock.now_ms() as u64;
    r[..8].copy_from_slice(&(seed ^ nanos.rotate_left(17)).to_be_bytes());
    r[8] = (seed >> 8) as u8;
    r[9] = seed as u8;
    OrderId::from_parts(1_800_000_000_000 + seed, r)
}

use tollgate::clock::Clock;
use tollgate::domain::refund_request::{
    RefundHold, RefundRequest, RefundRequestChange, RefundRequestState,
};

pub fn pending(seed: u64, user: &str, created_at: i64) -> Order {
    Order {
        order_id: new_id(seed),
        user_id: user.into(),
        product_id: "pass".into(),
        plan_id: Some("7d".into()),
        amount: cny(900),
        provider: "sandbox".into(),
        channel: None,
        grants: vec!["channel:main".into(), "channel:extra".into()],
        term: Some(Term::Days(7)),
        credits: 0,
        state: OrderState::Pending,
        created_at,
        expires_at: created_at + 900,
        paid_at: None,
        late: false,
        provider_txn_id: None,
        closed_at: None,
        retain_until: None,
        refunded_at: None,
        refunded_amount: 0,
        refund_ids: Default::default(),
        payment: Some(serde_json::json!({"pay_url": "http://x/pay"})),
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

/// The order as stored now (the read a caller passes to a conditional write).
async fn stored_order(store: &dyn Store, o: &Order) -> Order {
    store.get_order(&o.order_id).await.unwrap().unwrap()
}

fn settlement(o: &Order, expected: OrderState, txn: &str, paid_at: i64) -> Settlement {
    Settlement {
        order_id: o.order_id.clone(),
        user_id: o.user_id.clone(),
        expected_state: expected,
        amount: o.amount,
        provider: o.provider.clone(),
        provider_txn_id: txn.into(),
        paid_at,
        product_id: o.product_id.clone(),
        grants: o.grants_at(paid_at),
        credits: o.credits,
        recorded_at: paid_at,
        stream_id: None,
    }
}

/// The refund of `o`'s whole amount at once, as the service counts a refund that names no
/// refund of its own.
fn whole(o: &Order) -> RefundCount {
    RefundCount {
        refund_id: "whole".into(),
        add: o.amount.amount,
        before_min: 0,
        before_max: 0,
    }
}

async fn state_of(store: &dyn Store, id: &OrderId) -> OrderState {
    store
        .get_order(id)
        .await
        .unwrap()
        .expect("order exists")
        .state
}

/// Every case, in order. Each case uses its own users and orders, so the store may be shared.
pub async fn run_all(store: Arc<dyn Store>) {
    create_and_read(&*store).await;
    idempotent_create(&*store).await;
    legal_transitions(&*store).await;
    illegal_transitions(&*store).await;
    settle_checks_amount_and_txn(&*store).await;
    settle_exactly_once_concurrently(store.clone()).await;
    credits_exactly_once_concurrently(store.clone()).await;
    sessions_round_trip(&*store).await;
    sessions_one_writer_wins(store.clone()).await;
    due_index(&*store).await;
    user_items_and_refund(&*store).await;
    purchases_follow_the_newest_event(&*store).await;
    purchase_applied_once_concurrently(store.clone()).await;
    notes_dedupe(&*store).await;
    settle_new_order_once(&*store).await;
    settle_new_order_exactly_once_concurrently(store.clone()).await;
    bans_live_in_the_users_partition(&*store).await;
    publish_keys_rotate(&*store).await;
    promotions_granted_once_concurrently(store.clone()).await;
    revocations_follow_the_grants_as_read(&*store).await;
    wallet_changes_apply_one_at_a_time(store.clone()).await;
    audit_pages(&*store).await;
    refunds_add_up(&*store).await;
    refunds_counted_once_concurrently(store.clone()).await;
    order_quota_caps_each_users_window(&*store).await;
    order_quota_holds_concurrently(store.clone()).await;
    unpaid_closed_orders_expire_paid_ones_never(&*store).await;
    order_history_pages_newest_first(&*store).await;
    refund_reversed_once(store.clone()).await;
    markers_claimed_once(store.clone()).await;
    refund_requests_hold_and_finish(&*store).await;
    refund_holds_never_exceed_what_remains_concurrently(store.clone()).await;
    partial_refunds_revoking_take_coins_once(&*store).await;
    folds_archive_exactly_once(store.clone()).await;
    crate::wallet_conformance::run_all(store.clone()).await;
    events_written_with_their_changes(&*store).await;
    operator_changes_write_events(&*store).await;
    event_deliveries_one_writer_wins(store.clone()).await;
    purchase_changes_apply_on_the_record_read(store.clone()).await;
    counted_sessions_count_once_concurrently(store.clone()).await;
}

/// Every order of a user, newest first, page by page; nobody else's.
pub async fn order_history_pages_newest_first(store: &dyn Store) {
    let mut mine = Vec::new();
    for seed in 5_001..=5_005 {
        let o = pending(seed, "hist-user", 1_000 + seed as i64);
        store
            .create_order(&o, None, &UNCAPPED, 1_000)
            .await
            .unwrap();
        mine.push(o);
        let other = pending(seed + 100, "hist-other", 1_000);
        store
            .create_order(&other, None, &UNCAPPED, 1_000)
            .await
            .unwrap();
    }
    // A paid order stays in the history, as it is now.
    let paid = &mine[1];
    let s = settlement(paid, OrderState::Pending, "hist-txn", 2_000);
    assert_eq!(store.settle(&s).await.unwrap(), SettleOutcome::Settled);
    let paid_now = store.get_order(&paid.order_id).await.unwrap().unwrap();
    mine[1] = paid_now;
    mine.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .user_orders("hist-user", 2, before.as_ref())
            .await
            .unwrap();
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.iter().cloned());
        if !page.more {
            break;
        }
        before = Some(page.orders.last().unwrap().order_id.clone());
    }
    assert_eq!(seen, mine, "newest first, each once, as stored");
    // A page that ends exactly at the last order says there is no more.
    let last_two = store
        .user_orders("hist-user", 2, Some(&mine[2].order_id))
        .await
        .unwrap();
    assert_eq!(last_two.orders, mine[3..].to_vec());
    assert!(!last_two.more);
    let all = store.user_orders("hist-user", 100, None).await.unwrap();
    assert_eq!((all.orders.len(), all.more), (5, false));
    let none = store.user_orders("hist-nobody", 10, None).await.unwrap();
    assert!(none.orders.is_empty() && !none.more);
}

pub async fn create_and_read(store: &dyn Store) {
    let o = pending(1, "cr-user", 1_000);
    assert_eq!(
        store
            .create_order(&o, None, &UNCAPPED, 1_000)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.get_order(&o.order_id).await.unwrap(), Some(o.clone()));
    assert_eq!(store.get_order(&new_id(999)).await.unwrap(), None);
    // A credits order without plan or term round-trips too.
    let mut c = pending(2, "cr-user", 1_000);
    c.plan_id = None;
    c.term = None;
    c.grants.clear();
    c.credits = 100;
    c.payment = None;
    store
        .create_order(&c, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    assert_eq!(store.get_order(&c.order_id).await.unwrap(), Some(c));
}

pub async fn idempotent_create(store: &dyn Store) {
    let first = pending(10, "idem-user", 1_000);
    let rec = |o: &Order, hash: &str, now: i64| IdempotencyRecord {
        user_id: "idem-user".into(),
        key: "key-1".into(),
        request_hash: hash.into(),
        order_id: o.order_id.clone(),
        expires_at: now + IDEMPOTENCY_TTL,
    };
    assert_eq!(
        store
            .create_order(&first, Some(&rec(&first, "h1", 1_000)), &UNCAPPED, 1_000)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let second = pending(11, "idem-user", 1_001);
    match store
        .create_order(&second, Some(&rec(&second, "h2", 1_001)), &UNCAPPED, 1_001)
        .await
        .unwrap()
    {
        CreateOutcome::KeyExists(existing) => {
            assert_eq!(existing.order_id, first.order_id);
            assert_eq!(existing.request_hash, "h1");
        }
        other => panic!("expected KeyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_order(&second.order_id).await.unwrap(),
        None,
        "nothing half-written"
    );
    // The same key of another user is another key.
    let mut other_user = pending(12, "idem-user-2", 1_000);
    other_user.user_id = "idem-user-2".into();
    let mut r = rec(&other_user, "h1", 1_000);
    r.user_id = "idem-user-2".into();
    assert_eq!(
        store
            .create_order(&other_user, Some(&r), &UNCAPPED, 1_000)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // After the key's expiry it may be used again.
    let later = 1_000 + IDEMPOTENCY_TTL;
    let third = pending(13, "idem-user", later);
    assert_eq!(
        store
            .create_order(&third, Some(&rec(&third, "h3", later)), &UNCAPPED, later)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

pub async fn legal_transitions(store: &dyn Store) {
    // PENDING → CANCELLED, then a late payment is still honoured.
    let a = pending(20, "lt-user", 1_000);
    store
        .create_order(&a, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    match store
        .close_order(&a, OrderState::Cancelled, 1_100, None)
        .await
        .unwrap()
    {
        TransitionOutcome::Done(o) => {
            assert_eq!(o.state, OrderState::Cancelled);
            assert_eq!(o.closed_at, Some(1_100));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .settle(&settlement(&a, OrderState::Cancelled, "lt-a", 1_200))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    let paid = store.get_order(&a.order_id).await.unwrap().unwrap();
    assert_eq!(
        (paid.state, paid.late, paid.paid_at),
        (OrderState::Paid, true, Some(1_200))
    );
    assert_eq!(paid.provider_txn_id.as_deref(), Some("lt-a"));
    // PENDING → EXPIRED → PAID (late) → REFUNDED.
    let b = pending(21, "lt-user", 1_000);
    store
        .create_order(&b, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    assert!(matches!(
        store
            .close_order(&b, OrderState::Expired, 1_900, None)
            .await
            .unwrap(),
        TransitionOutcome::Done(_)
    ));
    assert_eq!(
        store
            .settle(&settlement(&b, OrderState::Expired, "lt-b", 2_000))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    let paid_b = store.get_order(&b.order_id).await.unwrap().unwrap();
    assert!(paid_b.late);
    match store.refund(&paid_b, &whole(&paid_b), 3_000).await.unwrap() {
        TransitionOutcome::Done(o) => assert_eq!(o.state, OrderState::Refunded),
        other => panic!("{other:?}"),
    }
    let refunded = store.get_order(&b.order_id).await.unwrap().unwrap();
    assert_eq!(
        (
            refunded.state,
            refunded.refunded_at,
            refunded.refunded_amount
        ),
        (OrderState::Refunded, Some(3_000), 900)
    );
    assert_eq!(refunded.refund_ids, ["whole".to_owned()].into());
    // PENDING → PAID on time.
    let c = pending(22, "lt-user", 1_000);
    store
        .create_order(&c, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .settle(&settlement(&c, OrderState::Pending, "lt-c", 1_010))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    assert!(!store.get_order(&c.order_id).await.unwrap().unwrap().late);
}

pub async fn illegal_transitions(store: &dyn Store) {
    let o = pending(30, "il-user", 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    // Refund of an unpaid order.
    assert!(
        matches!(store.refund(&o, &whole(&o), 1_001).await.unwrap(), TransitionOutcome::Conflict(c) if c.state == OrderState::Pending)
    );
    // Closing to a state that is not a close.
    assert!(matches!(
        store
            .close_order(&o, OrderState::Paid, 1_001, None)
            .await
            .unwrap(),
        TransitionOutcome::Conflict(_)
    ));
    // Settling from the wrong expected state changes nothing.
    assert!(matches!(
        store.settle(&settlement(&o, OrderState::Expired, "il-x", 1_002)).await.unwrap(),
        SettleOutcome::OrderChanged(c) if c.state == OrderState::Pending
    ));
    assert_eq!(state_of(store, &o.order_id).await, OrderState::Pending);
    store
        .close_order(&o, OrderState::Expired, 1_003, None)
        .await
        .unwrap();
    // EXPIRED cannot be cancelled or expired again.
    for to in [OrderState::Cancelled, OrderState::Expired] {
        assert!(matches!(
            store.close_order(&o, to, 1_004, None).await.unwrap(),
            TransitionOutcome::Conflict(c) if c.state == OrderState::Expired
        ));
    }
    store
        .settle(&settlement(&o, OrderState::Expired, "il-1", 1_005))
        .await
        .unwrap();
    // PAID cannot be cancelled, expired or paid again by another transaction.
    for to in [OrderState::Cancelled, OrderState::Expired] {
        assert!(matches!(
            store.close_order(&o, to, 1_006, None).await.unwrap(),
            TransitionOutcome::Conflict(c) if c.state == OrderState::Paid
        ));
    }
    assert!(matches!(
        store.settle(&settlement(&o, OrderState::Pending, "il-2", 1_007)).await.unwrap(),
        SettleOutcome::OrderChanged(c) if c.state == OrderState::Paid
    ));
    let paid = store.get_order(&o.order_id).await.unwrap().unwrap();
    store.refund(&paid, &whole(&paid), 1_008).await.unwrap();
    // REFUNDED is final.
    assert!(
        matches!(store.refund(&paid, &whole(&paid), 1_009).await.unwrap(), TransitionOutcome::Conflict(c) if c.state == OrderState::Refunded)
    );
    assert!(matches!(
        store.settle(&settlement(&o, OrderState::Expired, "il-3", 1_010)).await.unwrap(),
        SettleOutcome::OrderChanged(c) if c.state == OrderState::Refunded
    ));
    // Unknown orders.
    let ghost = pending(31, "il-user", 1_000);
    assert_eq!(
        store
            .close_order(&ghost, OrderState::Expired, 1, None)
            .await
            .unwrap(),
        TransitionOutcome::UnknownOrder
    );
    assert_eq!(
        store.refund(&ghost, &whole(&ghost), 1).await.unwrap(),
        TransitionOutcome::UnknownOrder
    );
    assert_eq!(
        store
            .settle(&settlement(&ghost, OrderState::Pending, "il-ghost", 1))
            .await
            .unwrap(),
        SettleOutcome::UnknownOrder
    );
    assert_eq!(
        store.get_order(&ghost.order_id).await.unwrap(),
        None,
        "no order conjured up"
    );
}

pub async fn settle_checks_amount_and_txn(store: &dyn Store) {
    let o = pending(40, "am-user", 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    let mut wrong = settlement(&o, OrderState::Pending, "am-1", 1_001);
    wrong.amount = cny(1);
    assert!(matches!(
        store.settle(&wrong).await.unwrap(),
        SettleOutcome::OrderChanged(_)
    ));
    assert_eq!(state_of(store, &o.order_id).await, OrderState::Pending);
    assert!(store.user_items("am-user").await.unwrap().grants.is_empty());
    // A provider transaction can settle only one order.
    store
        .settle(&settlement(&o, OrderState::Pending, "am-1", 1_002))
        .await
        .unwrap();
    let other = pending(41, "am-user", 1_000);
    store
        .create_order(&other, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .settle(&settlement(&other, OrderState::Pending, "am-1", 1_003))
            .await
            .unwrap(),
        SettleOutcome::TxnAlreadyRecorded {
            order_id: o.order_id.clone()
        }
    );
    assert_eq!(state_of(store, &other.order_id).await, OrderState::Pending);
}

/// 64 concurrent settles of one order, half with the same transaction id and half with
/// others: exactly one wins and exactly one set of grants exists.
pub async fn settle_exactly_once_concurrently(store: Arc<dyn Store>) {
    let o = pending(50, "race-user", 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        let txn = if i % 2 == 0 {
            "race-same".to_string()
        } else {
            format!("race-{i}")
        };
        let st = settlement(&o, OrderState::Pending, &txn, 1_100);
        tasks.push(tokio::spawn(async move { store.settle(&st).await }));
    }
    let mut settled = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            SettleOutcome::Settled => settled += 1,
            SettleOutcome::TxnAlreadyRecorded { .. } | SettleOutcome::OrderChanged(_) => {}
            SettleOutcome::UnknownOrder => panic!("order vanished"),
        }
    }
    assert_eq!(settled, 1, "exactly one settle wins");
    let items = store.user_items("race-user").await.unwrap();
    assert_eq!(
        items.grants.len(),
        2,
        "one grant per scope, once: {:?}",
        items.grants
    );
    let sources: HashSet<_> = items.grants.iter().map(|g| g.source_id.clone()).collect();
    assert_eq!(sources.len(), 1);
}

pub async fn credits_exactly_once_concurrently(store: Arc<dyn Store>) {
    let mut o = pending(60, "coin-user", 1_000);
    o.grants.clear();
    o.term = None;
    o.credits = 100;
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let st = settlement(&o, OrderState::Pending, "coin-txn", 1_100);
        tasks.push(tokio::spawn(async move { store.settle(&st).await }));
    }
    let mut settled = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == SettleOutcome::Settled {
            settled += 1;
        }
    }
    assert_eq!(settled, 1);
    assert_eq!(store.user_items("coin-user").await.unwrap().credits, 100);
    let paid = store.get_order(&o.order_id).await.unwrap().unwrap();
    store.refund(&paid, &whole(&paid), 1_200).await.unwrap();
    assert_eq!(store.user_items("coin-user").await.unwrap().credits, 0);
}

pub async fn due_index(store: &dyn Store) {
    // Far-future times keep this case clear of other cases' orders.
    let base = 5_000_000_000;
    let mut orders = Vec::new();
    for i in 0..40u64 {
        let mut o = pending(100 + i, "due-user", base + i as i64);
        o.expires_at = base + 1_000 + i as i64 * 10;
        store.create_order(&o, None, &UNCAPPED, base).await.unwrap();
        orders.push(o);
    }
    let due_at = |now: i64| {
        let orders = &orders;
        async move {
            let mut found = Vec::new();
            for shard in 0..Order::DUE_SHARDS {
                let entries = store.due_orders(shard, now, 1_000).await.unwrap();
                for e in &entries {
                    assert!(e.due_at <= now);
                    assert_eq!(tollgate::domain::order::due_shard(&e.order_id), shard);
                }
                assert!(
                    entries.windows(2).all(|w| w[0].due_at <= w[1].due_at),
                    "oldest first"
                );
                found.extend(
                    entries
                        .into_iter()
                        .map(|e| e.order_id)
                        .filter(|id| orders.iter().any(|o| &o.order_id == id)),
                );
            }
            found.sort();
            found
        }
    };
    assert!(due_at(base + 999).await.is_empty());
    // Due exactly at expires_at, inclusive.
    let mut expect: Vec<_> = orders[..10].iter().map(|o| o.order_id.clone()).collect();
    expect.sort();
    assert_eq!(due_at(base + 1_090).await, expect);
    // Orders that leave PENDING leave the index.
    store
        .close_order(&orders[0], OrderState::Expired, base + 1_100, None)
        .await
        .unwrap();
    store
        .close_order(&orders[1], OrderState::Cancelled, base + 1_100, None)
        .await
        .unwrap();
    store
        .settle(&settlement(
            &orders[2],
            OrderState::Pending,
            "due-2",
            base + 1_100,
        ))
        .await
        .unwrap();
    let all = due_at(base + 10_000).await;
    assert_eq!(all.len(), 37);
    for gone in &orders[..3] {
        assert!(!all.contains(&gone.order_id));
    }
    // The limit bounds a page.
    let shard = orders[5].due_shard();
    assert!(
        store
            .due_orders(shard, base + 10_000, 1)
            .await
            .unwrap()
            .len()
            <= 1
    );
}

pub async fn user_items_and_refund(store: &dyn Store) {
    let a = pending(200, "ui-user", 1_000);
    let b = pending(201, "ui-user", 1_000);
    let other = pending(202, "ui-other", 1_000);
    for o in [&a, &b, &other] {
        store.create_order(o, None, &UNCAPPED, 1_000).await.unwrap();
        store
            .settle(&settlement(
                o,
                OrderState::Pending,
                &format!("ui-{}", o.order_id),
                2_000,
            ))
            .await
            .unwrap();
    }
    let items = store.user_items("ui-user").await.unwrap();
    assert_eq!(items.grants.len(), 4);
    assert!(items
        .grants
        .iter()
        .all(|g| g.revoked_at.is_none() && g.paid_at == 2_000));
    let expected_a: Vec<Grant> = a.grants_at(2_000);
    for g in &expected_a {
        assert!(items.grants.contains(g), "missing {g:?}");
    }
    let paid_a = store.get_order(&a.order_id).await.unwrap().unwrap();
    store.refund(&paid_a, &whole(&paid_a), 3_000).await.unwrap();
    let items = store.user_items("ui-user").await.unwrap();
    for g in &items.grants {
        let expect = (g.source_id == a.order_id.to_string()).then_some(3_000);
        assert_eq!(g.revoked_at, expect, "{g:?}");
    }
    assert_eq!(store.user_items("ui-other").await.unwrap().grants.len(), 2);
    assert_eq!(
        store.user_items("nobody").await.unwrap(),
        UserItems::default()
    );
}

fn purchase(id: &str, user: &str, at: i64, until: i64, revoked: Option<i64>) -> StorePurchase {
    let source = format!("apple:{id}");
    StorePurchase {
        store: "apple".into(),
        purchase_id: id.into(),
        user_id: user.into(),
        product_id: "vip".into(),
        state: if revoked.is_some() {
            PurchaseState::Revoked
        } else {
            PurchaseState::Active
        },
        expires_at: Some(until),
        last_event_at: at,
        last_txn_id: Some(format!("t-{at}")),
        order_id: None,
        grants: ["channel:vip", "channel:main"]
            .iter()
            .map(|scope| Grant {
                scope: (*scope).into(),
                product_id: "vip".into(),
                source_id: source.clone(),
                paid_at: 1_000,
                term: Term::Until(until),
                revoked_at: revoked,
                revoked_by: None,
                revoke_reason: None,
                max_views: None,
                provider: None,
            })
            .collect(),
    }
}

pub async fn purchases_follow_the_newest_event(store: &dyn Store) {
    let id = format!("otid-{}", tollgate::clock::SystemClock.now_ms());
    assert_eq!(store.get_purchase("apple", &id).await.unwrap(), None);
    let first = purchase(&id, "p-user", 10, 2_000, None);
    assert_eq!(
        store.put_purchase(&first).await.unwrap(),
        PurchaseOutcome::Applied
    );
    assert_eq!(
        store.get_purchase("apple", &id).await.unwrap(),
        Some(first.clone())
    );
    // A renewal signed later extends; the grants are rewritten, not duplicated.
    let renewed = purchase(&id, "p-user", 20, 3_000, None);
    assert_eq!(
        store.put_purchase(&renewed).await.unwrap(),
        PurchaseOutcome::Applied
    );
    let revoked = purchase(&id, "p-user", 30, 3_000, Some(2_500));
    assert_eq!(
        store.put_purchase(&revoked).await.unwrap(),
        PurchaseOutcome::Applied
    );
    // A late message (signed before the revocation) and a duplicate change nothing.
    let late = purchase(&id, "p-user", 25, 9_000, None);
    assert!(
        matches!(store.put_purchase(&late).await.unwrap(), PurchaseOutcome::Stale(p) if p.last_event_at == 30)
    );
    assert!(matches!(
        store.put_purchase(&revoked).await.unwrap(),
        PurchaseOutcome::Stale(_)
    ));
    // Another user can never take it over, however new the message.
    let thief = purchase(&id, "other-user", 99, 9_000, None);
    assert!(
        matches!(store.put_purchase(&thief).await.unwrap(), PurchaseOutcome::OwnedByOther(p) if p.user_id == "p-user")
    );
    let items = store.user_items("p-user").await.unwrap();
    let mine: Vec<_> = items
        .grants
        .iter()
        .filter(|g| g.source_id == format!("apple:{id}"))
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine
        .iter()
        .all(|g| g.revoked_at == Some(2_500) && g.term == Term::Until(3_000)));
    assert!(store
        .user_items("other-user")
        .await
        .unwrap()
        .grants
        .iter()
        .all(|g| g.source_id != format!("apple:{id}")));
}

pub async fn purchase_applied_once_concurrently(store: Arc<dyn Store>) {
    let id = format!("otid-race-{}", tollgate::clock::SystemClock.now_ms());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let p = purchase(&id, "race-sub", 50, 5_000, None);
        tasks.push(tokio::spawn(async move { store.put_purchase(&p).await }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            PurchaseOutcome::Applied => applied += 1,
            PurchaseOutcome::Stale(_) => {}
            PurchaseOutcome::OwnedByOther(_) => panic!("same owner"),
        }
    }
    assert_eq!(applied, 1, "exactly one write of one signed message");
}

pub async fn notes_dedupe(store: &dyn Store) {
    let id = format!("note-{}", tollgate::clock::SystemClock.now_ms());
    assert!(!store.note_seen("apple", &id, 100).await.unwrap());
    assert!(store
        .record_note("apple", &id, "DID_RENEW", 100)
        .await
        .unwrap());
    assert!(store.note_seen("apple", &id, 101).await.unwrap());
    assert!(!store
        .record_note("apple", &id, "DID_RENEW", 101)
        .await
        .unwrap());
    assert!(!store.note_seen("google", &id, 101).await.unwrap());
    // Past its 30 days the id may be used again (TTL deletes it later).
    assert!(!store.note_seen("apple", &id, 100 + NOTE_TTL).await.unwrap());
    assert!(store
        .record_note("apple", &id, "DID_RENEW", 100 + NOTE_TTL)
        .await
        .unwrap());
}

fn device(session_id: &str, last_seen: i64) -> DeviceSession {
    DeviceSession {
        session_id: session_id.into(),
        last_seen,
        stream: None,
    }
}

/// The SESSIONS item comes back with the user's grants in the same read, and every write is
/// conditioned on the version read.
pub async fn sessions_round_trip(store: &dyn Store) {
    let user = "sess-user";
    let empty = store.user_items(user).await.unwrap().sessions;
    assert_eq!(empty, Sessions::default());
    let mut s = Sessions::default();
    s.devices.insert("phone".into(), device("s1", 10));
    s.devices.insert("tv #2".into(), device("s2", 20));
    s.previews.insert("concert".into(), 5);
    assert!(store.put_sessions(user, &s, 0).await.unwrap().written());
    assert!(
        !store.put_sessions(user, &s, 0).await.unwrap().written(),
        "the item exists now"
    );
    let read = store.user_items(user).await.unwrap().sessions;
    assert_eq!(read.version, 1);
    assert_eq!(read.devices, s.devices);
    assert_eq!(read.previews, s.previews);
    assert!(read.holds("s2") && !read.holds("s3"));
    let mut next = read.clone();
    next.devices.remove("phone");
    assert!(
        !store.put_sessions(user, &next, 7).await.unwrap().written(),
        "stale version"
    );
    assert!(store.put_sessions(user, &next, 1).await.unwrap().written());
    let read = store.user_items(user).await.unwrap();
    assert_eq!(read.sessions.version, 2);
    assert_eq!(read.sessions.devices.len(), 1);
    assert!(read.grants.is_empty());
    assert_eq!(
        store.user_items("sess-other").await.unwrap().sessions,
        Sessions::default()
    );
}

/// Concurrent writers conditioned on the same version: exactly one wins.
pub async fn sessions_one_writer_wins(store: Arc<dyn Store>) {
    let user = "sess-race";
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Sessions::default();
            s.devices
                .insert(format!("d{i}"), device(&format!("s{i}"), i));
            store.put_sessions(user, &s, 0).await.unwrap().written()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    let read = store.user_items(user).await.unwrap().sessions;
    assert_eq!((read.version, read.devices.len()), (1, 1));
}

/// A sale made at the provider (Huya): the order as it should be stored, already PAID.
fn sold(seed: u64, user: &str, txn: &str, paid_at: i64) -> (Order, Settlement) {
    let mut o = pending(seed, user, paid_at);
    o.provider = "huya".into();
    o.payment = None;
    o.state = OrderState::Paid;
    o.expires_at = paid_at;
    o.paid_at = Some(paid_at);
    o.provider_txn_id = Some(txn.into());
    let st = settlement(&o, OrderState::Paid, txn, paid_at);
    (o, st)
}

pub async fn settle_new_order_once(store: &dyn Store) {
    let (o, st) = sold(70, "sale-user", "HY-70", 2_000);
    assert_eq!(
        store.settle_new_order(&o, &st).await.unwrap(),
        SettleOutcome::Settled
    );
    let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(stored, o, "stored exactly as given");
    assert_eq!(store.user_items("sale-user").await.unwrap().grants.len(), 2);
    // Not in the due index: it was never pending.
    for shard in 0..16 {
        assert!(store
            .due_orders(shard, i64::MAX, 1000)
            .await
            .unwrap()
            .iter()
            .all(|d| d.order_id != o.order_id));
    }
    // The same sale again: the claim answers, nothing is written twice.
    assert_eq!(
        store.settle_new_order(&o, &st).await.unwrap(),
        SettleOutcome::TxnAlreadyRecorded {
            order_id: o.order_id.clone()
        }
    );
    // Another order claiming the same provider transaction is refused, and not written.
    let (other, mut other_st) = sold(71, "sale-user-2", "HY-70", 2_000);
    other_st.user_id = other.user_id.clone();
    assert_eq!(
        store.settle_new_order(&other, &other_st).await.unwrap(),
        SettleOutcome::TxnAlreadyRecorded {
            order_id: o.order_id.clone()
        }
    );
    assert!(store.get_order(&other.order_id).await.unwrap().is_none());
    assert!(store
        .user_items("sale-user-2")
        .await
        .unwrap()
        .grants
        .is_empty());
    // An existing order id with a new transaction: refused as changed, nothing written.
    let (mut clash, _) = sold(72, "sale-user", "HY-72", 2_000);
    clash.order_id = o.order_id.clone();
    let clash_st = settlement(&clash, OrderState::Paid, "HY-72", 2_000);
    assert!(matches!(
        store.settle_new_order(&clash, &clash_st).await.unwrap(),
        SettleOutcome::OrderChanged(_)
    ));
    assert_eq!(store.user_items("sale-user").await.unwrap().grants.len(), 2);
    // It refunds like any paid order.
    assert!(matches!(
        store.refund(&stored, &whole(&stored), 2_100).await.unwrap(),
        TransitionOutcome::Done(_)
    ));
    let items = store.user_items("sale-user").await.unwrap();
    assert!(items.grants.iter().all(|g| g.revoked_at == Some(2_100)));
}

pub async fn settle_new_order_exactly_once_concurrently(store: Arc<dyn Store>) {
    let (o, st) = sold(80, "sale-race-user", "HY-80", 2_000);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let (o, st) = (o.clone(), st.clone());
        tasks.push(tokio::spawn(async move {
            store.settle_new_order(&o, &st).await
        }));
    }
    let mut settled = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            SettleOutcome::Settled => settled += 1,
            SettleOutcome::TxnAlreadyRecorded { order_id } => assert_eq!(order_id, o.order_id),
            SettleOutcome::OrderChanged(_) => {}
            SettleOutcome::UnknownOrder => panic!("unexpected"),
        }
    }
    assert_eq!(settled, 1, "exactly one sale is recorded");
    assert_eq!(
        store
            .user_items("sale-race-user")
            .await
            .unwrap()
            .grants
            .len(),
        2
    );
}

/// An audit record of `action` about `user` at `at` (a fresh id each call).
fn audit_rec(
    action: tollgate::domain::audit::AuditAction,
    user: Option<&str>,
    at: i64,
) -> tollgate::domain::audit::AuditRecord {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let mut r = [0u8; 10];
    r[..8].copy_from_slice(&n.to_be_bytes());
    r[8] = (tollgate::clock::SystemClock.now_ms() & 0xff) as u8;
    tollgate::domain::audit::AuditRecord {
        id: OrderId::from_parts(u64::try_from(at).unwrap_or(0) * 1000, r)
            .as_str()
            .to_owned(),
        at,
        actor: "op".into(),
        action,
        user_id: user.map(str::to_owned),
        order_id: None,
        stream_id: None,
        before: serde_json::Value::Null,
        after: serde_json::json!({"n": n}),
        reason: Some("why".into()),
        request_id: format!("req-{n}"),
    }
}

/// The user's audit records, newest first (one page of up to 100).
async fn audit_of(store: &dyn Store, user: &str) -> Vec<tollgate::domain::audit::AuditRecord> {
    store
        .user_audit(user, 100, None, None)
        .await
        .unwrap()
        .records
}

pub async fn bans_live_in_the_users_partition(store: &dyn Store) {
    use tollgate::domain::audit::AuditAction;
    use tollgate::domain::ban::Ban;
    let user = "ban-user";
    let ban = |scope: &str, until: Option<i64>, reason: &str| Ban {
        scope: scope.into(),
        until,
        reason: reason.into(),
        created_at: 1_000,
        created_by: Some(format!("op-{reason}")),
    };
    let rec = || audit_rec(AuditAction::Ban, Some(user), 1_000);
    assert!(store.user_items(user).await.unwrap().bans.is_empty());
    let spam = ban("concert", Some(5_000), "spam");
    assert_eq!(
        store.put_ban(user, &spam, None, &rec()).await.unwrap(),
        Guarded::Written
    );
    let fraud = ban("*", None, "fraud");
    assert_eq!(
        store.put_ban(user, &fraud, None, &rec()).await.unwrap(),
        Guarded::Written
    );
    // Replacing needs the ban as read: a stale read writes nothing and names the ban now.
    let again = ban("concert", None, "spam again");
    assert_eq!(
        store.put_ban(user, &again, None, &rec()).await.unwrap(),
        Guarded::Changed(Some(spam.clone()))
    );
    assert_eq!(
        store
            .put_ban(user, &again, Some(&spam), &rec())
            .await
            .unwrap(),
        Guarded::Written
    );
    let mut bans = store.user_items(user).await.unwrap().bans;
    bans.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(bans, vec![fraud.clone(), again.clone()]);
    assert!(store.user_items("ban-other").await.unwrap().bans.is_empty());
    let lift = || audit_rec(AuditAction::LiftBan, Some(user), 1_001);
    assert_eq!(
        store.lift_ban(user, &fraud, &lift()).await.unwrap(),
        Guarded::Written
    );
    assert_eq!(
        store.lift_ban(user, &fraud, &lift()).await.unwrap(),
        Guarded::Changed(None),
        "already lifted"
    );
    assert_eq!(
        store.lift_ban(user, &spam, &lift()).await.unwrap(),
        Guarded::Changed(Some(again.clone())),
        "not the ban stored now"
    );
    assert_eq!(
        store.lift_ban("ban-other", &again, &lift()).await.unwrap(),
        Guarded::Changed(None)
    );
    let bans = store.user_items(user).await.unwrap().bans;
    assert_eq!(bans, vec![again]);
    // One audit record per change written, none for the refused ones; never in USER#.
    let trail = audit_of(store, user).await;
    let actions: Vec<_> = trail.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::LiftBan,
            AuditAction::Ban,
            AuditAction::Ban,
            AuditAction::Ban
        ]
    );
}

pub async fn publish_keys_rotate(store: &dyn Store) {
    use tollgate::domain::audit::AuditAction;
    use tollgate::domain::publish_key::PublishKey;
    let key = |hash: &str, version: u64, at: i64, by: &str| PublishKey {
        hash: hash.into(),
        version,
        rotated_at: at,
        rotated_by: Some(by.into()),
    };
    let rec = || {
        let mut r = audit_rec(AuditAction::RotatePublishKey, None, 100);
        r.stream_id = Some("pk-stream".into());
        r
    };
    assert_eq!(store.publish_key("pk-stream").await.unwrap(), None);
    let first = key("h1", 1, 100, "op-1");
    assert_eq!(
        store
            .rotate_publish_key("pk-stream", &first, None, &rec())
            .await
            .unwrap(),
        Guarded::Written
    );
    assert_eq!(
        store.publish_key("pk-stream").await.unwrap(),
        Some(first.clone())
    );
    // A rotation that did not see the first one is refused: no two share a version.
    assert_eq!(
        store
            .rotate_publish_key("pk-stream", &key("hx", 1, 150, "op-x"), None, &rec())
            .await
            .unwrap(),
        Guarded::Changed(Some(first.clone()))
    );
    let second = key("h2", 2, 200, "op-2");
    assert_eq!(
        store
            .rotate_publish_key("pk-stream", &second, Some(&first), &rec())
            .await
            .unwrap(),
        Guarded::Written
    );
    assert_eq!(store.publish_key("pk-stream").await.unwrap(), Some(second));
    assert_eq!(store.publish_key("pk-other").await.unwrap(), None);
}

fn promo_grant(scope: &str, source: &str, paid_at: i64, days: u32) -> Grant {
    Grant {
        scope: scope.into(),
        product_id: "promo".into(),
        source_id: source.into(),
        paid_at,
        term: Term::Days(days),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        max_views: None,
        provider: None,
    }
}

fn admin_key(user: &str, key: &str, hash: &str) -> AdminKey {
    AdminKey {
        user_id: user.into(),
        key: key.into(),
        request_hash: hash.into(),
        result: serde_json::json!({"hash": hash}),
        at: 500,
    }
}

/// Thirty identical promotions at once: one applies (its grants, its key, one audit
/// record), the rest see the key used; nothing is written twice.
pub async fn promotions_granted_once_concurrently(store: Arc<dyn Store>) {
    use tollgate::domain::audit::AuditAction;
    let user = "promo-user";
    let grants = vec![
        promo_grant("channel:main", "promo#k1", 500, 7),
        promo_grant("channel:vip", "promo#k1", 500, 7),
    ];
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (store, grants) = (store.clone(), grants.clone());
            tokio::spawn(async move {
                store
                    .grant(
                        user,
                        &grants,
                        &admin_key(user, "k1", "h1"),
                        &audit_rec(AuditAction::Grant, Some(user), 500),
                    )
                    .await
            })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            KeyedOutcome::Written => written += 1,
            KeyedOutcome::KeyUsed(k) => assert_eq!(k, admin_key(user, "k1", "h1")),
        }
    }
    assert_eq!(written, 1);
    let mut held = store.user_items(user).await.unwrap().grants;
    held.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(held, grants);
    assert_eq!(audit_of(&*store, user).await.len(), 1);
    assert_eq!(
        store.admin_key(user, "k1").await.unwrap(),
        Some(admin_key(user, "k1", "h1"))
    );
    assert_eq!(store.admin_key(user, "k2").await.unwrap(), None);
    assert_eq!(store.admin_key("promo-other", "k1").await.unwrap(), None);
}

/// Revoking by hand writes the grants as read, now revoked, only while they are unrevoked.
pub async fn revocations_follow_the_grants_as_read(store: &dyn Store) {
    use tollgate::domain::audit::AuditAction;
    let user = "revoke-user";
    let g = promo_grant("channel:main", "promo#r1", 600, 30);
    let other = promo_grant("channel:main", "promo#r2", 601, 3);
    for (grant, key) in [(&g, "r1"), (&other, "r2")] {
        store
            .grant(
                user,
                std::slice::from_ref(grant),
                &admin_key(user, key, key),
                &audit_rec(AuditAction::Grant, Some(user), 600),
            )
            .await
            .unwrap();
    }
    let revoked = Grant {
        revoked_at: Some(700),
        revoked_by: Some("op".into()),
        revoke_reason: Some("abuse".into()),
        ..g.clone()
    };
    let rec = || audit_rec(AuditAction::RevokeGrant, Some(user), 700);
    assert_eq!(
        store
            .revoke_grants(user, std::slice::from_ref(&revoked), &rec())
            .await
            .unwrap(),
        Guarded::Written
    );
    // Twice, or a grant that is not there: nothing written.
    assert_eq!(
        store
            .revoke_grants(user, std::slice::from_ref(&revoked), &rec())
            .await
            .unwrap(),
        Guarded::Changed(())
    );
    let ghost = Grant {
        source_id: "promo#none".into(),
        ..revoked.clone()
    };
    assert_eq!(
        store.revoke_grants(user, &[ghost], &rec()).await.unwrap(),
        Guarded::Changed(())
    );
    let mut held = store.user_items(user).await.unwrap().grants;
    held.sort_by(|a, b| a.source_id.cmp(&b.source_id));
    assert_eq!(held, vec![revoked, other]);
    let trail = audit_of(store, user).await;
    assert_eq!(trail.len(), 3, "two grants and one revocation");
    assert_eq!(trail[0].action, AuditAction::RevokeGrant);
}

/// Forty concurrent debits of 10 from 100, each re-reading and retrying on a moved
/// balance as the service does: exactly ten apply, the balance never goes below zero, and
/// each applied one has its audit record.
pub async fn wallet_changes_apply_one_at_a_time(store: Arc<dyn Store>) {
    use tollgate::domain::audit::AuditAction;
    let user = "wallet-user";
    assert_eq!(
        store
            .adjust_wallet(
                user,
                0,
                100,
                &admin_key(user, "seed", "seed"),
                &audit_rec(AuditAction::Wallet, Some(user), 800)
            )
            .await
            .unwrap(),
        WalletOutcome::Written
    );
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut balance = store.user_items(user).await.unwrap().credits;
                loop {
                    if balance < 10 {
                        return None;
                    }
                    let key = admin_key(user, &format!("debit-{i}"), "d");
                    let rec = audit_rec(AuditAction::Wallet, Some(user), 801);
                    match store
                        .adjust_wallet(user, balance, balance - 10, &key, &rec)
                        .await
                        .unwrap()
                    {
                        WalletOutcome::Written => return Some(i),
                        WalletOutcome::BalanceMoved(now) => balance = now,
                        WalletOutcome::KeyUsed(k) => panic!("key {k:?} is this task's own"),
                    }
                }
            })
        })
        .collect();
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    assert_eq!(applied.len(), 10, "{applied:?}");
    assert_eq!(store.user_items(user).await.unwrap().credits, 0);
    assert_eq!(audit_of(&*store, user).await.len(), 11);
    // A used key wins over a moved balance: the replay learns what the key did (the key of
    // a task that applied: which ones did is up to the scheduler).
    let used = format!("debit-{}", applied[0]);
    assert_eq!(
        store
            .adjust_wallet(
                user,
                100,
                90,
                &admin_key(user, &used, "d"),
                &audit_rec(AuditAction::Wallet, Some(user), 802)
            )
            .await
            .unwrap(),
        WalletOutcome::KeyUsed(admin_key(user, &used, "d"))
    );
}

/// A later instant than any other case writes audit records at.
const AUDIT_T: i64 = 3_000_000_000;

/// A user's trail newest first and everyone's since a time oldest first, page by page.
pub async fn audit_pages(store: &dyn Store) {
    use tollgate::domain::audit::AuditAction;
    let user = "audit-user";
    let mut written = Vec::new();
    for i in 0..7 {
        let rec = audit_rec(AuditAction::Wallet, Some(user), AUDIT_T + i);
        // Each record goes in with a change, as every store method writes them.
        let key = admin_key(user, &format!("a{i}"), "h");
        assert_eq!(
            store
                .adjust_wallet(user, i, i + 1, &key, &rec)
                .await
                .unwrap(),
            WalletOutcome::Written
        );
        written.push(rec);
    }
    let other = audit_rec(AuditAction::Wallet, Some("audit-other"), AUDIT_T + 3);
    store
        .adjust_wallet(
            "audit-other",
            0,
            1,
            &admin_key("audit-other", "o", "h"),
            &other,
        )
        .await
        .unwrap();
    // The user's, newest first, three at a time.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .user_audit(user, 3, before.as_deref(), None)
            .await
            .unwrap();
        assert!(page.records.len() <= 3);
        seen.extend(page.records.iter().cloned());
        if !page.more {
            break;
        }
        before = page.records.last().map(|r| r.sort_key());
    }
    let mut newest_first = written.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // Bounded by `since`: the three newest only, and no further page.
    let page = store
        .user_audit(user, 10, None, Some(AUDIT_T + 4))
        .await
        .unwrap();
    assert_eq!(page.records, newest_first[..3].to_vec());
    assert!(!page.more);
    let page = store
        .user_audit(user, 2, None, Some(AUDIT_T + 4))
        .await
        .unwrap();
    assert!(page.more);
    let page = store
        .user_audit(
            user,
            2,
            page.records.last().map(|r| r.sort_key()).as_deref(),
            Some(AUDIT_T + 4),
        )
        .await
        .unwrap();
    assert_eq!(page.records, newest_first[2..3].to_vec());
    assert!(!page.more);
    // Everyone's since AUDIT_T + 2, oldest first, two at a time (the index is eventually
    // consistent in DynamoDB; moto's is not, so this reads it at once).
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .audit_since(AUDIT_T + 2, 2, after.as_deref())
            .await
            .unwrap();
        all.extend(page.records.iter().cloned());
        if !page.more {
            break;
        }
        after = page.records.last().map(|r| r.sort_key());
    }
    let mut expected: Vec<_> = written[2..].to_vec();
    expected.push(other);
    expected.sort_by_key(|r| r.sort_key());
    assert_eq!(all, expected);
    assert!(store
        .user_audit("audit-nobody", 5, None, None)
        .await
        .unwrap()
        .records
        .is_empty());
    // None of it is in the user's partition that entitlement checks read.
    let items = store.user_items(user).await.unwrap();
    assert!(items.grants.is_empty() && items.bans.is_empty());
}

/// Refunds are counted on the order under `RefundCount`'s conditions.
fn counting(id: &str, add: i64, before_min: i64, before_max: i64) -> RefundCount {
    RefundCount {
        refund_id: id.into(),
        add,
        before_min,
        before_max,
    }
}

/// A day no other case writes figures on.
const REFUND_DAY: i64 = 40 * 86_400;

async fn refunds_on_refund_day(store: &dyn Store) -> i64 {
    let day = tollgate::domain::stats::StatsZone::default().day_of(REFUND_DAY);
    store.day_records(&[day]).await.unwrap()[0].count("refunds")
}

/// Partial refunds add up on a PAID order, each id once and only within the bounds it was
/// decided on; the refund that completes the total makes it REFUNDED and revokes.
pub async fn refunds_add_up(store: &dyn Store) {
    let before_day = refunds_on_refund_day(store).await;
    let o = pending(300, "rf-user", 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    // Not paid yet: nothing to count.
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r1", 300, 0, 599), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.state == OrderState::Pending && c.refunded_amount == 0
    ));
    store
        .settle(&settlement(&o, OrderState::Pending, "rf-txn", 1_100))
        .await
        .unwrap();
    match store
        .count_refund(
            &stored_order(store, &o).await,
            &counting("r1", 300, 0, 599),
            REFUND_DAY,
        )
        .await
        .unwrap()
    {
        TransitionOutcome::Done(c) => {
            assert_eq!((c.state, c.refunded_amount), (OrderState::Paid, 300));
            assert_eq!(c.refund_ids, ["r1".to_owned()].into());
        }
        other => panic!("{other:?}"),
    }
    // The same refund again: refused, with the order as stored.
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r1", 300, 0, 599), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.refunded_amount == 300
    ));
    // Bounds the stored total is outside of: above, and below.
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r2", 600, 0, 299), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.refunded_amount == 300
    ));
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r2", 100, 400, 500), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.refunded_amount == 300
    ));
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r2", 500, 300, 300), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Done(c) if c.refunded_amount == 800
    ));
    let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.refunded_amount),
        (OrderState::Paid, 800)
    );
    assert_eq!(stored.refund_ids, ["r1".to_owned(), "r2".to_owned()].into());
    assert_eq!(store.user_items("rf-user").await.unwrap().grants.len(), 2);
    // The completing refund, decided on a total that moved on: nothing happens.
    assert!(matches!(
        store.refund(&stored, &counting("r3", 200, 700, 700), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.state == OrderState::Paid && c.refunded_amount == 800
    ));
    assert!(store
        .user_items("rf-user")
        .await
        .unwrap()
        .grants
        .iter()
        .all(|g| g.revoked_at.is_none()));
    match store
        .refund(&stored, &counting("r3", 100, 800, 800), REFUND_DAY)
        .await
        .unwrap()
    {
        TransitionOutcome::Done(c) => {
            assert_eq!((c.state, c.refunded_amount), (OrderState::Refunded, 900))
        }
        other => panic!("{other:?}"),
    }
    let refunded = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(
        (
            refunded.state,
            refunded.refunded_amount,
            refunded.refunded_at
        ),
        (OrderState::Refunded, 900, Some(REFUND_DAY))
    );
    assert_eq!(refunded.refund_ids.len(), 3);
    let grants = store.user_items("rf-user").await.unwrap().grants;
    assert!(grants.iter().all(|g| g.revoked_at == Some(REFUND_DAY)));
    assert_eq!(refunds_on_refund_day(store).await, before_day + 1);
    // Nothing more is counted on a REFUNDED order.
    assert!(matches!(
        store.count_refund(&stored_order(store, &o).await, &counting("r4", 0, 0, 900), REFUND_DAY).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.state == OrderState::Refunded
    ));
    assert_eq!(
        store
            .count_refund(
                &pending(998, "rf-user", 1_000),
                &counting("r1", 1, 0, 0),
                REFUND_DAY
            )
            .await
            .unwrap(),
        TransitionOutcome::UnknownOrder
    );
}

/// 29 distinct partial refunds of one order, each sent twice, all at once: each counts
/// exactly once. Then 8 concurrent copies of the refund that completes the total: exactly one
/// revokes, and the day counts one refund.
pub async fn refunds_counted_once_concurrently(store: Arc<dyn Store>) {
    let before_day = refunds_on_refund_day(&*store).await;
    let o = pending(301, "rfc-user", 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    store
        .settle(&settlement(&o, OrderState::Pending, "rfc-txn", 1_100))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let paid = stored_order(&*store, &o).await;
    for i in 0..58 {
        let store = store.clone();
        let read = paid.clone();
        let c = counting(&format!("r{}", i % 29), 30, 0, 900 - 30 - 1);
        tasks.push(tokio::spawn(async move {
            store.count_refund(&read, &c, REFUND_DAY).await
        }));
    }
    let mut counted = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            TransitionOutcome::Done(_) => counted += 1,
            TransitionOutcome::Conflict(c) => assert_eq!(c.state, OrderState::Paid),
            TransitionOutcome::UnknownOrder => panic!("order vanished"),
        }
    }
    assert_eq!(counted, 29, "each refund counted once");
    let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.state,
            stored.refunded_amount,
            stored.refund_ids.len()
        ),
        (OrderState::Paid, 870, 29)
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, stored) = (store.clone(), stored.clone());
        let c = counting("r29", 30, 870, 870);
        tasks.push(tokio::spawn(async move {
            store.refund(&stored, &c, REFUND_DAY).await
        }));
    }
    let mut revoked = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            TransitionOutcome::Done(_) => revoked += 1,
            TransitionOutcome::Conflict(c) => assert_eq!(c.state, OrderState::Refunded),
            TransitionOutcome::UnknownOrder => panic!("order vanished"),
        }
    }
    assert_eq!(revoked, 1, "revoked once");
    let refunded = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(
        (
            refunded.state,
            refunded.refunded_amount,
            refunded.refund_ids.len()
        ),
        (OrderState::Refunded, 900, 30)
    );
    assert_eq!(refunds_on_refund_day(&*store).await, before_day + 1);
}

/// Seconds since the epoch at a quota window's start (windows of 900 s are aligned to it).
const QUOTA_T: i64 = 1_800_000_000;

pub async fn order_quota_caps_each_users_window(store: &dyn Store) {
    let quota = OrderQuota::limited(3, 900);
    let now = QUOTA_T + 100;
    let key = |o: &Order, k: &str, at: i64| IdempotencyRecord {
        user_id: o.user_id.clone(),
        key: k.into(),
        request_hash: "h".into(),
        order_id: o.order_id.clone(),
        expires_at: at + IDEMPOTENCY_TTL,
    };
    // A key used a day earlier, expired by now.
    let old = pending(1_500, "quota-user", now - IDEMPOTENCY_TTL);
    let old_key = key(&old, "old-key", now - IDEMPOTENCY_TTL);
    store
        .create_order(&old, Some(&old_key), &UNCAPPED, now - IDEMPOTENCY_TTL)
        .await
        .unwrap();
    let mut made = Vec::new();
    for i in 0..3 {
        let o = pending(1_501 + i, "quota-user", now + i as i64);
        let k = key(&o, &format!("q-{i}"), now);
        assert_eq!(
            store
                .create_order(&o, Some(&k), &quota, now + i as i64)
                .await
                .unwrap(),
            CreateOutcome::Created
        );
        made.push(o);
    }
    // The fourth in the window is refused until the window ends, and writes nothing.
    let fourth = pending(1_510, "quota-user", now + 10);
    let fourth_key = key(&fourth, "q-3", now + 10);
    assert_eq!(
        store
            .create_order(&fourth, Some(&fourth_key), &quota, now + 10)
            .await
            .unwrap(),
        CreateOutcome::QuotaReached {
            until: QUOTA_T + 900
        }
    );
    assert_eq!(store.get_order(&fourth.order_id).await.unwrap(), None);
    assert_eq!(
        store
            .get_idempotency("quota-user", "q-3", now + 10)
            .await
            .unwrap(),
        None,
        "the refused create's key was not written"
    );
    // A replay of a live key still answers the order it made, window full or not.
    let replay = pending(1_511, "quota-user", now + 11);
    match store
        .create_order(
            &replay,
            Some(&key(&replay, "q-1", now + 11)),
            &quota,
            now + 11,
        )
        .await
        .unwrap()
    {
        CreateOutcome::KeyExists(r) => assert_eq!(r.order_id, made[1].order_id),
        other => panic!("expected KeyExists, got {other:?}"),
    }
    // An expired key is a new create: refused too, and the old record is left as it was.
    let reuse = pending(1_512, "quota-user", now + 12);
    assert!(matches!(
        store
            .create_order(
                &reuse,
                Some(&key(&reuse, "old-key", now + 12)),
                &quota,
                now + 12
            )
            .await
            .unwrap(),
        CreateOutcome::QuotaReached { .. }
    ));
    assert_eq!(store.get_order(&reuse.order_id).await.unwrap(), None);
    // Counted-only creates (orders for purchases already paid) are never refused.
    let bound = pending(1_513, "quota-user", now + 13);
    assert_eq!(
        store
            .create_order(&bound, None, &OrderQuota::counted_only(900), now + 13)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // Another user has a window of their own.
    let other = pending(1_514, "quota-user-2", now + 14);
    assert_eq!(
        store
            .create_order(&other, None, &quota, now + 14)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // The next window takes orders again.
    let next = pending(1_515, "quota-user", QUOTA_T + 900);
    assert_eq!(
        store
            .create_order(&next, None, &quota, QUOTA_T + 900)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

pub async fn order_quota_holds_concurrently(store: Arc<dyn Store>) {
    let quota = OrderQuota::limited(5, 900);
    let now = QUOTA_T + 200;
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let o = pending(1_600 + i, "quota-race", now);
            let out = store.create_order(&o, None, &quota, now).await.unwrap();
            (o, out)
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (o, out) = t.await.unwrap();
        match out {
            CreateOutcome::Created => {
                created += 1;
                assert!(store.get_order(&o.order_id).await.unwrap().is_some());
            }
            CreateOutcome::QuotaReached { until } => {
                assert_eq!(until, QUOTA_T + 900);
                assert_eq!(store.get_order(&o.order_id).await.unwrap(), None);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        created, 5,
        "exactly the limit of simultaneous creates got through"
    );
}

pub async fn unpaid_closed_orders_expire_paid_ones_never(store: &dyn Store) {
    let keep = 30 * 86_400;
    // Expired and cancelled unpaid orders carry their deletion time.
    let expired = pending(1_700, "ret-user", 1_000);
    let cancelled = pending(1_701, "ret-user", 1_000);
    let paid = pending(1_702, "ret-user", 1_000);
    let kept = pending(1_703, "ret-user", 1_000);
    for o in [&expired, &cancelled, &paid, &kept] {
        store.create_order(o, None, &UNCAPPED, 1_000).await.unwrap();
        assert_eq!(o.retain_until, None);
    }
    for (o, to) in [
        (&expired, OrderState::Expired),
        (&cancelled, OrderState::Cancelled),
    ] {
        match store
            .close_order(o, to, 1_900, Some(1_900 + keep))
            .await
            .unwrap()
        {
            TransitionOutcome::Done(c) => assert_eq!(c.retain_until, Some(1_900 + keep)),
            other => panic!("{other:?}"),
        }
        let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.retain_until),
            (to, Some(1_900 + keep))
        );
    }
    // Without a retention the order is kept for ever.
    store
        .close_order(&kept, OrderState::Expired, 1_900, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_order(&kept.order_id)
            .await
            .unwrap()
            .unwrap()
            .retain_until,
        None
    );
    // A paid order has none.
    store
        .settle(&settlement(&paid, OrderState::Pending, "ret-paid", 1_010))
        .await
        .unwrap();
    let p = store.get_order(&paid.order_id).await.unwrap().unwrap();
    assert_eq!((p.state, p.retain_until), (OrderState::Paid, None));
    // A late payment of an expired order makes it a record again: its deletion time goes.
    assert_eq!(
        store
            .settle(&settlement(
                &expired,
                OrderState::Expired,
                "ret-late",
                2_000
            ))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    let late = store.get_order(&expired.order_id).await.unwrap().unwrap();
    assert_eq!(
        (late.state, late.late, late.retain_until),
        (OrderState::Paid, true, None)
    );
    // And a refund of it does not bring one back.
    store.refund(&late, &whole(&late), 3_000).await.unwrap();
    assert_eq!(
        store
            .get_order(&expired.order_id)
            .await
            .unwrap()
            .unwrap()
            .retain_until,
        None
    );
}

/// A reversed refund (REFUNDED → PAID) un-revokes exactly the order's own grants, gives its
/// coins back, clears its refunds and records the reversal, once under 16 concurrent copies;
/// one for another payment or another refund changes nothing; the order refunds again after.
pub async fn refund_reversed_once(store: Arc<dyn Store>) {
    let mut o = pending(310, "rr-user", 1_000);
    o.credits = 50;
    let other = pending(311, "rr-user", 1_000);
    for x in [&o, &other] {
        store.create_order(x, None, &UNCAPPED, 1_000).await.unwrap();
        store
            .settle(&settlement(
                x,
                OrderState::Pending,
                &format!("rr-{}", x.order_id),
                1_100,
            ))
            .await
            .unwrap();
        let paid = store.get_order(&x.order_id).await.unwrap().unwrap();
        store.refund(&paid, &whole(&paid), 2_000).await.unwrap();
    }
    assert_eq!(store.user_items("rr-user").await.unwrap().credits, 0);
    let refunded = store.get_order(&o.order_id).await.unwrap().unwrap();
    let reversal = RefundReversal {
        provider_txn_id: format!("rr-{}", o.order_id),
        refunded_at: 2_000,
        reversed_at: 3_000,
        reason: "refund reversed by the store".into(),
    };
    for wrong in [
        RefundReversal {
            provider_txn_id: "rr-another-payment".into(),
            ..reversal.clone()
        },
        RefundReversal {
            refunded_at: 2_001,
            ..reversal.clone()
        },
    ] {
        assert!(matches!(
            store.reverse_refund(&refunded, &wrong).await.unwrap(),
            TransitionOutcome::Conflict(c) if c.state == OrderState::Refunded
        ));
    }
    assert!(store
        .user_items("rr-user")
        .await
        .unwrap()
        .grants
        .iter()
        .all(|g| g.revoked_at == Some(2_000)));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, refunded, reversal) = (store.clone(), refunded.clone(), reversal.clone());
        tasks.push(tokio::spawn(async move {
            store.reverse_refund(&refunded, &reversal).await
        }));
    }
    let mut done = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            TransitionOutcome::Done(d) => {
                done += 1;
                assert_eq!((d.state, d.refunded_amount), (OrderState::Paid, 0));
            }
            TransitionOutcome::Conflict(c) => assert_eq!(c.state, OrderState::Paid),
            TransitionOutcome::UnknownOrder => panic!("order vanished"),
        }
    }
    assert_eq!(done, 1, "reversed once");
    let back = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(
        (back.state, back.refunded_amount, back.refund_ids.len()),
        (OrderState::Paid, 0, 0)
    );
    assert_eq!(back.refund_reversed_at, Some(3_000));
    assert_eq!(
        back.refund_reversal_reason.as_deref(),
        Some("refund reversed by the store")
    );
    assert_eq!(
        back.refunded_at,
        Some(2_000),
        "when it was refunded stays visible"
    );
    let items = store.user_items("rr-user").await.unwrap();
    assert_eq!(items.credits, 50, "the coins are back, once");
    for g in &items.grants {
        let expect = (g.source_id != o.order_id.to_string()).then_some(2_000);
        assert_eq!(g.revoked_at, expect, "only the order's own grants: {g:?}");
    }
    // Refunded again later: it counts and revokes as the first time.
    assert!(matches!(
        store.refund(&back, &whole(&back), 4_000).await.unwrap(),
        TransitionOutcome::Done(d) if d.state == OrderState::Refunded
    ));
    assert_eq!(store.user_items("rr-user").await.unwrap().credits, 0);
    // A reversal of the first refund no longer applies to the second.
    let again = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert!(matches!(
        store.reverse_refund(&again, &reversal).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.state == OrderState::Refunded
    ));
    let mut unknown = refunded.clone();
    unknown.order_id = new_id(997);
    assert_eq!(
        store.reverse_refund(&unknown, &reversal).await.unwrap(),
        TransitionOutcome::UnknownOrder
    );
}

/// Of 30 concurrent claims of one marker exactly one wins; it holds until it expires, or
/// until its own claim (not an older one) releases it.
pub async fn markers_claimed_once(store: Arc<dyn Store>) {
    let key = format!("conformance:{}", new_id(320));
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            store.claim_marker(&key, 1_000, 1_030).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "one claim wins");
    assert!(!store.claim_marker(&key, 1_029, 1_059).await.unwrap());
    assert!(
        store.claim_marker(&key, 1_030, 1_060).await.unwrap(),
        "expired"
    );
    store.release_marker(&key, 1_030).await.unwrap();
    assert!(
        !store.claim_marker(&key, 1_031, 1_061).await.unwrap(),
        "an older claim's release leaves the newer one"
    );
    store.release_marker(&key, 1_060).await.unwrap();
    assert!(
        store.claim_marker(&key, 1_031, 1_061).await.unwrap(),
        "released"
    );
    let other = format!("conformance:{}", new_id(321));
    assert!(store.claim_marker(&other, 1_031, 1_061).await.unwrap());
}

/// A paid 9.00 order of `user` (seed `seed`), as stored.
async fn paid_order(store: &dyn Store, seed: u64, user: &str, txn: &str) -> Order {
    let o = pending(seed, user, 1_000);
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    store
        .settle(&settlement(&o, OrderState::Pending, txn, 1_100))
        .await
        .unwrap();
    store.get_order(&o.order_id).await.unwrap().unwrap()
}

fn refund_request(o: &Order, no: &str, amount: i64, due: i64) -> RefundRequest {
    RefundRequest {
        order_id: o.order_id.clone(),
        out_refund_no: no.into(),
        amount,
        reason: "conformance".into(),
        requested_by: "ops".into(),
        requested_at: 1_200,
        request_hash: "h".into(),
        state: RefundRequestState::Requested,
        provider_refund_id: None,
        failure: None,
        updated_at: 1_200,
        next_check_at: Some(due),
        attempts: 0,
    }
}

/// Refund requests: recorded once per id with the hold of their amount on the order, never
/// beyond what remains, found through the refund index while open, changed only while open,
/// and finished once, which releases the hold and leaves the index.
pub async fn refund_requests_hold_and_finish(store: &dyn Store) {
    let o = paid_order(store, 400, "rq-user", "rq-txn").await;
    let req = refund_request(&o, "Rrq1", 600, 1_260);
    let hold = RefundHold::on(&o, 600).unwrap();
    match store
        .request_refund(
            &o,
            &req,
            &hold,
            &audit_rec(
                tollgate::domain::audit::AuditAction::Refund,
                Some("rq-user"),
                1_260,
            ),
        )
        .await
        .unwrap()
    {
        RefundRequestOutcome::Recorded(held) => assert_eq!(held.refund_requested, 600),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .get_order(&o.order_id)
            .await
            .unwrap()
            .unwrap()
            .refund_requested,
        600
    );
    assert_eq!(
        store.refund_request(&o.order_id, "Rrq1").await.unwrap(),
        Some(req.clone())
    );
    assert_eq!(
        store.refund_request(&o.order_id, "Rnone").await.unwrap(),
        None
    );
    // The same id again: the request as stored, nothing written.
    assert_eq!(
        store
            .request_refund(
                &o,
                &req,
                &hold,
                &audit_rec(
                    tollgate::domain::audit::AuditAction::Refund,
                    Some("rq-user"),
                    1_260
                )
            )
            .await
            .unwrap(),
        RefundRequestOutcome::Exists(Box::new(req.clone()))
    );
    // A hold decided on the order before the first one: refused, with the order as stored.
    let late = refund_request(&o, "Rrq2", 400, 1_260);
    match store
        .request_refund(
            &o,
            &late,
            &RefundHold::on(&o, 400).unwrap(),
            &audit_rec(
                tollgate::domain::audit::AuditAction::Refund,
                Some("rq-user"),
                1_260,
            ),
        )
        .await
        .unwrap()
    {
        RefundRequestOutcome::OrderChanged(stored) => assert_eq!(stored.refund_requested, 600),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.refund_request(&o.order_id, "Rrq2").await.unwrap(),
        None
    );
    // The refund index: due at or before `now` only.
    let mine = |due: Vec<DueRefund>| {
        due.into_iter()
            .filter(|d| d.order_id == o.order_id)
            .collect::<Vec<_>>()
    };
    assert!(mine(store.due_refund_requests(1_259, 100).await.unwrap()).is_empty());
    assert_eq!(
        mine(store.due_refund_requests(1_260, 100).await.unwrap()),
        vec![DueRefund {
            order_id: o.order_id.clone(),
            out_refund_no: "Rrq1".into(),
            due_at: 1_260
        }]
    );
    // Pending moves its check later; a retry counts its attempts.
    let pending_change = RefundRequestChange::Pending {
        provider_refund_id: Some("wx-1".into()),
        next_check_at: 1_400,
        at: 1_300,
    };
    let p = store
        .change_refund_request(&req, &pending_change)
        .await
        .unwrap()
        .expect("open");
    assert_eq!(
        (p.state, p.provider_refund_id.as_deref(), p.next_check_at),
        (RefundRequestState::Pending, Some("wx-1"), Some(1_400))
    );
    assert!(mine(store.due_refund_requests(1_399, 100).await.unwrap()).is_empty());
    assert_eq!(
        mine(store.due_refund_requests(1_400, 100).await.unwrap()).len(),
        1
    );
    let retry = RefundRequestChange::Retry {
        attempts: 1,
        failure: "down".into(),
        next_check_at: 1_500,
    };
    let r = store
        .change_refund_request(&p, &retry)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.attempts, r.failure.as_deref()), (1, Some("down")));
    assert_eq!(
        store.refund_request(&o.order_id, "Rrq1").await.unwrap(),
        Some(r.clone())
    );
    // Finished: out of the index, the hold released; a second finish changes nothing.
    let done = RefundRequestChange::Finished {
        state: RefundRequestState::Failed,
        provider_refund_id: None,
        failure: Some("NOT_ENOUGH".into()),
        at: 1_600,
    };
    let f = store
        .change_refund_request(&r, &done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (f.state, f.next_check_at),
        (RefundRequestState::Failed, None)
    );
    assert_eq!(f.failure.as_deref(), Some("NOT_ENOUGH"));
    assert!(mine(store.due_refund_requests(i64::MAX / 2, 100).await.unwrap()).is_empty());
    assert_eq!(
        store
            .get_order(&o.order_id)
            .await
            .unwrap()
            .unwrap()
            .refund_requested,
        0
    );
    assert_eq!(store.change_refund_request(&r, &done).await.unwrap(), None);
    assert_eq!(store.change_refund_request(&r, &retry).await.unwrap(), None);
    assert_eq!(
        store
            .get_order(&o.order_id)
            .await
            .unwrap()
            .unwrap()
            .refund_requested,
        0,
        "released once"
    );
    assert_eq!(
        store.refund_request(&o.order_id, "Rrq1").await.unwrap(),
        Some(f)
    );
    // An unpaid order holds nothing.
    let unpaid = pending(401, "rq-user", 1_000);
    store
        .create_order(&unpaid, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    let mut as_paid = unpaid.clone();
    as_paid.state = OrderState::Paid;
    assert!(matches!(
        store
            .request_refund(
                &unpaid,
                &refund_request(&unpaid, "Rrq3", 100, 1_260),
                &RefundHold::on(&as_paid, 100).unwrap(),
                &audit_rec(
                    tollgate::domain::audit::AuditAction::Refund,
                    Some("rq-user"),
                    1_260
                ),
            )
            .await
            .unwrap(),
        RefundRequestOutcome::OrderChanged(_)
    ));
    // Only the request that was recorded left an audit record.
    let records = audit_of(store, "rq-user").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].action,
        tollgate::domain::audit::AuditAction::Refund
    );
}

/// Twenty holds of 3.00 decided at once on a 9.00 order: each is retried on the order as
/// stored until it holds or no longer fits; exactly three hold.
pub async fn refund_holds_never_exceed_what_remains_concurrently(store: Arc<dyn Store>) {
    let o = paid_order(&*store, 410, "rq-race", "rq-race-txn").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let mut read = o.clone();
            tokio::spawn(async move {
                let req = refund_request(&read, &format!("Rrace{i}"), 300, 1_260);
                for _ in 0..40 {
                    let Some(hold) = RefundHold::on(&read, 300) else {
                        return false;
                    };
                    let audit = audit_rec(
                        tollgate::domain::audit::AuditAction::Refund,
                        Some("rq-race"),
                        1_260,
                    );
                    match store
                        .request_refund(&read, &req, &hold, &audit)
                        .await
                        .unwrap()
                    {
                        RefundRequestOutcome::Recorded(_) => return true,
                        RefundRequestOutcome::OrderChanged(stored) => read = *stored,
                        other => panic!("{other:?}"),
                    }
                }
                panic!("no decision after 40 attempts")
            })
        })
        .collect();
    let mut held = 0;
    for t in tasks {
        held += usize::from(t.await.unwrap());
    }
    assert_eq!(held, 3);
    assert_eq!(
        store
            .get_order(&o.order_id)
            .await
            .unwrap()
            .unwrap()
            .refund_requested,
        900
    );
}

/// With the partial-refund policy, the first partial refund ends the access while the order
/// stays PAID and takes the coins back; the refund completing it takes nothing back twice.
pub async fn partial_refunds_revoking_take_coins_once(store: &dyn Store) {
    let mut o = pending(420, "rq-coins", 1_000);
    o.credits = 100;
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    store
        .settle(&settlement(&o, OrderState::Pending, "rq-coins-txn", 1_100))
        .await
        .unwrap();
    let paid = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert_eq!(store.user_items("rq-coins").await.unwrap().credits, 100);
    let first = match store
        .count_refund_revoking(&paid, &counting("p1", 300, 0, 599), 1_300)
        .await
        .unwrap()
    {
        TransitionOutcome::Done(d) => *d,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (first.state, first.refunded_amount, first.access_revoked_at),
        (OrderState::Paid, 300, Some(1_300))
    );
    let items = store.user_items("rq-coins").await.unwrap();
    assert_eq!(items.credits, 0);
    assert!(items.grants.iter().all(|g| g.revoked_at == Some(1_300)));
    // A decision made on the read before it: refused.
    assert!(matches!(
        store.count_refund_revoking(&paid, &counting("p2", 100, 0, 599), 1_400).await.unwrap(),
        TransitionOutcome::Conflict(c) if c.access_revoked_at == Some(1_300)
    ));
    let stored = store.get_order(&o.order_id).await.unwrap().unwrap();
    assert!(matches!(
        store.refund(&stored, &counting("p3", 600, 300, 300), 1_500).await.unwrap(),
        TransitionOutcome::Done(d) if d.state == OrderState::Refunded
    ));
    let items = store.user_items("rq-coins").await.unwrap();
    assert_eq!(items.credits, 0, "coins taken back once");
    assert!(
        items.grants.iter().all(|g| g.revoked_at == Some(1_300)),
        "first revocation kept"
    );
}

const DAY: i64 = 86_400;

/// What a check answers for `user` at `now`, read as the service reads it: the live grants
/// and checkpoints, or the whole history while a checkpoint is stale. `true` when stale.
async fn checked(
    store: &dyn Store,
    user: &str,
    now: i64,
) -> (Vec<grant::GrantWindow>, grant::ProductStatus, bool) {
    let items = store.user_items(user).await.unwrap();
    if checkpoint::is_stale(&items.grants, &items.checkpoints) {
        let h = store.user_history(user).await.unwrap();
        let all = checkpoint::merge_history(&h.grants, &h.archived);
        return (
            grant::live(&all, now),
            grant::product_status(&all, "pass", now),
            true,
        );
    }
    (
        grant::live_with(&items.grants, &items.checkpoints, now),
        grant::product_status_with(&items.grants, &items.checkpoints, "pass", now),
        false,
    )
}

/// Every grant of `user`, archived ones included: what the answers must be computed from.
async fn from_history(store: &dyn Store, user: &str) -> Vec<Grant> {
    let h = store.user_history(user).await.unwrap();
    let mut all = checkpoint::merge_history(&h.grants, &h.archived);
    all.sort_by(|a, b| (&a.scope, &a.source_id).cmp(&(&b.scope, &b.source_id)));
    all
}

async fn fold_from_read(store: &dyn Store, user: &str, now: i64) -> Option<checkpoint::FoldStep> {
    let items = store.user_history(user).await.unwrap();
    let stale = checkpoint::is_stale(&items.grants, &items.checkpoints);
    checkpoint::plan(
        &items.grants,
        stale.then_some(items.archived.as_slice()),
        &items.checkpoints,
        now,
    )
}

/// Folding ended grants: a step moves them to the archive and writes the checkpoint, all or
/// nothing, and of dozens of concurrent folds of one read exactly one applies. A refund or
/// reversal of an archived order writes the whole grant back live, so checks see the
/// checkpoint stale and read the history, and a fold from the history repairs it; a fold
/// racing a refund never loses the refund. Throughout, checks answer as the whole history.
pub async fn folds_archive_exactly_once(store: Arc<dyn Store>) {
    let user = "fold-user";
    let mut orders = Vec::new();
    for i in 0..6u64 {
        let o = pending(9_000 + i, user, 1_000);
        store
            .create_order(&o, None, &UNCAPPED, 1_000)
            .await
            .unwrap();
        let paid_at = 10_000 + i as i64 * 10 * DAY;
        let txn = format!("fold-{}", o.order_id);
        let st = settlement(&o, OrderState::Pending, &txn, paid_at);
        assert_eq!(store.settle(&st).await.unwrap(), SettleOutcome::Settled);
        orders.push(store.get_order(&o.order_id).await.unwrap().unwrap());
    }
    // The last pass (paid on day 50, for 7 days) ended three days before.
    let now = 10_000 + 60 * DAY;
    let truth = from_history(&*store, user).await;
    assert_eq!(truth.len(), 12);
    let expected = (
        grant::live(&truth, now),
        grant::product_status(&truth, "pass", now),
    );

    let items = store.user_items(user).await.unwrap();
    let step = checkpoint::plan(&items.grants, None, &items.checkpoints, now).expect("a fold");
    assert_eq!(step.archive.len(), 6, "{step:#?}");
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (store, step) = (store.clone(), step.clone());
        tasks.push(tokio::spawn(
            async move { store.fold_grants(user, &step).await },
        ));
    }
    let mut applied = 0;
    for t in tasks {
        applied += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(applied, 1, "exactly one of the concurrent folds applies");
    let step = fold_from_read(&*store, user, now)
        .await
        .expect("the other scope");
    assert!(store.fold_grants(user, &step).await.unwrap());
    assert!(
        !store.fold_grants(user, &step).await.unwrap(),
        "a fold of an old read changes nothing"
    );
    let items = store.user_items(user).await.unwrap();
    assert!(items.grants.is_empty(), "{:?}", items.grants);
    assert!(
        items.archived.is_empty(),
        "a check's read skips the archive"
    );
    assert_eq!(items.checkpoints.len(), 2);
    assert_eq!(store.user_history(user).await.unwrap().archived.len(), 12);
    assert_eq!(from_history(&*store, user).await, truth, "nothing lost");
    let (live, status, stale) = checked(&*store, user, now).await;
    assert!(!stale);
    assert_eq!((live, status), expected);
    assert!(
        fold_from_read(&*store, user, now).await.is_none(),
        "nothing left to fold"
    );

    // A refund of an archived order: its grants come back live, revoked, whole.
    store
        .refund(&orders[2], &whole(&orders[2]), now)
        .await
        .unwrap();
    let items = store.user_items(user).await.unwrap();
    let mut sold = orders[2].grants_at(orders[2].paid_at.unwrap());
    for g in &mut sold {
        g.revoked_at = Some(now);
    }
    let mut back = items.grants.clone();
    back.sort_by(|a, b| a.scope.cmp(&b.scope));
    sold.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(back, sold);
    let truth = from_history(&*store, user).await;
    let expected = (
        grant::live(&truth, now),
        grant::product_status(&truth, "pass", now),
    );
    let (live, status, stale) = checked(&*store, user, now).await;
    assert!(
        stale,
        "a grant written before the cutoff makes the checkpoint stale"
    );
    assert_eq!((live, status), expected);
    while let Some(step) = fold_from_read(&*store, user, now).await {
        assert!(store.fold_grants(user, &step).await.unwrap());
    }
    let (live, status, stale) = checked(&*store, user, now).await;
    assert!(!stale, "the folds repaired the checkpoints");
    assert_eq!((live, status), expected);

    // Its reversal brings them back unrevoked; then a fold races a second refund of it.
    let refunded = store.get_order(&orders[2].order_id).await.unwrap().unwrap();
    let reversal = RefundReversal {
        provider_txn_id: refunded.provider_txn_id.clone().unwrap(),
        refunded_at: now,
        reversed_at: now + 1,
        reason: "refund reversed by the store".into(),
    };
    assert!(matches!(
        store.reverse_refund(&refunded, &reversal).await.unwrap(),
        TransitionOutcome::Done(_)
    ));
    assert!(checked(&*store, user, now).await.2);
    let step = fold_from_read(&*store, user, now).await.expect("a repair");
    let paid = store.get_order(&orders[2].order_id).await.unwrap().unwrap();
    let fold = {
        let (store, step) = (store.clone(), step.clone());
        tokio::spawn(async move { store.fold_grants(user, &step).await })
    };
    let refund = {
        let (store, paid) = (store.clone(), paid.clone());
        let count = RefundCount {
            refund_id: "again".into(),
            ..whole(&paid)
        };
        tokio::spawn(async move { store.refund(&paid, &count, now + 2).await })
    };
    fold.await.unwrap().unwrap();
    assert!(matches!(
        refund.await.unwrap().unwrap(),
        TransitionOutcome::Done(_)
    ));
    let truth = from_history(&*store, user).await;
    assert!(
        truth
            .iter()
            .filter(|g| g.source_id == paid.order_id.to_string())
            .all(|g| g.revoked_at.is_some()),
        "the refund stands: {truth:?}"
    );
    let expected = (
        grant::live(&truth, now),
        grant::product_status(&truth, "pass", now),
    );
    assert_eq!(
        (
            checked(&*store, user, now).await.0,
            checked(&*store, user, now).await.1
        ),
        expected
    );
}

const EVT_T: i64 = 3_500_000_000;

/// The events of one user between `from` and `to`, as `(occurred_at, type)` sorted, read
/// page by page (pages of 3, so the cursor is exercised).
async fn event_types(store: &dyn Store, user: &str, from: i64, to: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .events_since(from, to, 3, after.as_deref())
            .await
            .unwrap();
        assert!(page.records.len() <= 3);
        for r in &page.records {
            assert!((from..=to).contains(&r.event.occurred_at));
            let fetched = store.get_event(&r.event.id).await.unwrap();
            assert_eq!(fetched.as_ref(), Some(r), "read by id as listed");
            if r.event.user_id == user {
                out.push((r.event.occurred_at, r.event.kind.as_str().to_owned()));
            }
        }
        if !page.more {
            break;
        }
        after = page
            .records
            .last()
            .map(|r| tollgate::domain::event::sort_key(&r.event));
    }
    out.sort();
    out
}

/// Every change writes its events with it, once: a create, a settle (its grants), a
/// partial and a completing refund (the grants revoked), a cancel; a duplicate or refused
/// change writes none. Events are listed in time order, across days, by pages.
pub async fn events_written_with_their_changes(store: &dyn Store) {
    let user = "evt-user";
    let t = EVT_T;
    let o = pending(7_701, user, t);
    store.create_order(&o, None, &UNCAPPED, t).await.unwrap();
    let s = settlement(&o, OrderState::Pending, "evt-txn", t + 10);
    assert_eq!(store.settle(&s).await.unwrap(), SettleOutcome::Settled);
    assert!(matches!(
        store.settle(&s).await.unwrap(),
        SettleOutcome::TxnAlreadyRecorded { .. }
    ));
    let paid = stored_order(store, &o).await;
    assert!(matches!(
        store
            .count_refund(&paid, &counting("e1", 100, 0, 799), t + 20)
            .await
            .unwrap(),
        TransitionOutcome::Done(_)
    ));
    // The same refund again: refused, no event.
    assert!(matches!(
        store
            .count_refund(&paid, &counting("e1", 100, 0, 799), t + 21)
            .await
            .unwrap(),
        TransitionOutcome::Conflict(_)
    ));
    let partly = stored_order(store, &o).await;
    assert!(matches!(
        store
            .refund(&partly, &counting("e2", 800, 100, 100), t + 30)
            .await
            .unwrap(),
        TransitionOutcome::Done(_)
    ));
    // The next day: another order, cancelled once.
    let c = pending(7_702, user, t + 86_400);
    store
        .create_order(&c, None, &UNCAPPED, t + 86_400)
        .await
        .unwrap();
    store
        .close_order(&c, OrderState::Cancelled, t + 86_450, None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .close_order(&c, OrderState::Expired, t + 86_460, None)
            .await
            .unwrap(),
        TransitionOutcome::Conflict(_)
    ));
    let expected: Vec<(i64, String)> = [
        (t, "order.created"),
        (t + 10, "grant.created"),
        (t + 10, "grant.created"),
        (t + 10, "order.paid"),
        (t + 20, "order.refunded"),
        (t + 30, "grant.revoked"),
        (t + 30, "grant.revoked"),
        (t + 30, "order.refunded"),
        (t + 86_400, "order.created"),
        (t + 86_450, "order.cancelled"),
    ]
    .into_iter()
    .map(|(a, k)| (a, k.to_owned()))
    .collect();
    assert_eq!(event_types(store, user, t, t + 86_500).await, expected);
    // A window that ends before the second day lists the first day's only.
    assert_eq!(
        event_types(store, user, t, t + 100).await,
        expected[..8].to_vec()
    );
    // What the events say.
    let all = store.events_since(t, t + 100, 100, None).await.unwrap();
    let paid_event = all
        .records
        .iter()
        .find(|r| r.event.kind.as_str() == "order.paid" && r.event.user_id == user)
        .expect("order.paid");
    assert_eq!(paid_event.event.product_id.as_deref(), Some("pass"));
    assert_eq!(paid_event.event.data["order_id"], o.order_id.as_str());
    assert_eq!(paid_event.event.data["late"], false);
    assert_eq!(paid_event.event.data["amount"]["amount"], 900);
    assert!(paid_event.deliveries.is_empty());
    let partial = all
        .records
        .iter()
        .find(|r| r.event.kind.as_str() == "order.refunded" && r.event.occurred_at == t + 20)
        .expect("partial refund");
    assert_eq!(partial.event.data["partial"], true);
    assert_eq!(partial.event.data["access_ended"], false);
}

/// Operators' changes write their events in their own transactions: grants created by a
/// promotion, grants revoked by hand, coins credited and debited.
pub async fn operator_changes_write_events(store: &dyn Store) {
    use tollgate::domain::audit::AuditAction;
    let user = "evt-op-user";
    let t = EVT_T + 10 * 86_400;
    let g = promo_grant("channel:main", "promo#evt1", t, 7);
    let mut rec = audit_rec(AuditAction::Grant, Some(user), t);
    assert_eq!(
        store
            .grant(
                user,
                std::slice::from_ref(&g),
                &admin_key(user, "evk1", "h"),
                &rec
            )
            .await
            .unwrap(),
        KeyedOutcome::Written
    );
    rec = audit_rec(AuditAction::RevokeGrant, Some(user), t + 5);
    let mut revoked = g.clone();
    revoked.revoked_at = Some(t + 5);
    assert_eq!(
        store.revoke_grants(user, &[revoked], &rec).await.unwrap(),
        Guarded::Written
    );
    rec = audit_rec(AuditAction::Wallet, Some(user), t + 6);
    assert_eq!(
        store
            .adjust_wallet(user, 0, 50, &admin_key(user, "evk2", "h"), &rec)
            .await
            .unwrap(),
        WalletOutcome::Written
    );
    rec = audit_rec(AuditAction::Wallet, Some(user), t + 7);
    assert_eq!(
        store
            .adjust_wallet(user, 50, 20, &admin_key(user, "evk3", "h"), &rec)
            .await
            .unwrap(),
        WalletOutcome::Written
    );
    // A key used already changes nothing and writes no event.
    assert!(matches!(
        store
            .adjust_wallet(
                user,
                20,
                90,
                &admin_key(user, "evk3", "h"),
                &audit_rec(AuditAction::Wallet, Some(user), t + 8)
            )
            .await
            .unwrap(),
        WalletOutcome::KeyUsed(_)
    ));
    let expected: Vec<(i64, String)> = [
        (t, "grant.created"),
        (t + 5, "grant.revoked"),
        (t + 6, "coins.credited"),
        (t + 7, "coins.debited"),
    ]
    .into_iter()
    .map(|(a, k)| (a, k.to_owned()))
    .collect();
    assert_eq!(event_types(store, user, t, t + 10).await, expected);
}

/// Delivery state is written under the record's version: of 20 dispatchers writing from the
/// same read at once, exactly one writes, the others get the record as stored; a stale
/// version never overwrites. Disabled endpoints keep the time of their first 410.
pub async fn event_deliveries_one_writer_wins(store: Arc<dyn Store>) {
    use tollgate::domain::event::{Delivery, DeliveryState};
    let t = EVT_T + 20 * 86_400;
    let o = pending(7_801, "evd-user", t);
    store.create_order(&o, None, &UNCAPPED, t).await.unwrap();
    let page = store.events_since(t, t, 10, None).await.unwrap();
    let read = page
        .records
        .into_iter()
        .find(|r| r.event.user_id == "evd-user")
        .expect("order.created");
    assert_eq!(read.version, 0);
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let store = store.clone();
        let mut mine = read.clone();
        mine.version += 1;
        mine.deliveries.insert(
            format!("https://hooks.example/{i}"),
            Delivery {
                state: DeliveryState::Delivered,
                attempts: 1,
                last_status: Some(200),
                last_attempt_at: Some(t),
                next_try: None,
            },
        );
        tasks.push(tokio::spawn(async move {
            (
                i,
                store
                    .put_event_deliveries(&mine, Some(t + 100))
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut winner = None;
    for task in tasks {
        match task.await.unwrap() {
            (i, Guarded::Written) => {
                assert!(winner.replace(i).is_none(), "two writers won");
            }
            (_, Guarded::Changed(stored)) => {
                let stored = stored.expect("the record as stored");
                assert_eq!(stored.version, 1);
            }
        }
    }
    let winner = winner.expect("one writer wins");
    let stored = store.get_event(&read.event.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.deliveries.keys().cloned().collect::<Vec<_>>(),
        vec![format!("https://hooks.example/{winner}")]
    );
    // A write from the stale read changes nothing.
    let mut stale = read.clone();
    stale.version = 1;
    assert!(matches!(
        store.put_event_deliveries(&stale, None).await.unwrap(),
        Guarded::Changed(Some(r)) if r.version == 1 && r.deliveries.len() == 1
    ));
    // An unknown record: nothing to write.
    let mut ghost = read.clone();
    ghost.event.id = tollgate::domain::event::event_id(
        tollgate::domain::event::EventType::OrderPaid,
        "no such order",
    );
    ghost.version = 1;
    assert!(matches!(
        store.put_event_deliveries(&ghost, None).await.unwrap(),
        Guarded::Changed(None)
    ));
    // Disabled endpoints: the first time stays.
    store
        .disable_endpoint("https://gone.example/a", t)
        .await
        .unwrap();
    store
        .disable_endpoint("https://gone.example/a", t + 50)
        .await
        .unwrap();
    let disabled = store.disabled_endpoints().await.unwrap();
    assert!(disabled.contains(&("https://gone.example/a".to_owned(), t)));
    assert_eq!(
        disabled
            .iter()
            .filter(|(u, _)| u == "https://gone.example/a")
            .count(),
        1
    );
}

/// `put_purchase_change`: the record, its events and counters are written only on the
/// record read; 24 writes decided on one read apply once; `put_events` records once.
pub async fn purchase_changes_apply_on_the_record_read(store: Arc<dyn Store>) {
    use tollgate::domain::event::{Event, EventType};
    use tollgate::domain::subscription::PurchaseChange;
    let id = format!("otid-change-{}", tollgate::clock::SystemClock.now_ms());
    let at = 1_800_000_000;
    let event = |n: u32| Event {
        id: tollgate::domain::event::event_id(EventType::SubscriptionRenewed, &format!("{id}{n}")),
        kind: EventType::SubscriptionRenewed,
        occurred_at: at,
        user_id: "chg-user".into(),
        product_id: Some("vip".into()),
        data: serde_json::json!({}),
    };
    let change = |read: Option<i64>, n: u32| PurchaseChange {
        read,
        events: vec![event(n)],
        counts: vec![(format!("conf_{n}"), 1)],
        counted_at: at,
    };
    let count = |name: String| {
        let store = store.clone();
        async move {
            let day = tollgate::domain::stats::StatsZone::default().day_of(at);
            store.day_records(&[day]).await.unwrap()[0].count(&name)
        }
    };
    let first = purchase(&id, "chg-user", 10, 2_000, None);
    // A read that names a record where there is none, or none where there is one: nothing.
    assert!(store
        .put_purchase_change(&first, &change(Some(5), 0))
        .await
        .is_err());
    assert_eq!(
        store
            .put_purchase_change(&first, &change(None, 0))
            .await
            .unwrap(),
        PurchaseOutcome::Applied
    );
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let store = store.clone();
        let (p, c) = (
            purchase(&id, "chg-user", 20, 3_000, None),
            change(Some(10), 1),
        );
        tasks.push(tokio::spawn(async move {
            store.put_purchase_change(&p, &c).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            PurchaseOutcome::Applied => applied += 1,
            PurchaseOutcome::Stale(p) => assert_eq!(p.last_event_at, 20),
            PurchaseOutcome::OwnedByOther(_) => panic!("same owner"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(count("conf_1".into()).await, 1);
    assert_eq!(count("conf_0".into()).await, 1);
    // Decided on an older read: refused, the record returned.
    let late = purchase(&id, "chg-user", 30, 4_000, None);
    assert!(matches!(
        store.put_purchase_change(&late, &change(Some(10), 2)).await.unwrap(),
        PurchaseOutcome::Stale(p) if p.last_event_at == 20
    ));
    assert_eq!(store.get_event(&event(2).id).await.unwrap(), None);
    assert_eq!(count("conf_2".into()).await, 0);
    // Another user's: refused.
    let thief = purchase(&id, "other-user", 40, 9_000, None);
    assert!(matches!(
        store.put_purchase_change(&thief, &change(Some(20), 3)).await.unwrap(),
        PurchaseOutcome::OwnedByOther(p) if p.user_id == "chg-user"
    ));
    // An event recorded already fails the whole write.
    assert!(store
        .put_purchase_change(&late, &change(Some(20), 1))
        .await
        .is_err());
    assert_eq!(
        store
            .get_purchase("apple", &id)
            .await
            .unwrap()
            .unwrap()
            .last_event_at,
        20
    );
    // Events alone: once.
    assert!(store.put_events(&[event(7)]).await.unwrap());
    assert!(!store.put_events(&[event(7)]).await.unwrap());
    assert!(store.get_event(&event(7).id).await.unwrap().is_some());
}

/// The sessions write with a count (a first access): 32 writers conditioned on the same
/// version, one wins and its count is the only one; the marks come back with the item; a
/// stale write counts nothing.
pub async fn counted_sessions_count_once_concurrently(store: Arc<dyn Store>) {
    let user = "sess-counted";
    let at = 1_900_000_000; // a day no other case counts on
    let day = tollgate::domain::stats::StatsZone::default().day_of(at);
    let counts = tollgate::domain::stats::first_access_counts("conf-fa", "sandbox");
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, counts) = (store.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Sessions::default();
            s.devices
                .insert(format!("d{i}"), device(&format!("s{i}"), i));
            s.accessed.insert("order-fa".into());
            store
                .put_sessions_counted(user, &s, 0, at, &counts)
                .await
                .unwrap()
        }));
    }
    let mut stale = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            tollgate::store::PutSessions::Written => {}
            tollgate::store::PutSessions::Stale(s) => stale.push(s),
        }
    }
    assert_eq!(stale.len(), 31, "exactly one writer wins");
    let read = store.user_items(user).await.unwrap().sessions;
    assert_eq!((read.version, read.devices.len()), (1, 1));
    assert!(read.accessed.contains("order-fa"));
    assert!(
        stale.iter().all(|s| *s == read),
        "losers get the item as stored"
    );
    let rec = &store.day_records(std::slice::from_ref(&day)).await.unwrap()[0];
    assert_eq!(rec.count("first_access"), 1);
    assert_eq!(rec.count("product#conf-fa#first_access"), 1);
    assert_eq!(rec.count("provider#sandbox#first_access"), 1);
    // Stale: nothing written, nothing counted.
    let outcome = store
        .put_sessions_counted(user, &read, 0, at, &counts)
        .await
        .unwrap();
    assert!(!outcome.written());
    let rec = &store.day_records(&[day]).await.unwrap()[0];
    assert_eq!(rec.count("first_access"), 1);
}

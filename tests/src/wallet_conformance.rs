//! The wallet's cases of the store conformance suite (`conformance::run_all` runs them on
//! both stores): the ledger beside every balance change, spends that never overdraw, and
//! orders paid with coins.

use crate::conformance::pending;
use crate::UNCAPPED;
use std::sync::Arc;
use tollgate::domain::audit::{AuditAction, AuditRecord};
use tollgate::domain::ledger::{with_balances, LedgerCursor, LedgerEntry, LedgerSource};
use tollgate::domain::{Currency, Money, Order, OrderId, OrderState};
use tollgate::store::*;

pub async fn run_all(store: Arc<dyn Store>) {
    ledger_records_every_balance_change(&*store).await;
    debits_never_overdraw_concurrently(store.clone()).await;
    orders_paid_with_coins_once(store.clone()).await;
}

fn id(at_ms: i64, n: u64) -> String {
    let mut r = [0u8; 10];
    r[..8].copy_from_slice(&n.to_be_bytes());
    r[8..].copy_from_slice(
        &((tollgate::clock::Clock::now_ms(&tollgate::clock::SystemClock) & 0xffff) as u16)
            .to_be_bytes(),
    );
    OrderId::from_parts(at_ms as u64, r).to_string()
}

fn spend(user: &str, key: &str, at_ms: i64, amount: i64, n: u64) -> DebitRecord {
    DebitRecord {
        user_id: user.into(),
        key: key.into(),
        request_hash: format!("hash-{key}"),
        entry: LedgerEntry {
            id: id(at_ms, n),
            at_ms,
            amount: -amount,
            source: LedgerSource::Spend,
            reason: "gift: rose".into(),
            reference: Some(format!("gift-{n}")),
        },
    }
}

fn admin(user: &str, key: &str, at: i64, n: u64) -> (AdminKey, AuditRecord) {
    let key = AdminKey {
        user_id: user.into(),
        key: key.into(),
        request_hash: "h".into(),
        result: serde_json::json!({}),
        at,
    };
    let audit = AuditRecord {
        id: id(at * 1000, n),
        at,
        actor: "op".into(),
        action: AuditAction::Wallet,
        user_id: Some(user.into()),
        order_id: None,
        stream_id: None,
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
        reason: Some("goodwill".into()),
        request_id: format!("req-{n}"),
    };
    (key, audit)
}

/// Gives `user` `balance` coins by an operator's change (from 0).
/// Every event recorded about `user` in the first UTC day (where these cases' clocks are).
async fn events_of(store: &dyn Store, user: &str) -> Vec<tollgate::domain::event::Event> {
    let (mut out, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = store
            .events_since(0, 86_399, 100, after.as_deref())
            .await
            .unwrap();
        after = page
            .records
            .last()
            .map(|r| tollgate::domain::event::sort_key(&r.event));
        out.extend(
            page.records
                .into_iter()
                .map(|r| r.event)
                .filter(|e| e.user_id == user),
        );
        if !page.more || after.is_none() {
            return out;
        }
    }
}

async fn fund(store: &dyn Store, user: &str, balance: i64, at: i64) {
    let (key, audit) = admin(user, "fund", at, 1);
    assert_eq!(
        store
            .adjust_wallet(user, 0, balance, &key, &audit)
            .await
            .unwrap(),
        WalletOutcome::Written
    );
}

async fn whole_ledger(store: &dyn Store, user: &str) -> (i64, Vec<LedgerEntry>) {
    let page = store.wallet_ledger(user, 100, None).await.unwrap();
    assert!(!page.more);
    (
        page.balance.expect("first page has the balance"),
        page.entries,
    )
}

/// A coin purchase, a spend, an operator's change and the purchase's refund each write one
/// entry in the same change; the refund of coins already spent leaves a debt that blocks
/// spending. Pages follow each other newest first.
pub async fn ledger_records_every_balance_change(store: &dyn Store) {
    let user = "ledger-user";
    let mut o = pending(900, user, 1_000);
    o.grants.clear();
    o.term = None;
    o.credits = 100;
    store
        .create_order(&o, None, &UNCAPPED, 1_000)
        .await
        .unwrap();
    let st = Settlement {
        order_id: o.order_id.clone(),
        user_id: user.into(),
        expected_state: OrderState::Pending,
        amount: o.amount,
        provider: o.provider.clone(),
        provider_txn_id: "ledger-txn".into(),
        product_id: o.product_id.clone(),
        paid_at: 1_100,
        recorded_at: 1_100,
        stream_id: None,
        grants: Vec::new(),
        credits: 100,
    };
    assert_eq!(store.settle(&st).await.unwrap(), SettleOutcome::Settled);
    assert_eq!(
        store
            .debit_wallet(&spend(user, "gift-1", 1_200_000, 30, 2))
            .await
            .unwrap(),
        DebitOutcome::Debited
    );
    // The spend wrote its event with it: coins.debited, 30, at the entry's time.
    let debited: Vec<_> = events_of(store, user)
        .await
        .into_iter()
        .filter(|e| e.kind == tollgate::domain::event::EventType::CoinsDebited)
        .collect();
    assert_eq!(debited.len(), 1, "{debited:?}");
    assert_eq!(debited[0].data["coins"], 30);
    assert_eq!(debited[0].occurred_at, 1_200);
    let (key, audit) = admin(user, "bonus", 1_300, 3);
    assert_eq!(
        store
            .adjust_wallet(user, 70, 75, &key, &audit)
            .await
            .unwrap(),
        WalletOutcome::Written
    );
    let paid = store.get_order(&o.order_id).await.unwrap().unwrap();
    let count = tollgate::domain::refund::RefundCount {
        refund_id: "whole".into(),
        add: paid.amount.amount,
        before_min: 0,
        before_max: 0,
    };
    assert!(matches!(
        store.refund(&paid, &count, 1_400).await.unwrap(),
        TransitionOutcome::Done(_)
    ));

    let (balance, entries) = whole_ledger(store, user).await;
    assert_eq!(
        balance, -25,
        "the refund took back coins already spent: a debt"
    );
    let got: Vec<(i64, LedgerSource)> = entries.iter().map(|e| (e.amount, e.source)).collect();
    assert_eq!(
        got,
        vec![
            (-100, LedgerSource::Refund),
            (5, LedgerSource::Admin),
            (-30, LedgerSource::Spend),
            (100, LedgerSource::Order),
        ]
    );
    let afters: Vec<i64> = with_balances(balance, &entries)
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(afters, vec![-25, 75, 70, 100]);
    assert_eq!(entries[0].reference.as_deref(), Some(o.order_id.as_str()));
    assert_eq!(entries[1].reference.as_deref(), Some(audit.id.as_str()));
    // The check's read is untouched by the ledger, and so is support's.
    let items = store.user_items(user).await.unwrap();
    assert_eq!(items.credits, -25);
    assert_eq!(store.user_history(user).await.unwrap().credits, -25);
    // A debt blocks every spend until repaid.
    assert_eq!(
        store
            .debit_wallet(&spend(user, "gift-2", 1_500_000, 1, 4))
            .await
            .unwrap(),
        DebitOutcome::Insufficient { balance: -25 }
    );

    // Pages of two: the cursor starts after the last entry shown.
    let first = store.wallet_ledger(user, 2, None).await.unwrap();
    assert_eq!(first.balance, Some(-25));
    assert!(first.more);
    assert_eq!(first.entries, entries[..2].to_vec());
    let last = &first.entries[1];
    let cursor = LedgerCursor {
        at_ms: last.at_ms,
        id: last.id.clone(),
        balance: 70,
    };
    let second = store.wallet_ledger(user, 2, Some(&cursor)).await.unwrap();
    assert_eq!(second.balance, None);
    assert!(!second.more);
    assert_eq!(second.entries, entries[2..].to_vec());
    // A user without a wallet has an empty ledger and nothing to spend.
    let empty = store
        .wallet_ledger("no-wallet-user", 10, None)
        .await
        .unwrap();
    assert_eq!(
        (empty.balance, empty.entries.len(), empty.more),
        (Some(0), 0, false)
    );
    assert_eq!(
        store
            .debit_wallet(&spend("no-wallet-user", "k", 1_000_000, 1, 5))
            .await
            .unwrap(),
        DebitOutcome::Insufficient { balance: 0 }
    );
}

/// 64 spends of 7 at once against 100 coins: exactly 14 apply, the others are refused with
/// what is left; a repeated key never debits twice, even once the balance is short.
pub async fn debits_never_overdraw_concurrently(store: Arc<dyn Store>) {
    let user = "spender";
    fund(&*store, user, 100, 2_000).await;
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let rec = spend(
                    user,
                    &format!("spend-{i}"),
                    2_001_000 + i as i64,
                    7,
                    100 + i,
                );
                store.debit_wallet(&rec).await.unwrap()
            })
        })
        .collect();
    let (mut debited, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            DebitOutcome::Debited => debited += 1,
            DebitOutcome::Insufficient { balance } => {
                assert!((0..7).contains(&balance), "refused at {balance}");
                refused += 1;
            }
            DebitOutcome::KeyUsed(k) => panic!("key {:?} is this task's own", k.key),
        }
    }
    assert_eq!((debited, refused), (14, 50));
    let (balance, entries) = whole_ledger(&*store, user).await;
    assert_eq!(balance, 2);
    assert_eq!(entries.len(), 15);
    assert_eq!(entries.iter().map(|e| e.amount).sum::<i64>(), 2);
    // Find one key that applied and repeat it: the first record comes back, nothing moves.
    let applied = entries
        .iter()
        .find(|e| e.source == LedgerSource::Spend)
        .unwrap();
    let n: u64 = applied.reference.as_deref().unwrap()[5..].parse().unwrap();
    let again = spend(user, &format!("spend-{}", n - 100), 2_999_000, 7, 999);
    match store.debit_wallet(&again).await.unwrap() {
        DebitOutcome::KeyUsed(rec) => assert_eq!(&rec.entry, applied),
        other => panic!("a used key debited again: {other:?}"),
    }
    assert_eq!(whole_ledger(&*store, user).await.0, 2);
}

fn coin_order(seed: u64, user: &str, price: i64, at: i64) -> Order {
    let mut o = pending(seed, user, at);
    o.provider = "coins".into();
    o.amount = Money {
        amount: price,
        currency: Currency::COINS,
    };
    o.state = OrderState::Paid;
    o.paid_at = Some(at);
    o.provider_txn_id = Some(o.order_id.to_string());
    o.payment = None;
    o
}

fn coin_entry(o: &Order, n: u64) -> LedgerEntry {
    LedgerEntry {
        id: id(o.created_at * 1000, n),
        at_ms: o.created_at * 1000,
        amount: -o.amount.amount,
        source: LedgerSource::Spend,
        reason: "order: pass".into(),
        reference: Some(o.order_id.to_string()),
    }
}

fn key_for(o: &Order, key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        user_id: o.user_id.clone(),
        key: key.into(),
        request_hash: "coins".into(),
        order_id: o.order_id.clone(),
        expires_at: o.created_at + IDEMPOTENCY_TTL,
    }
}

/// An order paid with coins is written PAID with its grants and debit in one change; a
/// repeated key writes nothing and names the first order; a short balance writes nothing;
/// concurrent purchases never overdraw.
pub async fn orders_paid_with_coins_once(store: Arc<dyn Store>) {
    let user = "coin-buyer";
    fund(&*store, user, 50, 3_000).await;
    let o = coin_order(910, user, 30, 3_100);
    let k = key_for(&o, "buy-1");
    assert_eq!(
        store
            .pay_with_coins(&o, Some(&k), &coin_entry(&o, 1), 3_100)
            .await
            .unwrap(),
        CoinPayment::Paid
    );
    assert_eq!(store.get_order(&o.order_id).await.unwrap(), Some(o.clone()));
    // Its events were written with it: created, paid, each grant, the coins debited.
    use tollgate::domain::event::EventType as T;
    let about = |e: &tollgate::domain::event::Event| {
        e.data["order_id"] == o.order_id.as_str()
            || e.data["cause"] == format!("order:{}", o.order_id)
            || e.kind == T::GrantCreated
    };
    let mut kinds: Vec<T> = events_of(&*store, user)
        .await
        .into_iter()
        .filter(about)
        .map(|e| e.kind)
        .collect();
    kinds.sort();
    let mut want = vec![T::OrderCreated, T::OrderPaid, T::CoinsDebited];
    want.extend(o.grants_at(3_100).iter().map(|_| T::GrantCreated));
    want.sort();
    assert_eq!(kinds, want);
    let items = store.user_items(user).await.unwrap();
    assert_eq!(items.credits, 20);
    let mut want = o.grants_at(3_100);
    let mut got = items.grants.clone();
    want.sort_by(|a, b| a.scope.cmp(&b.scope));
    got.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(got, want);
    // The same key again (a retry builds a new order id): the first order, nothing written.
    let retry = coin_order(911, user, 30, 3_101);
    assert_eq!(
        store
            .pay_with_coins(
                &retry,
                Some(&key_for(&retry, "buy-1")),
                &coin_entry(&retry, 2),
                3_101
            )
            .await
            .unwrap(),
        CoinPayment::KeyExists(k)
    );
    // Short: nothing written, not even the key.
    let short = coin_order(912, user, 30, 3_102);
    assert_eq!(
        store
            .pay_with_coins(
                &short,
                Some(&key_for(&short, "buy-2")),
                &coin_entry(&short, 3),
                3_102
            )
            .await
            .unwrap(),
        CoinPayment::Insufficient { balance: 20 }
    );
    assert_eq!(store.get_order(&short.order_id).await.unwrap(), None);
    assert_eq!(store.get_order(&retry.order_id).await.unwrap(), None);
    assert_eq!(
        store.get_idempotency(user, "buy-2", 3_102).await.unwrap(),
        None
    );
    // Sixteen purchases of 5 at once against 20: exactly four.
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let o = coin_order(920 + i, user, 5, 3_200);
                let paid = store
                    .pay_with_coins(&o, None, &coin_entry(&o, 10 + i), 3_200)
                    .await
                    .unwrap();
                (paid, o.order_id)
            })
        })
        .collect();
    let mut paid = 0;
    for t in tasks {
        let (outcome, id) = t.await.unwrap();
        match outcome {
            CoinPayment::Paid => paid += 1,
            CoinPayment::Insufficient { balance } => {
                assert!((0..5).contains(&balance));
                assert_eq!(store.get_order(&id).await.unwrap(), None);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(paid, 4);
    let (balance, entries) = whole_ledger(&*store, user).await;
    assert_eq!(balance, 0);
    assert_eq!(
        entries.len(),
        6,
        "the funding, the first order and four more"
    );
}

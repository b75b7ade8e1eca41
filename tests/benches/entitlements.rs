//! The entitlement check as token issue and verify make it (the store read, then the rule),
//! on the embedded store, for a viewer holding one pass and for viewers holding 1,000 passes
//! that ended long ago beside one running: before their history is folded (every check reads
//! and folds all of it, as every check did before checkpoints) and after.
//! `cargo bench -p tollgate-tests --bench entitlements`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::checkpoint;
use tollgate::domain::{grant, OrderState};
use tollgate::service::entitlements;
use tollgate::store::{MemoryStore, Settlement, Store};
use tollgate_tests::conformance::pending;
use tollgate_tests::*;

const NOW: i64 = T0;

/// `ended` passes of 7 days paid 8 days apart, the last 9 days before `NOW`, then one
/// running pass.
async fn history(store: &dyn Store, user: &str, ended: usize, seeds: u64) {
    for i in 0..=ended {
        let paid_at = if i == ended {
            NOW
        } else {
            NOW - 9 * DAY - (ended - 1 - i) as i64 * 8 * DAY
        };
        // Distinct seeds per user: order ids made in the same nanosecond must differ.
        let o = pending(seeds + i as u64, user, paid_at);
        store
            .create_order(&o, None, &UNCAPPED, paid_at)
            .await
            .unwrap();
        let st = Settlement {
            order_id: o.order_id.clone(),
            user_id: user.into(),
            expected_state: OrderState::Pending,
            amount: o.amount,
            provider: "sandbox".into(),
            provider_txn_id: format!("{user}-{i}"),
            paid_at,
            product_id: o.product_id.clone(),
            grants: o.grants_at(paid_at),
            credits: 0,
            recorded_at: paid_at,
            stream_id: None,
        };
        store.settle(&st).await.unwrap();
    }
}

/// Folds `user`'s ended grants until nothing is left to fold, as token issues would.
async fn fold_all(store: &dyn Store, user: &str) {
    loop {
        let items = store.user_items(user).await.unwrap();
        let Some(step) = checkpoint::plan(&items.grants, None, &items.checkpoints, NOW) else {
            return;
        };
        assert!(store.fold_grants(user, &step).await.unwrap());
    }
}

fn checks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let app = Arc::new(
        tollgate::app::App::new(
            test_config(&[]),
            store.clone(),
            Arc::new(ManualClock::at(NOW)),
        )
        .unwrap(),
    );
    rt.block_on(async {
        history(&*store, "one", 0, 0).await;
        history(&*store, "unfolded", 1_000, 10_000).await;
        history(&*store, "folded", 1_000, 20_000).await;
        fold_all(&*store, "folded").await;
        let folded = store.user_items("folded").await.unwrap();
        assert!(folded.grants.len() <= 2, "{} live", folded.grants.len());
        assert_eq!(
            store.user_items("unfolded").await.unwrap().grants.len(),
            2_002
        );
    });
    let scopes = vec!["channel:main".to_string()];
    for (name, user) in [
        ("entitlement check, 1 pass", "one"),
        (
            "entitlement check, 1,000 ended passes, unfolded (before)",
            "unfolded",
        ),
        ("entitlement check, 1,000 ended passes, folded", "folded"),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let reading = entitlements::read(&app, black_box(user)).await.unwrap();
                    let (grants, cps) = reading.ledger();
                    assert!(grant::entitled_with(&grants, cps, &scopes, NOW));
                })
            })
        });
    }
}

criterion_group!(benches, checks);
criterion_main!(benches);

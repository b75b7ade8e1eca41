//! Support recovery: an operator looks up a customer's App Store order id (App Store Server
//! API "Look Up Order ID" on a loopback fake that checks the ES256 request JWT) or re-runs a
//! Play token's verification, and the purchase is granted through the verified path once.

use std::sync::Arc;
use tollgate::app::App;
use tollgate::clock::ManualClock;
use tollgate::domain::PurchaseStatus;
use tollgate::service::apple_purchases::apple_recover;
use tollgate::service::ServiceError;
use tollgate_tests::apple::*;
use tollgate_tests::*;

#[tokio::test]
async fn apple_order_id_lookup_grants_once_through_the_verified_path() {
    let fake = FakeAppStore::start().await;
    let store = store_for(Backend::Memory).await.unwrap();
    let app = apple_app_with(store, ManualClock::at(T0), &fake.vars());
    let coins = transaction("9001", "9001", "com.example.coins100", T0 - 100, None, T0);
    let vip = transaction(
        "9002",
        "9002",
        "com.example.vip",
        T0 - 100,
        Some(T0 + 30 * DAY),
        T0,
    );
    fake.orders
        .lock()
        .unwrap()
        .insert("MK5TTTVWJH".into(), vec![sign(&coins), sign(&vip)]);

    let r = apple_recover(&app, "ann", "MK5TTTVWJH").await.unwrap();
    let statuses: Vec<_> = r.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        vec![PurchaseStatus::Granted, PurchaseStatus::Granted]
    );
    let again = apple_recover(&app, "ann", "MK5TTTVWJH").await.unwrap();
    assert!(
        again.iter().all(|p| p.status == PurchaseStatus::Duplicate),
        "{again:?}"
    );
    let items = app.store.user_items("ann").await.unwrap();
    assert_eq!(items.credits, 100);
    assert_eq!(items.grants.len(), 1);
    // The same order cannot be recovered onto a second account.
    assert!(matches!(
        apple_recover(&app, "eve", "MK5TTTVWJH").await,
        Err(ServiceError::Conflict(_))
    ));
    // Unknown or malformed order ids change nothing.
    assert!(matches!(
        apple_recover(&app, "ann", "NOSUCHORDER").await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(apple_recover(&app, "ann", "../etc").await.is_err());
    // Transactions the API returns are verified like any other: a forged one is refused.
    let forged = sign_with(
        "leaf_nooid",
        &["leaf_nooid", "intermediate", "root"],
        &coins,
    );
    fake.orders
        .lock()
        .unwrap()
        .insert("FORGED1".into(), vec![forged]);
    assert!(matches!(
        apple_recover(&app, "ann", "FORGED1").await,
        Err(ServiceError::BadRequest(_))
    ));
}

#[tokio::test]
async fn without_api_credentials_the_lookup_names_the_missing_variable() {
    let app: Arc<App> = apple_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    );
    match apple_recover(&app, "ann", "MK5TTTVWJH").await {
        Err(ServiceError::Provider(e)) => assert!(e.to_string().contains("APPLE_ISSUER_ID"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn google_token_is_reverified_for_the_customer() {
    let g = fake_google::FakeGoogle::start().await;
    let clock = ManualClock::at(T0);
    let app = g.app(store_for(Backend::Memory).await.unwrap(), clock);
    let ann = app.google.as_ref().unwrap().account_id("ann");
    g.set_product(
        "coins_100",
        "lost-tok",
        fake_google::product_purchase(0, Some(&ann)),
    );
    use tollgate::service::google_purchases::verify;
    assert_eq!(
        verify(&app, "lost-tok", "coins_100", Some("ann"), None).await,
        Ok(PurchaseStatus::Granted)
    );
    assert_eq!(
        verify(&app, "lost-tok", "coins_100", Some("ann"), None).await,
        Ok(PurchaseStatus::Duplicate)
    );
    assert!(verify(&app, "lost-tok", "coins_100", Some("eve"), None)
        .await
        .is_err());
    assert_eq!(app.store.user_items("ann").await.unwrap().credits, 100);
}

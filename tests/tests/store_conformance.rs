//! The store conformance suite on both stores.
use tollgate_tests::{conformance, store_for, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    let store = store_for(Backend::Memory).await.unwrap();
    conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_store_conforms() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    conformance::run_all(store).await;
}

//! A simulated day under faults (see `tollgate_tests::soak`): mixed traffic against the
//! local server while the store fails and stalls, WeChat Pay's queries fail or hang,
//! notifications are lost or duplicated and the process is killed and restarted; at the end
//! every payment the providers recorded is granted exactly once, nothing is granted without
//! one, every refund is revoked and no job is lost. The short forms run in the test
//! command; `scripts/soak` runs the long one (`soak_long`, ignored here).

use tollgate_tests::soak::{run, SoakConfig};
use tollgate_tests::{store_for, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_under_faults_memory() {
    let store = store_for(Backend::Memory).await.unwrap();
    let fig = run(store, &SoakConfig::from_env(1, 8, 30)).await;
    println!("{fig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_under_faults_dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    let fig = run(store, &SoakConfig::from_env(2, 4, 20)).await;
    println!("{fig}");
}

/// The long form, for `scripts/soak`: `SOAK_STORE` = `memory` (default) or `dynamo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long; run by scripts/soak"]
async fn soak_long() {
    let backend = match std::env::var("SOAK_STORE").as_deref() {
        Ok("dynamo") => Backend::Dynamo,
        _ => Backend::Memory,
    };
    let store = store_for(backend)
        .await
        .expect("a store (moto for SOAK_STORE=dynamo)");
    let fig = run(store, &SoakConfig::from_env(1, 24, 200)).await;
    println!("{fig}");
}

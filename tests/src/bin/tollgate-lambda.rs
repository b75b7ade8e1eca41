//! One Lambda binary for the suites: `tollgate-lambda <function>` runs the handler of that
//! function (`create-order`, `provider-callback`, `stream-token`, `store-notifications`,
//! `sweeper`, `verifier`) through the same shared entry point as the function's own `main`.

use tollgate::api::Routes;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let function = std::env::args().nth(1);
    match function.as_deref().unwrap_or("(none given)") {
        "create-order" => tollgate::lambda::run_http(Routes::Orders).await,
        "provider-callback" => tollgate::lambda::run_http(Routes::Callbacks).await,
        "stream-token" => tollgate::lambda::run_http(Routes::Streams).await,
        "store-notifications" => tollgate::lambda::run_http(Routes::StoreNotifications).await,
        "sweeper" => tollgate::lambda::run_sweeper().await,
        "verifier" => tollgate::lambda::run_verifier().await,
        other => Err(format!("tollgate-lambda: unknown function {other:?}").into()),
    }
}

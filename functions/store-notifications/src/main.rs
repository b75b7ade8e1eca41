//! Lambda `store-notifications`: the handler lives in the shared crate.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(tollgate::api::Routes::StoreNotifications).await
}

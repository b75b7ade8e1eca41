//! Lambda `create-order`: the handler lives in the shared crate.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // This function serves /admin/stats, so it serves the dashboard page too.
    tollgate_dashboard::install();
    tollgate::lambda::run_http(tollgate::api::Routes::Orders).await
}

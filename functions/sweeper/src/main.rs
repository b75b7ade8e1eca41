//! Lambda `sweeper`: expires unpaid orders and re-queries providers, on a schedule.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_sweeper().await
}

//! Lambda `dispatcher`: delivers event records to their line's webhooks, from the table's
//! stream and from the webhook retry queue.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_dispatcher().await
}

//! Lambda `verifier`: runs queued jobs from SQS, reporting failures per message.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_verifier().await
}

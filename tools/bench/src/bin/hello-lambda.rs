//! The baseline for cold starts: the smallest useful `lambda_runtime` function, built with
//! the same profile as Tollgate's functions.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        |e: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, std::convert::Infallible>(e.payload)
        },
    ))
    .await
}

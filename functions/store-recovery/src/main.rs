//! `store-recovery`: the operator's command for store purchases that granted nothing
//! (`tollgate::recovery` says how it works).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    tollgate::lambda::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match tollgate::recovery::run(&args).await {
        Ok(out) => println!("{out}"),
        Err(message) => {
            eprintln!("store-recovery: {message}");
            std::process::exit(1)
        }
    }
}

//! `tollgate-local`: every route on one port, embedded store by default.
#[tokio::main]
async fn main() {
    if let Err(e) = tollgate::local::run().await {
        eprintln!("tollgate-local: {e}");
        std::process::exit(1);
    }
}

//! `tollgate-local`: every route on one port, embedded store by default.
#[tokio::main]
async fn main() {
    tollgate_dashboard::install();
    if let Err(e) = tollgate::local::run().await {
        eprintln!("tollgate-local: {e}");
        std::process::exit(1);
    }
}

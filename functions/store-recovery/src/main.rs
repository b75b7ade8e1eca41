//! `store-recovery`: an operator's command for support cases ("I paid but have nothing").
//! It runs with the deployment's environment (TABLE_NAME, QUEUE_URL, PROVIDERS, APPLE_*,
//! GOOGLE_*) and the operator's own AWS credentials, and grants only through the verified
//! path: Apple's signed transactions from "Look Up Order ID", or the Play Developer API.
//!
//!   store-recovery apple-order <APP_STORE_ORDER_ID> <USER_ID>
//!   store-recovery google <PURCHASE_TOKEN> <PLAY_PRODUCT_ID> <USER_ID>

use tollgate::app::App;
use tollgate::config::Profile;

const USAGE: &str = "usage:\n  store-recovery apple-order <APP_STORE_ORDER_ID> <USER_ID>\n  store-recovery google <PURCHASE_TOKEN> <PLAY_PRODUCT_ID> <USER_ID>";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tollgate::lambda::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let app = match App::from_env(Profile::Lambda).await {
        Ok(a) => a,
        Err(e) => fail(&e.to_string()),
    };
    let out = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["apple-order", order_id, user] => {
            match tollgate::service::apple_purchases::apple_recover(&app, user, order_id).await {
                Ok(results) => match serde_json::to_value(results) {
                    Ok(v) => v,
                    Err(e) => fail(&e.to_string()),
                },
                Err(e) => fail(&e.to_string()),
            }
        }
        ["google", token, product, user] => {
            match tollgate::service::google_purchases::verify(
                &app,
                token,
                product,
                Some(user),
                None,
            )
            .await
            {
                Ok(status) => serde_json::json!({ "status": status }),
                Err(e) => fail(&format!("{e:?}")),
            }
        }
        _ => fail(USAGE),
    };
    println!("{out}");
}

fn fail(message: &str) -> ! {
    eprintln!("store-recovery: {message}");
    std::process::exit(1)
}

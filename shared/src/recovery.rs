//! The `store-recovery` operator command, for support cases ("I paid but have nothing"). It
//! runs with the deployment's environment (TABLE_NAME, QUEUE_URL, PROVIDERS, APPLE_*,
//! GOOGLE_*) and the operator's own AWS credentials, and grants only through the verified
//! path: Apple's signed transactions from "Look Up Order ID", or the Play Developer API.

use crate::app::App;
use crate::config::Profile;

pub const USAGE: &str = "usage:\n  store-recovery apple-order <APP_STORE_ORDER_ID> <USER_ID>\n  store-recovery google <PURCHASE_TOKEN> <PLAY_PRODUCT_ID> <USER_ID>";

/// Runs the command named by `args` (without the program name); the JSON to print, or the
/// message to print on standard error before exiting with a failure.
pub async fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if !matches!(args.as_slice(), ["apple-order", _, _] | ["google", _, _, _]) {
        return Err(USAGE.into());
    }
    let app = App::from_env(Profile::Lambda)
        .await
        .map_err(|e| e.to_string())?;
    match args.as_slice() {
        ["apple-order", order_id, user] => {
            let results = crate::service::apple_purchases::apple_recover(&app, user, order_id)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(results).map_err(|e| format!("encoding the results: {e}"))
        }
        ["google", token, product, user] => {
            let status =
                crate::service::google_purchases::verify(&app, token, product, Some(user), None)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
            Ok(serde_json::json!({ "status": status }))
        }
        _ => Err(USAGE.into()),
    }
}

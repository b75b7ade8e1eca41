//! Google Play's wire format: the Play Developer API resources Tollgate reads
//! (`purchases.subscriptionsv2`, `purchases.products`), the Pub/Sub push envelope and the
//! real-time developer notification (RTDN) it carries, the claims of the push's OIDC token,
//! and the pre-order's `obfuscatedExternalAccountId`. Pure: the client in `mod.rs` fetches
//! and authenticates.

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A purchase token as it may appear in a URL path and a store key.
pub fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 1024
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The `obfuscatedExternalAccountId` for a user of `package_name`: SHA-256 of the package and
/// the user id, never the raw id. It depends on nothing that rotates (keys), so purchases
/// made years ago still match; it is a pseudonym, not a secret.
pub fn account_id(package_name: &str, user: &str) -> String {
    let d = Sha256::digest(format!("tollgate-play-account:{package_name}:{user}").as_bytes());
    hex::encode(&d[..24])
}

/// `purchases.subscriptionsv2` resource (the fields used).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionV2 {
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub subscription_state: String,
    #[serde(default)]
    pub linked_purchase_token: Option<String>,
    #[serde(default)]
    pub acknowledgement_state: String,
    #[serde(default)]
    pub external_account_identifiers: Option<ExternalIds>,
    #[serde(default)]
    pub start_time: Option<String>,
    /// The order of the latest period paid (`GPA.…`, `..0`, `..1` per renewal); superseded
    /// by the line items' `latestSuccessfulOrderId`, read first.
    #[serde(default)]
    pub latest_order_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub product_id: String,
    #[serde(default)]
    pub expiry_time: Option<String>,
    #[serde(default)]
    pub latest_successful_order_id: Option<String>,
    #[serde(default)]
    pub auto_renewing_plan: Option<AutoRenewingPlan>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AutoRenewingPlan {
    /// What each renewal is charged (before any offer).
    #[serde(default)]
    pub recurring_price: Option<PlayMoney>,
}

/// Google's `Money`: a currency, whole units (a decimal string) and nanos.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlayMoney {
    pub currency_code: String,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub nanos: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIds {
    #[serde(default)]
    pub obfuscated_external_account_id: Option<String>,
}

/// `purchases.products` resource (the fields used).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProductPurchase {
    /// 0 purchased, 1 canceled, 2 pending.
    #[serde(default)]
    pub purchase_state: i64,
    /// 0 yet to be consumed, 1 consumed.
    #[serde(default)]
    pub consumption_state: i64,
    /// 0 yet to be acknowledged, 1 acknowledged.
    #[serde(default)]
    pub acknowledgement_state: i64,
    #[serde(default)]
    pub purchase_time_millis: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub obfuscated_external_account_id: Option<String>,
    #[serde(default)]
    pub quantity: Option<i64>,
}

/// Claims of a Pub/Sub push OIDC token (beyond the issuer, audience and expiry that the
/// token check validates itself).
#[derive(Debug, Deserialize)]
pub struct PushClaims {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// A Pub/Sub push request's body.
#[derive(Deserialize)]
struct Push {
    message: PushMessage,
}

/// Pub/Sub sends the id both as `messageId` and `message_id`.
#[derive(Deserialize)]
struct PushMessage {
    data: String,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(rename = "message_id", default)]
    message_id_snake: Option<String>,
}

/// A real-time developer notification: at most one of its notifications is set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeveloperNotification {
    pub package_name: String,
    #[serde(default)]
    pub subscription_notification: Option<SubscriptionNotification>,
    #[serde(default)]
    pub one_time_product_notification: Option<OneTimeProductNotification>,
    #[serde(default)]
    pub voided_purchase_notification: Option<VoidedPurchaseNotification>,
    #[serde(default)]
    pub test_notification: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionNotification {
    pub purchase_token: String,
    pub subscription_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeProductNotification {
    pub purchase_token: String,
    pub sku: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoidedPurchaseNotification {
    pub purchase_token: String,
    /// 1 subscription, 2 one-time product.
    #[serde(default)]
    pub product_type: Option<i64>,
}

/// A pushed RTDN for this app, with the Pub/Sub message id that deduplicates it.
#[derive(Debug)]
pub struct PushedNotification {
    /// 1-256 characters, no `#` (it becomes part of a store key).
    pub message_id: String,
    pub notification: DeveloperNotification,
}

/// Decodes a Pub/Sub push body carrying a Play RTDN for `package_name`. The error says what
/// was wrong, safe to answer with.
pub fn decode_push(body: &[u8], package_name: &str) -> Result<PushedNotification, String> {
    let push: Push =
        serde_json::from_slice(body).map_err(|e| format!("not a Pub/Sub push: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(push.message.data.as_bytes())
        .map_err(|_| "message.data is not base64".to_owned())?;
    let notification: DeveloperNotification =
        serde_json::from_slice(&data).map_err(|e| format!("not a DeveloperNotification: {e}"))?;
    if notification.package_name != package_name {
        return Err("notification for another package".into());
    }
    match push.message.message_id.or(push.message.message_id_snake) {
        Some(id) if !id.is_empty() && id.len() <= 256 && !id.contains('#') => {
            Ok(PushedNotification {
                message_id: id,
                notification,
            })
        }
        _ => Err("message has no usable messageId".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn tokens_are_path_safe() {
        assert!(valid_token("abc.DEF-ghi_123"));
        for bad in ["", "a/b", "a b", "a%2F", "a?b", "ä"] {
            assert!(!valid_token(bad), "{bad}");
        }
    }

    #[test]
    fn account_id_is_a_stable_pseudonym() {
        let a = account_id("com.example", "ann");
        assert_eq!(a.len(), 48);
        assert!(!a.contains("ann"));
        assert_eq!(a, account_id("com.example", "ann"));
        assert_ne!(a, account_id("com.example", "bo"));
        assert_ne!(a, account_id("com.other", "ann"));
    }

    fn push(data: &serde_json::Value, message: serde_json::Value) -> Vec<u8> {
        let mut m = message;
        m["data"] = STANDARD.encode(data.to_string()).into();
        serde_json::json!({ "message": m, "subscription": "projects/p/subscriptions/s" })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn push_is_decoded_with_either_message_id_spelling() {
        let rtdn = serde_json::json!({
            "version": "1.0",
            "packageName": "com.example",
            "eventTimeMillis": "1700000000000",
            "subscriptionNotification": {
                "version": "1.0",
                "notificationType": 4,
                "purchaseToken": "tok",
                "subscriptionId": "vip_monthly"
            }
        });
        for message in [
            serde_json::json!({ "messageId": "m-1" }),
            serde_json::json!({ "message_id": "m-1" }),
        ] {
            let p = decode_push(&push(&rtdn, message), "com.example").unwrap();
            assert_eq!(p.message_id, "m-1");
            let s = p.notification.subscription_notification.unwrap();
            assert_eq!(
                (s.purchase_token.as_str(), s.subscription_id.as_str()),
                ("tok", "vip_monthly")
            );
        }
    }

    #[test]
    fn bad_pushes_say_why() {
        let rtdn = serde_json::json!({
            "packageName": "com.example",
            "voidedPurchaseNotification": { "purchaseToken": "tok", "productType": 2 }
        });
        let ok = serde_json::json!({ "messageId": "m-1" });
        assert!(decode_push(b"{}", "com.example")
            .unwrap_err()
            .starts_with("not a Pub/Sub push"));
        let not_b64 = br#"{"message":{"data":"%%%","messageId":"m"}}"#;
        assert_eq!(
            decode_push(not_b64, "com.example").unwrap_err(),
            "message.data is not base64"
        );
        assert!(
            decode_push(&push(&serde_json::json!([1]), ok.clone()), "com.example")
                .unwrap_err()
                .starts_with("not a DeveloperNotification")
        );
        assert_eq!(
            decode_push(&push(&rtdn, ok.clone()), "com.other").unwrap_err(),
            "notification for another package"
        );
        for id in ["", "a#b"] {
            assert_eq!(
                decode_push(
                    &push(&rtdn, serde_json::json!({ "messageId": id })),
                    "com.example"
                )
                .unwrap_err(),
                "message has no usable messageId"
            );
        }
        let v = decode_push(&push(&rtdn, ok), "com.example")
            .unwrap()
            .notification
            .voided_purchase_notification
            .unwrap();
        assert_eq!(
            (v.purchase_token.as_str(), v.product_type),
            ("tok", Some(2))
        );
    }
}

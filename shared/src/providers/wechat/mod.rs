//! WeChat Pay API v3 as a Tollgate provider: configuration from the `WECHATPAY_*`
//! variables, the signed HTTP calls (prepay, query, close) and the mapping of verified
//! notifications and query answers to [`ProviderEvent`]s. The wire format itself (signing,
//! verification, decryption, request and answer shapes) is [`wire`], which does no I/O.

pub mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::notification::NotificationKind;
use super::outbound::{HttpClient, HttpReply};
use super::rsa::{KeyError, RsaPrivateKey};
use super::wire_error::{BuildError, VerifyError};
use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, OrderQuery, Payer,
    PaymentCreator, ProductTitles, ProviderError, ProviderEvent, QueryResult, RefundAnswer,
    RefundIssuer,
};
use crate::clock::Clock;
use crate::config::{ConfigError, ProviderVars};
use crate::domain::refund::RefundRef;
use crate::domain::refund_request::RefundRequest;
use crate::domain::{Currency, Money, Order, OrderId};
use wire::{
    notify_failure_response, parse_api_error, parse_platform_keys, PreparedRequest, PrepayRequest,
    PrepayResponse, RefundCall, RefundStatus, SignatureHeaders, TradeState, TradeType,
    WechatConfig, API_BASE,
};

pub const NAME: &str = "wechat";

/// WeChat Pay v3: creates payments, verifies callbacks, queries and closes orders. The
/// `channel` of an order picks the product: `app` (APP SDK), `jsapi` (Official Account /
/// Mini Program, needs the payer's openid) or `native` (QR code, the default).
pub struct WechatPay {
    cfg: WechatConfig,
    base_url: String,
    /// The path part of `base_url` ("" for a bare host), part of every signed URL.
    base_path: String,
    notify_url: String,
    /// Product titles: WeChat shows the `description` to the payer.
    titles: ProductTitles,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WechatPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPay")
            .field("cfg", &self.cfg)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl WechatPay {
    /// Reads the `WECHATPAY_*` variables; a bad one stops start-up, named.
    pub fn from_vars(
        vars: &ProviderVars,
        catalog: &crate::live_catalog::CatalogView,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let named = |name: &'static str| move |e: KeyError| crate::config::err(name, e.0);
        let mch_id = vars.require("WECHATPAY_MCH_ID")?;
        let app_id = vars.require("WECHATPAY_APP_ID")?;
        let serial = vars.require("WECHATPAY_MERCHANT_SERIAL")?;
        let api_v3_key = vars.require("WECHATPAY_API_V3_KEY")?;
        if api_v3_key.len() != 32 {
            return Err(crate::config::err(
                "WECHATPAY_API_V3_KEY",
                "must be the 32-character APIv3 key",
            ));
        }
        // The keys are read on their own first so that a bad one is named by its variable.
        let merchant_key = vars.require("WECHATPAY_MERCHANT_PRIVATE_KEY")?;
        RsaPrivateKey::from_pem_or_base64(merchant_key)
            .map_err(named("WECHATPAY_MERCHANT_PRIVATE_KEY"))?;
        let platform = vars.require("WECHATPAY_PLATFORM_KEYS")?;
        parse_platform_keys(platform).map_err(named("WECHATPAY_PLATFORM_KEYS"))?;
        let cfg = WechatConfig::new(mch_id, app_id, api_v3_key, serial, merchant_key, platform)
            .map_err(named("WECHATPAY_MCH_ID"))?;
        let notify_url = vars.require("WECHATPAY_NOTIFY_URL")?;
        if !notify_url.starts_with("https://") || notify_url.contains(['?', '#', ' ']) {
            return Err(crate::config::err(
                "WECHATPAY_NOTIFY_URL",
                "must be an https URL without a query (WeChat Pay's rule)",
            ));
        }
        let base_url = super::outbound::base_url(vars, "WECHATPAY_BASE_URL", API_BASE)?;
        // `base_url` checked that it parses as a URI.
        let base_path = base_url
            .parse::<http::Uri>()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .map_err(|_| crate::config::err("WECHATPAY_BASE_URL", "must be an http(s) URL"))?;
        Ok(WechatPay {
            cfg,
            base_url,
            base_path,
            notify_url: notify_url.to_owned(),
            titles: ProductTitles::from_catalog(catalog),
            http,
            clock,
        })
    }

    fn trade_type(channel: Option<&str>, payer: &Payer) -> Result<TradeType, String> {
        match channel.unwrap_or("native") {
            "native" => Ok(TradeType::Native),
            "app" => Ok(TradeType::App),
            "jsapi" => match &payer.openid {
                Some(openid) => Ok(TradeType::Jsapi {
                    openid: openid.clone(),
                }),
                None => Err("channel jsapi needs the payer's openid".into()),
            },
            other => Err(format!(
                "channel {other:?} is not one of app, jsapi, native for wechat"
            )),
        }
    }

    /// Signs and sends one API request.
    async fn call(&self, req: PreparedRequest) -> Result<HttpReply, ProviderError> {
        let nonce = super::outbound::nonce();
        // The signature covers the URL path as sent, including any path of the base URL.
        let signed_path = format!("{}{}", self.base_path, req.path);
        let auth = self
            .cfg
            .authorization_header(
                req.method,
                &signed_path,
                &req.body,
                self.clock.now(),
                &nonce,
            )
            .map_err(refused)?;
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.base_url, req.path))
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "tollgate");
        if req.method != "GET" {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let http_req = b
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|e| ProviderError::Refused(format!("building request: {e}")))?;
        self.http.send(http_req).await
    }

    /// A 2xx answer must be signed by a platform key we hold: anything else could be an
    /// impostor or a proxy's error page, and is treated as "try again later".
    fn check_signed(&self, reply: &HttpReply) -> Result<(), ProviderError> {
        let h = SignatureHeaders {
            signature: reply.header("wechatpay-signature").unwrap_or(""),
            timestamp: reply.header("wechatpay-timestamp").unwrap_or(""),
            nonce: reply.header("wechatpay-nonce").unwrap_or(""),
            serial: reply.header("wechatpay-serial").unwrap_or(""),
            signature_type: reply.header("wechatpay-signature-type"),
        };
        self.cfg
            .verify_signature(&h, &reply.body, self.clock.now())
            .map_err(|e| ProviderError::Unavailable(format!("answer not trusted: {e}")))
    }

    /// A refused call: WeChat Pay's 4xx (but 429) are final, the rest worth retrying.
    fn error_of(reply: &HttpReply) -> ProviderError {
        let detail = match parse_api_error(&reply.body) {
            Some(e) => format!("{} {}: {}", reply.status.as_u16(), e.code, e.message),
            None => format!("HTTP {}", reply.status.as_u16()),
        };
        if reply.status.is_client_error() && reply.status != StatusCode::TOO_MANY_REQUESTS {
            ProviderError::Refused(detail)
        } else {
            ProviderError::Unavailable(detail)
        }
    }
}

/// A request we could not build (bad order id, amount...) will never succeed.
fn refused(e: BuildError) -> ProviderError {
    ProviderError::Refused(e.to_string())
}

fn malformed(what: &str) -> CallbackRejection {
    VerifyError::Malformed(what.into()).into()
}

/// Client-side pay parameters as JSON, plus the prepay id the client SDK needs too.
fn pay_params_json(p: impl serde::Serialize, prepay_id: &str) -> Result<Value, ProviderError> {
    let mut v = serde_json::to_value(p)
        .map_err(|e| ProviderError::Unavailable(format!("pay parameters: {e}")))?;
    v["prepay_id"] = json!(prepay_id);
    Ok(v)
}

fn money(fen: i64, currency: &str) -> Option<Money> {
    Money::new(fen, Currency::parse(currency).ok()?).ok()
}

#[async_trait::async_trait]
impl PaymentCreator for WechatPay {
    fn prepares_remotely(&self) -> bool {
        true
    }

    fn check_request(&self, channel: Option<&str>, payer: &Payer) -> Result<(), String> {
        Self::trade_type(channel, payer).map(|_| ())
    }

    async fn payment_params(&self, order: &Order, payer: &Payer) -> Result<Value, ProviderError> {
        let trade_type =
            Self::trade_type(order.channel.as_deref(), payer).map_err(ProviderError::Refused)?;
        if order.amount.currency != Currency::CNY {
            return Err(ProviderError::Refused("WeChat Pay charges CNY only".into()));
        }
        let description = self.titles.get(&order.product_id, 127);
        let req = PrepayRequest {
            trade_type: trade_type.clone(),
            out_trade_no: order.order_id.to_string(),
            description,
            amount_fen: order.amount.amount,
            time_expire: Some(order.expires_at),
            notify_url: self.notify_url.clone(),
        };
        let prepared = self.cfg.prepay_request(&req).map_err(refused)?;
        let reply = self.call(prepared).await?;
        if !reply.status.is_success() {
            return Err(Self::error_of(&reply));
        }
        self.check_signed(&reply)?;
        let parsed = WechatConfig::parse_prepay_response(&trade_type, &reply.body)
            .map_err(|e| ProviderError::Unavailable(format!("prepay answer: {e}")))?;
        let now = self.clock.now();
        let nonce = super::outbound::nonce();
        let signing = |e: BuildError| ProviderError::Unavailable(e.to_string());
        let mut v = match (&trade_type, parsed) {
            (TradeType::Native, PrepayResponse::CodeUrl(url)) => json!({ "code_url": url }),
            (TradeType::App, PrepayResponse::PrepayId(id)) => {
                let p = self.cfg.app_pay_params(&id, now, &nonce).map_err(signing)?;
                pay_params_json(p, &id)?
            }
            (TradeType::Jsapi { .. }, PrepayResponse::PrepayId(id)) => {
                let p = self
                    .cfg
                    .jsapi_pay_params(&id, now, &nonce)
                    .map_err(signing)?;
                pay_params_json(p, &id)?
            }
            _ => {
                return Err(ProviderError::Unavailable(
                    "prepay answer of the wrong kind".into(),
                ))
            }
        };
        v["trade_type"] = json!(trade_type.as_str());
        Ok(v)
    }
}

impl CallbackVerifier for WechatPay {
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let h = |name: &str| req.header(name).ok_or_else(|| malformed(name));
        let headers = SignatureHeaders {
            signature: h("wechatpay-signature")?,
            timestamp: h("wechatpay-timestamp")?,
            nonce: h("wechatpay-nonce")?,
            serial: h("wechatpay-serial")?,
            signature_type: req.header("wechatpay-signature-type"),
        };
        let n = self.cfg.verify_notification(&headers, &req.body, now)?;
        let order_id =
            OrderId::parse(&n.out_trade_no).map_err(|_| malformed("out_trade_no is not ours"))?;
        let amount = money(n.amount_minor, &n.currency).ok_or_else(|| malformed("currency"))?;
        match n.kind {
            NotificationKind::Paid => Ok(Some(ProviderEvent::Paid {
                order_id,
                provider_txn_id: n.provider_txn_id,
                amount,
                paid_at: n.occurred_at,
            })),
            NotificationKind::Refunded => {
                let refunded = n
                    .refunded_minor
                    .and_then(|r| money(r, &n.currency))
                    .ok_or_else(|| malformed("amount.refund"))?;
                // Each refund has its own id: a repeated notification counts once.
                let refund_id = n.refund_id.ok_or_else(|| malformed("refund_id"))?;
                Ok(Some(ProviderEvent::Refunded {
                    order_id,
                    provider_txn_id: n.provider_txn_id,
                    refunded,
                    order_total: amount,
                    refund: RefundRef::Single(refund_id),
                }))
            }
            // REFUND.ABNORMAL / REFUND.CLOSED: the money did not move; nothing to apply.
            NotificationKind::Pending | NotificationKind::Closed => {
                tracing::info!(order_id = %order_id, event = %n.event, "WeChat refund event acknowledged without change");
                Ok(None)
            }
        }
    }

    fn acknowledge(&self) -> CallbackAnswer {
        CallbackAnswer::empty(StatusCode::NO_CONTENT)
    }

    fn refuse(&self, status: StatusCode, reason: &str) -> CallbackAnswer {
        let (status, body) = notify_failure_response(status.as_u16(), reason);
        CallbackAnswer {
            // `notify_failure_response` answers 4xx/5xx only.
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: Some("application/json"),
            body: Bytes::from(body),
        }
    }
}

#[async_trait::async_trait]
impl OrderQuery for WechatPay {
    async fn query(&self, order: &Order) -> Result<QueryResult, ProviderError> {
        let prepared = self
            .cfg
            .query_request(order.order_id.as_str())
            .map_err(refused)?;
        let reply = self.call(prepared).await?;
        if reply.status == StatusCode::NOT_FOUND
            && parse_api_error(&reply.body).is_some_and(|e| e.code == "ORDER_NOT_EXIST")
        {
            return Ok(QueryResult::NotPaid);
        }
        if !reply.status.is_success() {
            return Err(Self::error_of(&reply));
        }
        self.check_signed(&reply)?;
        let q = self
            .cfg
            .parse_query_response(&reply.body)
            .map_err(|e| ProviderError::Unavailable(format!("query answer: {e}")))?;
        if q.out_trade_no != order.order_id.as_str() {
            return Err(ProviderError::Unavailable(
                "query answer names another order".into(),
            ));
        }
        Ok(match q.state {
            // A refunded trade was paid first: settling it lets the refund notice revoke it.
            TradeState::Success | TradeState::Refund => {
                let (Some(txn), Some(total)) = (q.transaction_id, q.amount_total) else {
                    return Err(ProviderError::Unavailable(
                        "paid query answer without transaction_id or amount".into(),
                    ));
                };
                let amount = money(total, q.currency.as_deref().unwrap_or("CNY"))
                    .ok_or_else(|| ProviderError::Unavailable("query answer currency".into()))?;
                QueryResult::Paid(ProviderEvent::Paid {
                    order_id: order.order_id.clone(),
                    provider_txn_id: txn,
                    amount,
                    paid_at: q.success_time,
                })
            }
            TradeState::NotPay | TradeState::UserPaying => QueryResult::NotPaid,
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => QueryResult::Closed,
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ProviderError> {
        let prepared = self
            .cfg
            .close_request(order.order_id.as_str())
            .map_err(refused)?;
        let reply = self.call(prepared).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(Self::error_of(&reply))
        }
    }
}

impl WechatPay {
    /// What WeChat Pay's refund answer means for `req`.
    fn refund_answer(
        &self,
        req: &RefundRequest,
        body: &[u8],
    ) -> Result<RefundAnswer, ProviderError> {
        let r = self
            .cfg
            .parse_refund_response(body)
            .map_err(|e| ProviderError::Unavailable(format!("refund answer: {e}")))?;
        if r.out_refund_no != req.out_refund_no {
            return Err(ProviderError::Unavailable(
                "refund answer names another refund".into(),
            ));
        }
        Ok(match r.status {
            RefundStatus::Success => RefundAnswer::Confirmed {
                refunded: money(r.refund_fen, &r.currency)
                    .ok_or_else(|| ProviderError::Unavailable("refund answer currency".into()))?,
                // As its REFUND.SUCCESS notification names it: counted once per refund_id.
                refund: RefundRef::Single(r.refund_id.clone()),
                provider_refund_id: Some(r.refund_id),
            },
            RefundStatus::Processing => RefundAnswer::Pending {
                provider_refund_id: Some(r.refund_id),
            },
            RefundStatus::Closed => RefundAnswer::Failed {
                code: "CLOSED".into(),
            },
            RefundStatus::Abnormal => RefundAnswer::Failed {
                code: "ABNORMAL".into(),
            },
        })
    }
}

#[async_trait::async_trait]
impl RefundIssuer for WechatPay {
    async fn refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        let call = RefundCall {
            out_trade_no: order.order_id.to_string(),
            transaction_id: order.provider_txn_id.clone(),
            out_refund_no: req.out_refund_no.clone(),
            reason: req.reason.clone(),
            notify_url: self.notify_url.clone(),
            refund_fen: req.amount,
            total_fen: order.amount.amount,
        };
        let reply = self
            .call(self.cfg.refund_request(&call).map_err(refused)?)
            .await?;
        if !reply.status.is_success() {
            return match Self::error_of(&reply) {
                // An error answer is WeChat Pay's refusal of this refund: its code.
                ProviderError::Refused(_) => Ok(RefundAnswer::Failed {
                    code: parse_api_error(&reply.body)
                        .map_or_else(|| format!("HTTP {}", reply.status.as_u16()), |e| e.code),
                }),
                unavailable => Err(unavailable),
            };
        }
        self.check_signed(&reply)?;
        self.refund_answer(req, &reply.body)
    }

    async fn query_refund(
        &self,
        _order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        let prepared = self
            .cfg
            .refund_query_request(&req.out_refund_no)
            .map_err(refused)?;
        let reply = self.call(prepared).await?;
        if reply.status == StatusCode::NOT_FOUND
            && parse_api_error(&reply.body).is_some_and(|e| e.code == "RESOURCE_NOT_EXISTS")
        {
            return Ok(RefundAnswer::Unknown);
        }
        if !reply.status.is_success() {
            return Err(Self::error_of(&reply));
        }
        self.check_signed(&reply)?;
        self.refund_answer(req, &reply.body)
    }
}

#[cfg(test)]
mod tests {
    use super::wire::fixture::*;
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Config, Profile};
    use crate::providers::rsa::testkeys;
    use http::{HeaderMap, HeaderValue, Method};
    use std::collections::HashMap;
    use std::time::Duration;

    const NOTIFY_URL: &str = "https://tollgate.example.com/callbacks/wechat";

    /// The `WECHATPAY_*` variables of the wire fixture's merchant, with `changes` applied
    /// (an empty value unsets the variable).
    fn vars(changes: &[(&str, &str)]) -> ProviderVars {
        let (merchant_sk, _) = testkeys::rsa_pem(0);
        let mut m: HashMap<String, String> = [
            ("CATALOG_JSON", r#"{"products":[]}"#.to_owned()),
            ("WECHATPAY_MCH_ID", MCH.into()),
            ("WECHATPAY_APP_ID", APP.into()),
            ("WECHATPAY_API_V3_KEY", V3KEY.into()),
            ("WECHATPAY_MERCHANT_SERIAL", "MERCHANTSERIAL01".into()),
            ("WECHATPAY_MERCHANT_PRIVATE_KEY", merchant_sk),
            ("WECHATPAY_PLATFORM_KEYS", platform_keys_env()),
            ("WECHATPAY_NOTIFY_URL", NOTIFY_URL.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in changes {
            m.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(Profile::Lambda, |k| m.get(k).cloned())
            .unwrap()
            .provider_vars
    }

    fn build(vars: &ProviderVars) -> Result<WechatPay, ConfigError> {
        let catalog = crate::domain::Catalog::from_json(r#"{"products":[]}"#).unwrap();
        let http = HttpClient::new(Duration::from_secs(1), Default::default()).unwrap();
        let catalog = crate::live_catalog::CatalogView::fixed(catalog);
        WechatPay::from_vars(vars, &catalog, http, Arc::new(ManualClock::at(NOW)))
    }

    fn wechat() -> WechatPay {
        build(&vars(&[])).unwrap()
    }

    #[test]
    fn configuration_names_the_bad_variable() {
        let w = wechat();
        assert_eq!((w.base_url.as_str(), w.base_path.as_str()), (API_BASE, ""));
        let shown = format!("{w:?}");
        assert!(!shown.contains(V3KEY) && !shown.contains("MII"), "{shown}");
        let w = build(&vars(&[("WECHATPAY_BASE_URL", "http://127.0.0.1:9/wx/")])).unwrap();
        assert_eq!(w.base_path, "/wx");
        for (name, value) in [
            ("WECHATPAY_MCH_ID", ""),
            ("WECHATPAY_MCH_ID", "19/00"),
            ("WECHATPAY_API_V3_KEY", "short"),
            ("WECHATPAY_MERCHANT_PRIVATE_KEY", "not a key"),
            ("WECHATPAY_PLATFORM_KEYS", "ABCDEF=not a key"),
            ("WECHATPAY_NOTIFY_URL", "http://tollgate.example.com/cb"),
            (
                "WECHATPAY_NOTIFY_URL",
                "https://tollgate.example.com/cb?x=1",
            ),
            ("WECHATPAY_BASE_URL", "ftp://api.mch.weixin.qq.com"),
        ] {
            let e = build(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(e.name, name, "{name}={value}: {e}");
            assert!(!e.to_string().contains("MII"), "{e}");
        }
    }

    #[test]
    fn channels_pick_the_trade_type() {
        let w = wechat();
        let with_openid = Payer {
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        };
        let anonymous = Payer::default();
        assert!(w.check_request(None, &anonymous).is_ok());
        assert!(w.check_request(Some("native"), &anonymous).is_ok());
        assert!(w.check_request(Some("app"), &anonymous).is_ok());
        assert!(w.check_request(Some("jsapi"), &with_openid).is_ok());
        assert!(w.check_request(Some("jsapi"), &anonymous).is_err());
        assert!(w.check_request(Some("h5"), &with_openid).is_err());
        assert_eq!(
            WechatPay::trade_type(Some("jsapi"), &with_openid),
            Ok(TradeType::Jsapi {
                openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()
            })
        );
        assert!(w.prepares_remotely() && !w.sells_store_products());
    }

    fn callback(f: &Fixture, body: Vec<u8>) -> CallbackRequest {
        let mut headers = HeaderMap::new();
        let ts = NOW.to_string();
        let sig = signed(f, &body, NOW);
        for (k, v) in [
            ("wechatpay-signature", sig.as_str()),
            ("wechatpay-timestamp", ts.as_str()),
            ("wechatpay-nonce", NONCE),
            ("wechatpay-serial", PUBKEY_ID),
            ("content-type", "application/json"),
        ] {
            headers.insert(k, HeaderValue::from_str(v).unwrap());
        }
        CallbackRequest {
            method: Method::POST,
            query: None,
            headers,
            body: body.into(),
        }
    }

    fn ours(mut resource: Value, order_id: &OrderId) -> Value {
        resource["out_trade_no"] = json!(order_id.as_str());
        resource
    }

    #[test]
    fn callbacks_become_events() {
        let (w, f) = (wechat(), fixture());
        let id = OrderId::from_parts(1_700_000_000_000, [7; 10]);
        let cny = |fen| Money::new(fen, Currency::CNY).unwrap();

        let paid = envelope(
            "TRANSACTION.SUCCESS",
            &ours(transaction(MCH, APP), &id),
            V3KEY,
        );
        assert_eq!(
            w.verify_callback(&callback(&f, paid), NOW),
            Ok(Some(ProviderEvent::Paid {
                order_id: id.clone(),
                provider_txn_id: "4200000000202401010000000001".into(),
                amount: cny(1200),
                paid_at: Some(1704081600),
            }))
        );
        let refunded = envelope("REFUND.SUCCESS", &ours(refund(MCH, "SUCCESS"), &id), V3KEY);
        assert_eq!(
            w.verify_callback(&callback(&f, refunded), NOW),
            Ok(Some(ProviderEvent::Refunded {
                order_id: id.clone(),
                provider_txn_id: "4200000000202401010000000001".into(),
                refunded: cny(500),
                order_total: cny(1200),
                refund: RefundRef::Single("50000000382019052709732678859".into()),
            }))
        );
        for (event, status) in [("REFUND.CLOSED", "CLOSED"), ("REFUND.ABNORMAL", "ABNORMAL")] {
            let body = envelope(event, &ours(refund(MCH, status), &id), V3KEY);
            assert_eq!(w.verify_callback(&callback(&f, body), NOW), Ok(None));
        }

        // Refusals carry the label and status the API answers with.
        let code = |req: &CallbackRequest| {
            let e = w.verify_callback(req, NOW).unwrap_err();
            (e.code, e.status)
        };
        let paid = envelope(
            "TRANSACTION.SUCCESS",
            &ours(transaction(MCH, APP), &id),
            V3KEY,
        );
        let mut unsigned = callback(&f, paid.clone());
        unsigned.headers.remove("wechatpay-signature");
        assert_eq!(code(&unsigned), ("malformed", StatusCode::BAD_REQUEST));
        let mut tampered = callback(&f, paid.clone());
        tampered.body = [&paid[..], b" "].concat().into();
        assert_eq!(code(&tampered), ("bad_signature", StatusCode::UNAUTHORIZED));
        assert_eq!(
            code(&callback(
                &f,
                envelope("TRANSACTION.SUCCESS", &transaction("1", APP), V3KEY)
            )),
            ("wrong_merchant", StatusCode::FORBIDDEN)
        );
        let not_ours = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let e = w.verify_callback(&callback(&f, not_ours), NOW).unwrap_err();
        assert!(e.reason.contains("out_trade_no is not ours"), "{e}");
        let mut tx = ours(transaction(MCH, APP), &id);
        tx["amount"]["currency"] = json!("USDX");
        let e = w
            .verify_callback(
                &callback(&f, envelope("TRANSACTION.SUCCESS", &tx, V3KEY)),
                NOW,
            )
            .unwrap_err();
        assert_eq!(e.code, "malformed");
    }

    #[test]
    fn callback_answers() {
        let w = wechat();
        assert_eq!(
            w.acknowledge(),
            CallbackAnswer::empty(StatusCode::NO_CONTENT)
        );
        let a = w.refuse(StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(
            (a.status, a.content_type),
            (StatusCode::SERVICE_UNAVAILABLE, Some("application/json"))
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&a.body).unwrap(),
            json!({"code": "FAIL", "message": "busy"})
        );
        // A success status would tell WeChat Pay to stop retrying.
        assert_eq!(
            w.refuse(StatusCode::OK, "x").status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    fn reply(status: u16, body: &[u8], headers: &[(&'static str, &str)]) -> HttpReply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpReply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn api_answers_must_be_signed_and_errors_are_classified() {
        let (w, f) = (wechat(), fixture());
        let body = br#"{"prepay_id":"wx1"}"#;
        let sig = signed(&f, body, NOW);
        let ts = NOW.to_string();
        let headers = [
            ("wechatpay-signature", sig.as_str()),
            ("wechatpay-timestamp", ts.as_str()),
            ("wechatpay-nonce", NONCE),
            ("wechatpay-serial", PUBKEY_ID),
        ];
        assert_eq!(w.check_signed(&reply(200, body, &headers)), Ok(()));
        for bad in [reply(200, body, &[]), reply(200, b"{}", &headers)] {
            assert!(matches!(
                w.check_signed(&bad),
                Err(ProviderError::Unavailable(m)) if m.starts_with("answer not trusted")
            ));
        }

        let not_exist = br#"{"code":"ORDER_NOT_EXIST","message":"no such order"}"#;
        assert_eq!(
            WechatPay::error_of(&reply(404, not_exist, &[])),
            ProviderError::Refused("404 ORDER_NOT_EXIST: no such order".into())
        );
        assert!(matches!(
            WechatPay::error_of(&reply(429, b"", &[])),
            ProviderError::Unavailable(m) if m == "HTTP 429"
        ));
        assert!(matches!(
            WechatPay::error_of(&reply(502, b"<html>", &[])),
            ProviderError::Unavailable(_)
        ));
    }
}

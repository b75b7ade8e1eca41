//! WeChat Pay API v3 as a Tollgate provider: configuration from the `WECHATPAY_*`
//! variables, the signed HTTP calls (prepay, query, close) and the mapping of verified
//! notifications and query answers to [`ProviderEvent`]s. The wire format itself (signing,
//! verification, decryption, request and answer shapes) is [`wire`], which does no I/O.

pub mod wire;

use std::collections::BTreeMap;
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
    PaymentCreator, ProviderError, ProviderEvent, QueryResult,
};
use crate::clock::Clock;
use crate::config::{ConfigError, ProviderVars};
use crate::domain::{Catalog, Currency, Money, Order, OrderId};
use wire::{
    notify_failure_response, parse_api_error, parse_platform_keys, PreparedRequest, PrepayRequest,
    PrepayResponse, SignatureHeaders, TradeState, TradeType, WechatConfig, API_BASE,
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
    titles: BTreeMap<String, String>,
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
        catalog: &Catalog,
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
            titles: catalog
                .products()
                .iter()
                .map(|p| (p.id.clone(), p.title.clone()))
                .collect(),
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
        let title = self
            .titles
            .get(&order.product_id)
            .unwrap_or(&order.product_id);
        let req = PrepayRequest {
            trade_type: trade_type.clone(),
            out_trade_no: order.order_id.to_string(),
            description: title.chars().take(127).collect(),
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
                Ok(Some(ProviderEvent::Refunded {
                    order_id,
                    provider_txn_id: n.provider_txn_id,
                    refunded,
                    order_total: amount,
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

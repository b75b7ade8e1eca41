//! Alipay as a Tollgate provider: its `ALIPAY_*` variables, the gateway calls (query and
//! close) and the mapping of verified notifications and answers to Tollgate's events. The
//! wire format itself (signing, verification, request and answer shapes) is [`wire`], which
//! does no I/O.

pub mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::Full;
use serde_json::json;

use self::wire::{
    AlipayConfig, CloseOutcome, Expiry, GatewayRequest, OrderRequest, QueryOutcome, RefundOutcome,
    RefundQueryOutcome, TradeStatus, GATEWAY_PROD, NOTIFY_FAILURE_BODY, NOTIFY_SUCCESS_BODY,
};
use super::notification::NotificationKind;
use super::outbound::HttpClient;
use super::rsa::{KeyError, RsaPrivateKey, RsaPublicKey};
use super::wire_error::{BuildError, VerifyError};
use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, OrderQuery, Payer,
    PaymentCreator, ProductTitles, ProviderError, ProviderEvent, QueryResult, RefundAnswer,
    RefundIssuer,
};
use crate::clock::Clock;
use crate::config::{ConfigError as EnvError, ProviderVars};
use crate::domain::refund::RefundRef;
use crate::domain::refund_request::RefundRequest;
use crate::domain::{Currency, Money, Order, OrderId};

pub const NAME: &str = "alipay";

/// Alipay's capabilities: [`PaymentCreator`], [`CallbackVerifier`], [`OrderQuery`]. Paying needs no call to Alipay: the client gets a signed
/// `alipay.trade.app.pay` order string (channel `app`, the default) or a signed gateway URL
/// (`page` for desktop, `wap` for mobile browsers).
pub struct Alipay {
    cfg: AlipayConfig,
    notify_url: String,
    return_url: Option<String>,
    titles: ProductTitles,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Alipay {
    /// The configuration's own `Debug` redacts the keys; the rest is plumbing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Alipay");
        d.field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Alipay {
    /// Reads the `ALIPAY_*` variables; a bad one stops start-up, named.
    pub fn from_vars(
        vars: &ProviderVars,
        catalog: &crate::live_catalog::CatalogView,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EnvError> {
        let named = |name: &'static str| move |e: KeyError| crate::config::err(name, e.0);
        let app_id = vars.require("ALIPAY_APP_ID")?;
        if !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::config::err("ALIPAY_APP_ID", "must be digits"));
        }
        let seller_id = vars.get("ALIPAY_SELLER_ID");
        if seller_id.is_some_and(|s| !s.bytes().all(|b| b.is_ascii_digit())) {
            return Err(crate::config::err(
                "ALIPAY_SELLER_ID",
                "must be digits (2088…)",
            ));
        }
        let private_key = vars.require("ALIPAY_APP_PRIVATE_KEY")?;
        RsaPrivateKey::from_pem_or_base64(private_key).map_err(named("ALIPAY_APP_PRIVATE_KEY"))?;
        let public_key = vars.require("ALIPAY_PUBLIC_KEY")?;
        RsaPublicKey::from_pem_or_base64(public_key).map_err(named("ALIPAY_PUBLIC_KEY"))?;
        let gateway = super::outbound::base_url(vars, "ALIPAY_GATEWAY_URL", GATEWAY_PROD)?;
        let cfg = AlipayConfig::new(app_id, seller_id, private_key, public_key)
            .map_err(named("ALIPAY_APP_ID"))?
            .with_gateway(&gateway);
        let url = |name: &'static str| -> Result<Option<String>, EnvError> {
            match vars.get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    Ok(Some(u.to_owned()))
                }
                Some(_) => Err(crate::config::err(name, "must be an http(s) URL")),
            }
        };
        let notify_url = url("ALIPAY_NOTIFY_URL")?.ok_or_else(|| {
            crate::config::err("ALIPAY_NOTIFY_URL", "required by an enabled provider")
        })?;
        Ok(Alipay {
            cfg,
            notify_url,
            return_url: url("ALIPAY_RETURN_URL")?,
            titles: ProductTitles::from_catalog(catalog),
            http,
            clock,
        })
    }

    async fn gateway(&self, req: GatewayRequest) -> Result<Bytes, ProviderError> {
        let http_req = http::Request::builder()
            .method("POST")
            .uri(&req.url)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .header(header::USER_AGENT, "tollgate")
            .body(Full::new(Bytes::from(req.form_body)))
            .map_err(|e| ProviderError::Refused(format!("building request: {e}")))?;
        let reply = self.http.send(http_req).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else if reply.status.is_client_error() && reply.status != StatusCode::TOO_MANY_REQUESTS {
            Err(ProviderError::Refused(format!(
                "HTTP {}",
                reply.status.as_u16()
            )))
        } else {
            Err(ProviderError::Unavailable(format!(
                "HTTP {}",
                reply.status.as_u16()
            )))
        }
    }
}

/// Gateway-level "service unavailable" (code 20000) is worth retrying; other codes are not.
fn gateway_error(code: &str, sub_code: Option<&str>) -> ProviderError {
    let detail = format!("code {code} {}", sub_code.unwrap_or(""));
    if code == "20000" || sub_code.is_some_and(|s| s.ends_with("SYSTEM_ERROR")) {
        ProviderError::Unavailable(detail)
    } else {
        ProviderError::Refused(detail)
    }
}

fn content_type_charset(req: &CallbackRequest) -> Option<&str> {
    req.header("content-type")?
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[async_trait::async_trait]
impl PaymentCreator for Alipay {
    fn check_request(&self, channel: Option<&str>, _payer: &Payer) -> Result<(), String> {
        match channel.unwrap_or("app") {
            "app" | "page" | "wap" => Ok(()),
            other => Err(format!(
                "channel {other:?} is not one of app, page, wap for alipay"
            )),
        }
    }

    async fn payment_params(
        &self,
        order: &Order,
        _payer: &Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        if order.amount.currency != Currency::CNY {
            return Err(ProviderError::Refused("Alipay charges CNY here".into()));
        }
        let req = OrderRequest {
            out_trade_no: order.order_id.to_string(),
            subject: self.titles.get(&order.product_id, 256),
            amount_fen: order.amount.amount,
            // The buyer can pay exactly as long as our order waits for the money.
            expiry: Some(Expiry::At(order.expires_at)),
        };
        let now = self.clock.now();
        let refused = |e: BuildError| ProviderError::Refused(e.to_string());
        let ret = self.return_url.as_deref();
        Ok(match order.channel.as_deref().unwrap_or("app") {
            "page" => {
                json!({ "pay_url": self.cfg.page_pay_url(&req, &self.notify_url, ret, now).map_err(refused)? })
            }
            "wap" => {
                json!({ "pay_url": self.cfg.wap_pay_url(&req, &self.notify_url, ret, now).map_err(refused)? })
            }
            _ => {
                json!({ "order_string": self.cfg.app_pay_order_string(&req, &self.notify_url, now).map_err(refused)? })
            }
        })
    }
}

impl CallbackVerifier for Alipay {
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        _now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let n = self
            .cfg
            .verify_notify(&req.body, content_type_charset(req))
            .map_err(CallbackRejection::from)?;
        let order_id = OrderId::parse(&n.out_trade_no).map_err(|_| {
            CallbackRejection::from(VerifyError::Malformed("out_trade_no is not ours".into()))
        })?;
        let amount = Money::new(n.amount_minor, Currency::CNY)
            .map_err(|_| CallbackRejection::from(VerifyError::Malformed("total_amount".into())))?;
        match n.kind {
            NotificationKind::Paid => Ok(Some(ProviderEvent::Paid {
                order_id,
                provider_txn_id: n.provider_txn_id,
                amount,
                paid_at: n.occurred_at,
            })),
            // TRADE_CLOSED means "closed unpaid" or "refunded"; only the latter carries a
            // refund_fee, the total refunded on the trade so far. What the refund does to
            // the order is the service's rule.
            NotificationKind::Closed => match n.refunded_minor {
                Some(refunded) => Ok(Some(ProviderEvent::Refunded {
                    order_id,
                    provider_txn_id: n.provider_txn_id,
                    refunded: Money::new(refunded, Currency::CNY).map_err(|_| {
                        CallbackRejection::from(VerifyError::Malformed("refund_fee".into()))
                    })?,
                    order_total: amount,
                    refund: RefundRef::SoFar(n.refund_id),
                })),
                None => {
                    tracing::info!(order_id = %order_id, "Alipay trade closed unpaid: acknowledged");
                    Ok(None)
                }
            },
            // WAIT_BUYER_PAY: genuine, nothing happened yet.
            NotificationKind::Pending | NotificationKind::Refunded => Ok(None),
        }
    }

    fn acknowledge(&self) -> CallbackAnswer {
        CallbackAnswer::text(StatusCode::OK, NOTIFY_SUCCESS_BODY)
    }

    fn refuse(&self, status: StatusCode, _reason: &str) -> CallbackAnswer {
        // Alipay reads only the body: anything but `success` is retried later.
        CallbackAnswer::text(status, NOTIFY_FAILURE_BODY)
    }
}

#[async_trait::async_trait]
impl OrderQuery for Alipay {
    async fn query(&self, order: &Order) -> Result<QueryResult, ProviderError> {
        let req = self
            .cfg
            .query_request(order.order_id.as_str(), self.clock.now())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(req).await?;
        let outcome = self
            .cfg
            .parse_query_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("query answer: {e}")))?;
        Ok(match outcome {
            QueryOutcome::NotExist => QueryResult::NotPaid,
            QueryOutcome::Error { code, sub_code, .. } => {
                return Err(gateway_error(&code, sub_code.as_deref()))
            }
            QueryOutcome::Found {
                status,
                out_trade_no,
                trade_no,
                total_amount_fen,
                paid_at,
                ..
            } => {
                if out_trade_no != order.order_id.as_str() {
                    return Err(ProviderError::Unavailable(
                        "query answer names another order".into(),
                    ));
                }
                match status {
                    TradeStatus::WaitBuyerPay => QueryResult::NotPaid,
                    TradeStatus::TradeClosed => QueryResult::Closed,
                    TradeStatus::TradeSuccess | TradeStatus::TradeFinished => {
                        QueryResult::Paid(ProviderEvent::Paid {
                            order_id: order.order_id.clone(),
                            provider_txn_id: trade_no,
                            amount: Money::new(total_amount_fen, Currency::CNY).map_err(|_| {
                                ProviderError::Unavailable("query answer amount".into())
                            })?,
                            paid_at,
                        })
                    }
                }
            }
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ProviderError> {
        let req = self
            .cfg
            .close_request(order.order_id.as_str(), self.clock.now())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(req).await?;
        match self
            .cfg
            .parse_close_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("close answer: {e}")))?
        {
            // Never opened by a buyer: nothing exists at Alipay that could be paid.
            CloseOutcome::Closed | CloseOutcome::NotExist => Ok(()),
            CloseOutcome::Error { code, sub_code, .. } => {
                Err(gateway_error(&code, sub_code.as_deref()))
            }
        }
    }
}

/// A refund of `req` that Alipay confirmed: counted once by its `out_request_no`, which
/// Alipay's refund notification names too (`out_biz_no`), so the notification's running
/// total adds nothing more.
fn refunded(req: &RefundRequest, fen: i64) -> Result<RefundAnswer, ProviderError> {
    Ok(RefundAnswer::Confirmed {
        refunded: Money::new(fen, Currency::CNY)
            .map_err(|_| ProviderError::Unavailable("refund amount".into()))?,
        refund: RefundRef::Single(req.out_refund_no.clone()),
        provider_refund_id: None,
    })
}

/// An error answer to a refund call: worth retrying when Alipay says so, otherwise its
/// refusal of this refund.
fn refund_error(code: &str, sub_code: Option<&str>) -> Result<RefundAnswer, ProviderError> {
    match gateway_error(code, sub_code) {
        ProviderError::Refused(_) => Ok(RefundAnswer::Failed {
            code: sub_code.unwrap_or(code).to_owned(),
        }),
        unavailable => Err(unavailable),
    }
}

#[async_trait::async_trait]
impl RefundIssuer for Alipay {
    async fn refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        let call = self
            .cfg
            .refund_request(
                order.order_id.as_str(),
                &req.out_refund_no,
                req.amount,
                &req.reason,
                self.clock.now(),
            )
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(call).await?;
        match self
            .cfg
            .parse_refund_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("refund answer: {e}")))?
        {
            // Alipay refunds synchronously: success is the money back (`fund_change` N means
            // an earlier call with this out_request_no moved it).
            RefundOutcome::Refunded { .. } => refunded(req, req.amount),
            RefundOutcome::Error { code, sub_code } => refund_error(&code, sub_code.as_deref()),
        }
    }

    async fn query_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ProviderError> {
        let call = self
            .cfg
            .refund_query_request(
                order.order_id.as_str(),
                &req.out_refund_no,
                self.clock.now(),
            )
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(call).await?;
        match self
            .cfg
            .parse_refund_query_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("refund query answer: {e}")))?
        {
            RefundQueryOutcome::Refunded { refund_amount_fen } => refunded(req, refund_amount_fen),
            RefundQueryOutcome::NotRefunded => Ok(RefundAnswer::Unknown),
            RefundQueryOutcome::Error { code, sub_code } => {
                Err(gateway_error(&code, sub_code.as_deref()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire::testing::{base_params, fx, notify_body, with, APP_ID, SELLER};
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Config, Profile};
    use crate::providers::china_time::format_cst_datetime;
    use crate::providers::rsa::testkeys;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};
    use std::collections::BTreeMap;
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;
    /// An order id of ours (a ULID), as `out_trade_no`.
    const ORDER_ID: &str = "01JQ5ZK8M7D2Q4R5S6T7V8W9X0";
    const CATALOG: &str = r#"{"products":[{"id":"ticket","title":"Concert ticket","kind":"credits","credits":1,"price":{"amount":1200,"currency":"CNY"}}],"streams":[]}"#;

    fn vars(set: &[(&str, &str)]) -> Result<ProviderVars, EnvError> {
        let (app_sk, _) = testkeys::rsa_pem(0);
        let (_, ali_pk) = testkeys::rsa_pem(2);
        let mut all: BTreeMap<String, String> = [
            ("CATALOG_JSON", CATALOG),
            ("ALIPAY_APP_ID", APP_ID),
            ("ALIPAY_SELLER_ID", SELLER),
            ("ALIPAY_APP_PRIVATE_KEY", app_sk.as_str()),
            ("ALIPAY_PUBLIC_KEY", ali_pk.as_str()),
            (
                "ALIPAY_NOTIFY_URL",
                "https://api.example.com/callbacks/alipay",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in set {
            all.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(Profile::Lambda, |k| all.get(k).cloned()).map(|c| c.provider_vars)
    }

    fn build(set: &[(&str, &str)]) -> Result<Alipay, EnvError> {
        Alipay::from_vars(
            &vars(set)?,
            &crate::live_catalog::CatalogView::fixed(
                crate::domain::Catalog::from_json(CATALOG).unwrap(),
            ),
            HttpClient::new(Duration::from_secs(1), Default::default()).unwrap(),
            Arc::new(ManualClock::at(NOW)),
        )
    }

    fn order(channel: Option<&str>, amount: Money) -> Order {
        let catalog = crate::domain::Catalog::from_json(CATALOG).unwrap();
        let offer = catalog.offer("ticket", None, NOW).unwrap();
        let id = OrderId::parse(ORDER_ID).unwrap();
        let channel = channel.map(str::to_owned);
        Order {
            amount,
            ..Order::pending(id, "u1", &offer, NAME, channel, NOW, NOW + 900)
        }
    }

    fn cny(fen: i64) -> Money {
        Money::new(fen, Currency::CNY).unwrap()
    }

    fn callback(body: Vec<u8>, content_type: &str) -> CallbackRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        CallbackRequest {
            method: Method::POST,
            query: None,
            headers,
            body: Bytes::from(body),
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn a_bad_variable_is_named() {
        assert!(build(&[]).is_ok());
        for (name, value) in [
            ("ALIPAY_APP_ID", "20210011x"),
            ("ALIPAY_SELLER_ID", "2088-1"),
            ("ALIPAY_APP_PRIVATE_KEY", "not a key"),
            ("ALIPAY_PUBLIC_KEY", "not a key"),
            ("ALIPAY_GATEWAY_URL", "ftp://gateway"),
            ("ALIPAY_NOTIFY_URL", "/callbacks/alipay"),
            ("ALIPAY_RETURN_URL", "example.com"),
        ] {
            let e = build(&[(name, value)]).unwrap_err();
            assert_eq!(e.name, name, "{value}");
        }
        let e = build(&[("ALIPAY_NOTIFY_URL", " ")]).unwrap_err();
        assert_eq!(e.name, "ALIPAY_NOTIFY_URL");
        let shown = format!("{:?}", build(&[]).unwrap());
        assert!(shown.contains(APP_ID) && !shown.contains("MII"), "{shown}");
    }

    #[test]
    fn channels() {
        let a = build(&[]).unwrap();
        for ok in [None, Some("app"), Some("page"), Some("wap")] {
            assert!(a.check_request(ok, &Payer::default()).is_ok(), "{ok:?}");
        }
        assert!(a.check_request(Some("native"), &Payer::default()).is_err());
    }

    fn params(q: &str) -> BTreeMap<String, String> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    #[tokio::test]
    async fn payment_params_per_channel() {
        let a = build(&[("ALIPAY_RETURN_URL", "https://app.example.com/paid")]).unwrap();
        let o = order(None, cny(1200));
        let p = a.payment_params(&o, &Payer::default()).await.unwrap();
        let q = params(p["order_string"].as_str().unwrap());
        assert_eq!(q["method"], "alipay.trade.app.pay");
        assert_eq!(q["notify_url"], "https://api.example.com/callbacks/alipay");
        assert_eq!(q["timestamp"], format_cst_datetime(NOW).unwrap());
        let biz: serde_json::Value = serde_json::from_str(&q["biz_content"]).unwrap();
        assert_eq!(biz["out_trade_no"], o.order_id.as_str());
        assert_eq!(biz["subject"], "Concert ticket");
        assert_eq!(biz["total_amount"], "12.00");
        assert_eq!(
            biz["time_expire"],
            format_cst_datetime(o.expires_at).unwrap()
        );

        for (channel, method) in [
            ("page", "alipay.trade.page.pay"),
            ("wap", "alipay.trade.wap.pay"),
        ] {
            let p = a
                .payment_params(&order(Some(channel), cny(1200)), &Payer::default())
                .await
                .unwrap();
            let url = p["pay_url"].as_str().unwrap();
            let (gateway, query) = url.split_once('?').unwrap();
            assert_eq!(gateway, GATEWAY_PROD);
            let q = params(query);
            assert_eq!(q["method"], method);
            assert_eq!(q["return_url"], "https://app.example.com/paid");
        }

        let usd = Money::new(1200, Currency::parse("USD").unwrap()).unwrap();
        assert!(matches!(
            a.payment_params(&order(None, usd), &Payer::default()).await,
            Err(ProviderError::Refused(_))
        ));
    }

    /// A notification for our order `id`, signed with the key that plays Alipay's.
    fn notification(params: Vec<(&'static str, &'static str)>, id: &'static str) -> Vec<u8> {
        notify_body(&fx(), &with(params, "out_trade_no", id), encoding_rs::UTF_8)
    }

    #[test]
    fn notifications_become_events() {
        let a = build(&[]).unwrap();
        let id = ORDER_ID;
        let order_id = OrderId::parse(id).unwrap();
        let verify = |body: Vec<u8>| a.verify_callback(&callback(body, FORM), NOW);

        let paid = verify(notification(base_params(), id)).unwrap();
        assert_eq!(
            paid,
            Some(ProviderEvent::Paid {
                order_id: order_id.clone(),
                provider_txn_id: "2020032522001456380542497258".into(),
                amount: cny(1200),
                paid_at: crate::providers::china_time::parse_cst_datetime("2020-03-25 10:59:38"),
            })
        );

        let closed = with(base_params(), "trade_status", "TRADE_CLOSED");
        let refunded = with(closed.clone(), "refund_fee", "5.00");
        assert_eq!(
            verify(notification(refunded, id)).unwrap(),
            Some(ProviderEvent::Refunded {
                order_id,
                provider_txn_id: "2020032522001456380542497258".into(),
                refunded: cny(500),
                order_total: cny(1200),
                refund: RefundRef::SoFar(None),
            })
        );
        assert_eq!(verify(notification(closed, id)).unwrap(), None);
        let waiting = with(base_params(), "trade_status", "WAIT_BUYER_PAY");
        assert_eq!(verify(notification(waiting, id)).unwrap(), None);
    }

    #[test]
    fn refusals_carry_their_label_and_status() {
        let a = build(&[]).unwrap();
        let verify = |body: Vec<u8>| a.verify_callback(&callback(body, FORM), NOW).unwrap_err();

        // Genuine, but not an order id of ours.
        let e = verify(notify_body(&fx(), &base_params(), encoding_rs::UTF_8));
        assert_eq!((e.code, e.status), ("malformed", StatusCode::BAD_REQUEST));

        let mut tampered = notification(base_params(), ORDER_ID);
        tampered.extend_from_slice(b"&extra=1");
        let e = verify(tampered);
        assert_eq!(
            (e.code, e.status),
            ("bad_signature", StatusCode::UNAUTHORIZED)
        );

        let other_app = with(base_params(), "app_id", "2021000000000000");
        let e = verify(notification(other_app, ORDER_ID));
        assert_eq!((e.code, e.status), ("wrong_app", StatusCode::FORBIDDEN));
    }

    #[test]
    fn the_content_type_charset_is_used_when_the_form_names_none() {
        let a = build(&[]).unwrap();
        let p = with(
            with(
                with(base_params(), "charset", ""),
                "subject",
                "直播门票 + 回放",
            ),
            "out_trade_no",
            ORDER_ID,
        );
        let body = notify_body(&fx(), &p, encoding_rs::GBK);
        let gbk = callback(
            body.clone(),
            "application/x-www-form-urlencoded; Charset=\"GBK\"",
        );
        assert!(a.verify_callback(&gbk, NOW).unwrap().is_some());
        let utf8 = callback(body, FORM);
        assert_eq!(a.verify_callback(&utf8, NOW).unwrap_err().code, "malformed");
        assert_eq!(
            content_type_charset(&callback(Vec::new(), "text/plain")),
            None
        );
    }

    #[test]
    fn answers_are_the_bodies_alipay_reads() {
        let a = build(&[]).unwrap();
        let ok = a.acknowledge();
        assert_eq!((ok.status, &ok.body[..]), (StatusCode::OK, &b"success"[..]));
        let no = a.refuse(StatusCode::SERVICE_UNAVAILABLE, "store down");
        assert_eq!(
            (no.status, &no.body[..]),
            (StatusCode::SERVICE_UNAVAILABLE, &b"failure"[..])
        );
    }

    #[test]
    fn gateway_errors_worth_retrying() {
        assert!(matches!(
            gateway_error("20000", None),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            gateway_error("40004", Some("ACQ.SYSTEM_ERROR")),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            gateway_error("40002", Some("isv.invalid-app-id")),
            ProviderError::Refused(_)
        ));
    }
}

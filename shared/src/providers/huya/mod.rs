//! Huya mini-program purchases as a Tollgate provider: its `HUYA_*` variables, the catalog
//! mapping of a verified purchase to a [`Sale`], and the [`CallbackVerifier`]. The wire format
//! (fields, `authorization`, GET and POST, the timestamp window) is [`wire`].
//!
//! From Huya's documentation ("小程序内购技术接入说明",
//! <https://hd.huya.com/h5/hy-open-doc/miniapp/pay/dev>):
//! - The buyer is a streamer (`profileId` is the streamer's unionId). Prepaid goods
//!   ("直接付费(预付费购买)") have one price per validity period, in days, set in Huya's
//!   developer center; `expenseLevel` names the level bought. Goods billed monthly on gift
//!   revenue ("礼物收益付费") are not handled here.
//! - Huya sells through its own panel (`hyExt.revenue.popupGoodsBuyPanel`, or the one
//!   `checkStreamerCanUseGoods` opens when `isCanUse` is false), so there is nothing to
//!   prepare, query or close: the callback itself is the sale.
//! - The mini-program can ask Huya itself: `hyExt.revenue.checkStreamerGoodsExpire({goodsUuid})`
//!   resolves `{expire, hadBuy}`, `expire` being the expiry timestamp of the streamer's goods
//!   and -1 when never bought. Tollgate's grant does not read it: its length comes from the
//!   catalog plan the `expenseLevel` maps to.
//! - The callback carries no amount: the price is the catalog's, keyed by (`goodsUuid`,
//!   `expenseLevel`) through `store_ids.huya`.

pub mod wire;

use std::collections::BTreeMap;
use std::fmt;

use http::{Method, StatusCode};
use sha2::Sha256;

use self::wire::{callback_failure_response, callback_success_response, HuyaConfig, HuyaPurchase};
use super::wire_error::VerifyError;
use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, ProviderEvent, Sale,
};
use crate::config::{ConfigError as EnvError, ProviderVars};
use crate::domain::{Catalog, Money, OrderId};
use crate::live_catalog::CatalogView;

pub const NAME: &str = "huya";

/// What one Huya `goodsUuid` sells: `expenseLevel` → (plan, price).
#[derive(Debug, Clone)]
struct Goods {
    product_id: String,
    /// Empty for a product without plans: any level buys the product itself.
    levels: BTreeMap<String, (Option<String>, Money)>,
    product_price: Option<Money>,
}

/// Huya's mini-program purchases: a [`CallbackVerifier`] only (see the module docs).
pub struct Huya {
    cfg: HuyaConfig,
    /// Read at each callback, so a new catalog's prices apply from the moment it is in force.
    catalog: CatalogView,
}

impl Goods {
    /// What `goods_uuid` sells in `catalog`, if anything.
    fn find(catalog: &Catalog, goods_uuid: &str) -> Option<Goods> {
        catalog.products().iter().find_map(|p| {
            let h = p
                .store_ids
                .huya
                .as_ref()
                .filter(|h| h.goods_uuid == goods_uuid)?;
            let mut levels = BTreeMap::new();
            for (level, plan_id) in &h.levels {
                if let Some(plan) = p.plans.iter().find(|pl| &pl.id == plan_id) {
                    levels.insert(level.clone(), (Some(plan.id.clone()), plan.price));
                }
            }
            Some(Goods {
                product_id: p.id.clone(),
                levels,
                product_price: p.price.filter(|_| p.plans.is_empty()),
            })
        })
    }
}

impl fmt::Debug for Huya {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Huya")
            .field("cfg", &self.cfg)
            .field("catalog", &self.catalog)
            .finish()
    }
}

impl Huya {
    /// Reads the `HUYA_*` variables; a bad one stops start-up, named.
    pub fn from_vars(vars: &ProviderVars, catalog: &CatalogView) -> Result<Self, EnvError> {
        let app_id = vars.require("HUYA_APP_ID")?;
        let secret = vars.require("HUYA_EXT_SECRET")?;
        let uuids: Vec<&str> = vars
            .require("HUYA_EXT_UUID")?
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let mut cfg = HuyaConfig::new(app_id, secret, &uuids)
            .map_err(|e| crate::config::err("HUYA_EXT_UUID", e.0))?;
        if let Some(v) = vars.get("HUYA_MAX_SKEW_SECONDS") {
            cfg.max_skew_secs = v
                .parse()
                .ok()
                .filter(|n| (1..=86_400).contains(n))
                .ok_or_else(|| {
                    crate::config::err("HUYA_MAX_SKEW_SECONDS", "must be an integer in 1..=86400")
                })?;
        }
        Ok(Huya {
            cfg,
            catalog: catalog.clone(),
        })
    }

    fn sale(&self, p: HuyaPurchase) -> Result<Sale, CallbackRejection> {
        let unknown = |what: String| CallbackRejection {
            code: "unknown_goods",
            reason: what,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        };
        let goods = Goods::find(&self.catalog.current(), &p.goods_uuid).ok_or_else(|| {
            unknown(format!(
                "goodsUuid {:?} is not in the catalog",
                clip(&p.goods_uuid)
            ))
        })?;
        let (plan_id, amount) = match (goods.levels.get(&p.expense_level), goods.product_price) {
            (Some((plan, price)), _) => (plan.clone(), *price),
            (None, Some(price)) if goods.levels.is_empty() => (None, price),
            _ => {
                return Err(unknown(format!(
                    "expenseLevel {:?} of goodsUuid {:?} is not in the catalog",
                    clip(&p.expense_level),
                    clip(&p.goods_uuid)
                )))
            }
        };
        let id_ok = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        };
        if !id_ok(&p.order_id) || !id_ok(&p.profile_id) {
            return Err(CallbackRejection::from(VerifyError::Malformed(
                "orderId and profileId must be 1-64 printable characters without '#'".into(),
            )));
        }
        Ok(Sale {
            order_id: order_id_for(&p.order_id, p.order_time),
            user_id: format!("huya:{}", p.profile_id),
            product_id: goods.product_id.clone(),
            plan_id,
            provider_txn_id: p.order_id,
            amount,
            paid_at: p.order_time,
        })
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Our order id for a Huya order: a ULID stamped with the order time whose random part is a
/// hash of Huya's orderId, so every retry of the callback names the same order.
pub fn order_id_for(huya_order_id: &str, order_time: i64) -> OrderId {
    use sha2::Digest;
    let h = Sha256::digest(format!("huya#{huya_order_id}").as_bytes());
    let mut r = [0u8; 10];
    r.copy_from_slice(&h[..10]);
    OrderId::from_parts((order_time.max(0) as u64).saturating_mul(1000), r)
}

/// Huya's answers are JSON. `callback_failure_response` clamps its status to 4xx/5xx, so
/// the fallback is never taken.
fn json_answer((status, body): (u16, String)) -> CallbackAnswer {
    CallbackAnswer {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        content_type: Some("application/json"),
        body: body.into(),
    }
}

impl CallbackVerifier for Huya {
    fn accepts_get(&self) -> bool {
        true
    }

    /// An MD5 of a few hundred bytes (and a catalog lookup): about two microseconds.
    fn cheap_to_verify(&self) -> bool {
        true
    }

    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let auth = req.header("authorization").unwrap_or("");
        let purchase = if req.method == Method::GET {
            self.cfg
                .verify_get(auth, req.query.as_deref().unwrap_or(""), now)
        } else {
            self.cfg.verify_post(auth, &req.body, now)
        }
        .map_err(CallbackRejection::from)?;
        Ok(Some(ProviderEvent::Sold(self.sale(purchase)?)))
    }

    fn acknowledge(&self) -> CallbackAnswer {
        json_answer(callback_success_response())
    }

    fn refuse(&self, status: StatusCode, reason: &str) -> CallbackAnswer {
        json_answer(callback_failure_response(status.as_u16(), reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Profile};
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    /// 2023-11-15 06:13:20 in China: NOW.
    const ORDER_TIME: &str = "20231115061320";
    const CATALOG: &str = r#"{"products":[
        {"id":"pass","title":"Pass","kind":"pass","grants":["channel:main"],
         "plans":[{"id":"7d","days":7,"price":{"amount":900,"currency":"CNY"}},
                  {"id":"30d","days":30,"price":{"amount":3000,"currency":"CNY"}}],
         "store_ids":{"huya":{"goods_uuid":"g-pass","levels":{"1":"7d","2":"30d"}}}},
        {"id":"coins","title":"Coins","kind":"credits","credits":100,
         "price":{"amount":600,"currency":"CNY"},
         "store_ids":{"huya":{"goods_uuid":"g-coins"}}}],"streams":[]}"#;

    fn build(set: &[(&str, &str)]) -> Result<Huya, EnvError> {
        let mut all: BTreeMap<&str, &str> = BTreeMap::from([
            ("CATALOG_JSON", CATALOG),
            ("HUYA_APP_ID", "hyapp123"),
            ("HUYA_EXT_SECRET", "s3cr3t-ext"),
            ("HUYA_EXT_UUID", " ext_other , ext_abc "),
        ]);
        all.extend(set.iter().copied());
        let vars = Config::from_lookup(Profile::Lambda, |k| all.get(k).map(|v| v.to_string()))?
            .provider_vars;
        Huya::from_vars(
            &vars,
            &CatalogView::fixed(Catalog::from_json(CATALOG).unwrap()),
        )
    }

    fn body(goods: &str, level: &str, order_id: &str, ts: i64) -> String {
        json!({
            "goodsUuid": goods, "orderTime": ORDER_TIME, "orderId": order_id,
            "extUuid": "ext_abc", "profileId": "streamer-1", "expenseLevel": level,
            "timestamp": ts.to_string(),
        })
        .to_string()
    }

    fn post(h: &Huya, body: &str, ts: i64) -> CallbackRequest {
        let auth = h
            .cfg
            .compute_authorization(&ts.to_string(), body.as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        CallbackRequest {
            method: Method::POST,
            query: None,
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn sale(h: &Huya, goods: &str, level: &str, order_id: &str) -> Result<Sale, CallbackRejection> {
        let req = post(h, &body(goods, level, order_id, NOW), NOW);
        match h.verify_callback(&req, NOW)? {
            Some(ProviderEvent::Sold(s)) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    fn cny(fen: i64) -> Money {
        Money::new(fen, crate::domain::Currency::CNY).unwrap()
    }

    #[test]
    fn a_bad_variable_is_named() {
        assert!(build(&[]).is_ok());
        for (name, value) in [
            ("HUYA_APP_ID", " "),
            ("HUYA_EXT_SECRET", ""),
            ("HUYA_EXT_UUID", " , "),
            ("HUYA_MAX_SKEW_SECONDS", "0"),
            ("HUYA_MAX_SKEW_SECONDS", "86401"),
            ("HUYA_MAX_SKEW_SECONDS", "5m"),
        ] {
            assert_eq!(build(&[(name, value)]).unwrap_err().name, name, "{value:?}");
        }
        let shown = format!("{:?}", build(&[]).unwrap());
        assert!(
            shown.contains("hyapp123") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn a_level_buys_its_plan_at_the_catalog_price() {
        let h = build(&[]).unwrap();
        let s = sale(&h, "g-pass", "2", "HY-1").unwrap();
        assert_eq!(
            s,
            Sale {
                order_id: order_id_for("HY-1", NOW),
                user_id: "huya:streamer-1".into(),
                product_id: "pass".into(),
                plan_id: Some("30d".into()),
                provider_txn_id: "HY-1".into(),
                amount: cny(3000),
                paid_at: NOW,
            }
        );
        assert_eq!(sale(&h, "g-pass", "1", "HY-2").unwrap().amount, cny(900));
        // A product without plans: any level buys the product.
        let s = sale(&h, "g-coins", "9", "HY-3").unwrap();
        assert_eq!((s.plan_id, s.amount), (None, cny(600)));
    }

    #[test]
    fn what_the_catalog_does_not_sell_is_refused() {
        let h = build(&[]).unwrap();
        for (goods, level) in [("g-pass", "3"), ("g-other", "1")] {
            let e = sale(&h, goods, level, "HY-1").unwrap_err();
            assert_eq!(
                (e.code, e.status),
                ("unknown_goods", StatusCode::UNPROCESSABLE_ENTITY),
                "{goods} {level}"
            );
        }
        let long = "x".repeat(65);
        for bad_id in ["HY#1", "HY 1", long.as_str()] {
            let e = sale(&h, "g-pass", "1", bad_id).unwrap_err();
            assert_eq!((e.code, e.status), ("malformed", StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn order_ids_are_stable_per_huya_order() {
        let a = order_id_for("HY-1", NOW);
        assert_eq!(a, order_id_for("HY-1", NOW));
        assert_ne!(a, order_id_for("HY-2", NOW));
        let b = order_id_for("HY-1", NOW + 1);
        assert_ne!(a, b);
        assert!(a.as_str() < b.as_str(), "stamped with the order time");
    }

    #[test]
    fn get_callbacks_and_refusals() {
        let h = build(&[("HUYA_MAX_SKEW_SECONDS", "60")]).unwrap();
        assert!(h.accepts_get());
        let fields = [
            ("goodsUuid", "g-pass"),
            ("orderTime", ORDER_TIME),
            ("orderId", "HY-9"),
            ("extUuid", "ext_abc"),
            ("profileId", "streamer-1"),
            ("expenseLevel", "1"),
            ("timestamp", "1700000000"),
        ];
        let data = json!(fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>());
        // serde_json's map sorts its keys: this is the alphabetical `data`.
        let auth = h
            .cfg
            .compute_authorization("1700000000", data.to_string().as_bytes());
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let req = CallbackRequest {
            method: Method::GET,
            query: Some(query),
            headers,
            body: Bytes::new(),
        };
        assert!(matches!(
            h.verify_callback(&req, NOW),
            Ok(Some(ProviderEvent::Sold(Sale {
                plan_id: Some(_),
                ..
            })))
        ));
        let e = h.verify_callback(&req, NOW + 61).unwrap_err();
        assert_eq!(
            (e.code, e.status),
            ("stale_timestamp", StatusCode::UNAUTHORIZED)
        );

        let mut unsigned = req.clone();
        unsigned.headers.clear();
        let e = h.verify_callback(&unsigned, NOW).unwrap_err();
        assert_eq!(
            (e.code, e.status),
            ("bad_signature", StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn answers_are_json() {
        let h = build(&[]).unwrap();
        let ok = h.acknowledge();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.content_type, Some("application/json"));
        assert_eq!(&ok.body[..], br#"{"code":0,"msg":"success"}"#);
        let no = h.refuse(StatusCode::SERVICE_UNAVAILABLE, "busy");
        assert_eq!(no.status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_slice(&no.body).unwrap();
        assert_eq!(v, json!({"code": 503, "msg": "busy"}));
    }
}

//! The end of the soak: Tollgate's records against what the fake providers recorded as
//! paid and refunded (never against Tollgate's own view). Each breach is one line.

use super::process::Process;
use super::provider::{FakeWechatPay, Notice, TradeState};
use super::{Bought, HUYA_PROFILES};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tollgate::domain::stats::{days_between, StatsZone};
use tollgate::domain::{OrderId, OrderState};
use tollgate::store::Store;

/// Answers the soak expects under faults: success, the store or provider unavailable
/// (502/503), a refund notice ahead of its payment (409, redelivered), no entitlement
/// (402), a concurrent tap finding the order moved on (409).
pub fn expected_status(key: &str) -> bool {
    let Some((what, status)) = key.split_once(':') else {
        return false;
    };
    let status: u16 = status.parse().unwrap_or(0);
    match what {
        "create" => matches!(status, 200 | 201 | 502 | 503),
        "callback" => matches!(status, 200 | 204 | 409 | 503),
        "confirm" => matches!(status, 202 | 503),
        "cancel" => matches!(status, 200 | 409 | 502 | 503),
        "entitlements" => matches!(status, 200 | 503),
        "token" => matches!(status, 201 | 402 | 503),
        _ => false,
    }
}

pub async fn check(
    store: &Arc<dyn Store>,
    process: &Process,
    wechat: &FakeWechatPay,
    bought: &HashMap<String, Bought>,
    users: &[String],
    now: i64,
    outbox: &std::collections::BTreeMap<u64, Notice>,
) -> Vec<String> {
    let mut breaches = Vec::new();
    let mut fail = |s: String| breaches.push(s);
    if !outbox.is_empty() {
        fail(format!(
            "{} notification(s) never acknowledged",
            outbox.len()
        ));
    }
    if !process.queue.is_empty() {
        fail(format!(
            "{} job(s) still queued after the drain",
            process.queue.len()
        ));
    }
    for (body, reason) in process.queue.dead_letters() {
        fail(format!("job dead-lettered: {body}: {reason}"));
    }
    for shard in 0..tollgate::domain::Order::DUE_SHARDS {
        match store.due_orders(shard, i64::MAX, 100).await {
            Ok(v) if v.is_empty() => {}
            Ok(v) => fail(format!("shard {shard}: {} order(s) still due", v.len())),
            Err(e) => fail(format!("due index unreadable: {e}")),
        }
    }
    let (trades, huya) = {
        let l = wechat.ledger.lock().unwrap();
        (l.trades.clone(), l.huya.clone())
    };

    // Per order: WeChat Pay's record decides.
    // user → (scope, order, revoked) expected; user → coins expected.
    let mut grants: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    let mut coins: BTreeMap<String, i64> = BTreeMap::new();
    let (mut paid_count, mut refunded_count, mut revenue) = (0i64, 0i64, 0i64);
    for (id, t) in &trades {
        let order = match OrderId::parse(id) {
            Ok(oid) => match store.get_order(&oid).await {
                Ok(o) => o,
                Err(e) => {
                    fail(format!("{id}: unreadable: {e}"));
                    continue;
                }
            },
            Err(_) => {
                fail(format!(
                    "{id}: WeChat Pay holds a trade that is no order id"
                ));
                continue;
            }
        };
        if t.state != TradeState::Success {
            if let Some(o) =
                order.filter(|o| matches!(o.state, OrderState::Paid | OrderState::Refunded))
            {
                fail(format!(
                    "{id}: {} without a payment at WeChat Pay",
                    o.state.as_str()
                ));
            }
            continue;
        }
        paid_count += 1;
        revenue += t.total;
        let Some(o) = order else {
            fail(format!("{id}: paid at WeChat Pay, unknown to Tollgate"));
            continue;
        };
        let Some(b) = bought.get(id) else {
            fail(format!(
                "{id}: paid at WeChat Pay but never handed to a customer"
            ));
            continue;
        };
        let full = t.refunded() == t.total;
        let want = if full {
            OrderState::Refunded
        } else {
            OrderState::Paid
        };
        if o.state != want {
            fail(format!(
                "{id}: {} at WeChat Pay (refunded {} of {}), {} in Tollgate",
                if full { "refunded" } else { "paid" },
                t.refunded(),
                t.total,
                o.state.as_str()
            ));
        }
        if full {
            refunded_count += 1;
        }
        if o.provider_txn_id != t.txn {
            fail(format!(
                "{id}: paid by {:?}, Tollgate says {:?}",
                t.txn, o.provider_txn_id
            ));
        }
        if o.refunded_amount != t.refunded() {
            fail(format!(
                "{id}: refunded {} at WeChat Pay, {} counted",
                t.refunded(),
                o.refunded_amount
            ));
        }
        for s in &b.scopes {
            grants
                .entry(b.user.clone())
                .or_default()
                .push((s.clone(), id.clone(), full));
        }
        if !full {
            *coins.entry(b.user.clone()).or_default() += b.credits;
        }
    }

    // Huya sales: one paid order each, its grant and coins once.
    for sale in &huya {
        paid_count += 1;
        let user = format!("huya:{}", sale.profile);
        match (sale.goods.as_str(), sale.level.as_str()) {
            ("hy-pass", level) => {
                revenue += if level == "1" { 900 } else { 3000 };
                grants.entry(user).or_default().push((
                    "channel:main".into(),
                    format!("huya {}", sale.order_id),
                    false,
                ));
            }
            _ => {
                revenue += 600;
                *coins.entry(user).or_default() += 100;
            }
        }
    }

    // Every user's grants and coins: exactly those, once.
    let everyone = users
        .iter()
        .cloned()
        .chain((0..HUYA_PROFILES).map(|p| format!("huya:p{p}")));
    for user in everyone {
        let items = match store.user_items(&user).await {
            Ok(i) => i,
            Err(e) => {
                fail(format!("{user}: unreadable: {e}"));
                continue;
            }
        };
        let mut want = grants.remove(&user).unwrap_or_default();
        let mut got: Vec<(String, String, bool)> = items
            .grants
            .iter()
            .map(|g| (g.scope.clone(), g.source_id.clone(), g.revoked_at.is_some()))
            .collect();
        if user.starts_with("huya:") {
            // Huya orders are created by the callback: their ids are Tollgate's own.
            let n = |v: &[(String, String, bool)]| v.iter().filter(|g| !g.2).count();
            if got.len() != want.len() || n(&got) != n(&want) {
                fail(format!(
                    "{user}: {} Huya pass sale(s), {} grant(s)",
                    want.len(),
                    got.len()
                ));
            }
        } else {
            want.sort();
            got.sort();
            if got != want {
                fail(format!(
                    "{user}: grants {got:?}, WeChat Pay's record says {want:?}"
                ));
            }
        }
        let c = coins.get(&user).copied().unwrap_or(0);
        if items.credits != c {
            fail(format!(
                "{user}: {} coins, the payments say {c}",
                items.credits
            ));
        }
    }

    // The day counters: every payment counted once, every full refund once.
    let zone = StatsZone::default();
    let days = days_between(&zone.day_of(super::T0), &zone.day_of(now), 400).unwrap_or_default();
    match store.day_records(&days).await {
        Ok(records) => {
            let paid: i64 = records.iter().map(|r| r.count("orders_paid")).sum();
            let refunds: i64 = records.iter().map(|r| r.count("refunds")).sum();
            let cny: i64 = records.iter().map(|r| r.count("revenue_CNY")).sum();
            if paid != paid_count {
                fail(format!(
                    "{paid} payments counted, the providers recorded {paid_count}"
                ));
            }
            if refunds != refunded_count {
                fail(format!(
                    "{refunds} refunds counted, WeChat Pay refunded {refunded_count} in full"
                ));
            }
            if cny != revenue {
                fail(format!(
                    "revenue {cny} counted, the providers took {revenue}"
                ));
            }
        }
        Err(e) => fail(format!("day records unreadable: {e}")),
    }
    breaches
}

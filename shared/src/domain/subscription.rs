//! What one App Store or Google Play message changed about a store subscription: the
//! events (`subscription.renewed`, `.expired`, `.grace_period`, `.revoked`, `.restored`) and the day's
//! figures (starts, renewals at the price the store reported, cancellations, expirations,
//! refunds) it adds. Both are derived here from the record as read and the record about to
//! be written, and the store writes them in the very write that replaces the one with the
//! other, conditioned on the record still being the one read: a message applied twice, or
//! twenty copies at once, count and tell once.
//!
//! Event ids name the change: a renewal by the store's transaction (Apple's transaction id,
//! Play's order id), a state change by the record version it left (`last_event_at`), so a
//! retried write names the same events.

use super::event::{event_id, Event, EventType};
use super::money::{Currency, Money};
use super::purchase::PurchaseState;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The parts of a purchase record a change is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub state: PurchaseState,
    /// The store's transaction (Apple) or order (Play) id of the period paid last.
    pub last_txn_id: Option<&'a str>,
    /// The record's ordering guard (ms): names the version.
    pub last_event_at: i64,
    pub expires_at: Option<i64>,
}

/// What the store said beside the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// "apple" or "google".
    pub store: &'a str,
    /// The grant source the purchase writes (`apple:<otid>`, `google:<hash>`): how the
    /// app's backend recognises it; never the Play token itself.
    pub source_id: &'a str,
    pub user_id: &'a str,
    pub product_id: &'a str,
    /// What the store reported the latest period was sold for, when it reports a price.
    pub price: Option<Money>,
    /// The buyer turned auto-renew off (Apple's `AUTO_RENEW_DISABLED`; Play reports it as
    /// the state `canceled`).
    pub auto_renew_off: bool,
    /// When Tollgate records the change (unix s): the events' time and the figures' day.
    pub at: i64,
}

/// The events and counters of one purchase write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurchaseChange {
    /// `last_event_at` of the record the change was decided on; `None`: there was none.
    /// The write is conditioned on it.
    pub read: Option<i64>,
    pub events: Vec<Event>,
    /// Counter name → amount, added on the day of `counted_at` (in the operator's zone).
    pub counts: Vec<(String, i64)>,
    pub counted_at: i64,
}

/// Counter names (each kept in total, per product and per provider, as every figure).
pub const STARTS: &str = "sub_starts";
pub const RENEWALS: &str = "sub_renewals";
/// `sub_renewal_revenue_<CUR>`: minor units the renewals counted were reported sold for.
pub const RENEWAL_REVENUE: &str = "sub_renewal_revenue";
pub const CANCELLATIONS: &str = "sub_cancellations";
pub const EXPIRATIONS: &str = "sub_expirations";
pub const REFUNDS: &str = "sub_refunds";

fn paid_up(s: PurchaseState) -> bool {
    matches!(
        s,
        PurchaseState::Active | PurchaseState::Canceled | PurchaseState::Grace
    )
}

fn scoped(out: &mut Vec<(String, i64)>, f: &Facts<'_>, name: &str, v: i64) {
    out.push((name.to_owned(), v));
    out.push((format!("product#{}#{name}", f.product_id), v));
    out.push((format!("provider#{}#{name}", f.store), v));
}

fn money(m: Money) -> Value {
    json!({ "amount": m.amount, "currency": m.currency.as_str() })
}

/// The change from `before` (the record read; `None` or a `pending` one: nothing was paid
/// yet) to `after`.
pub fn change(before: Option<&Version<'_>>, after: &Version<'_>, f: &Facts<'_>) -> PurchaseChange {
    let mut out = PurchaseChange {
        read: before.map(|b| b.last_event_at),
        counted_at: f.at,
        ..Default::default()
    };
    let was = before.filter(|b| b.state != PurchaseState::Pending);
    let data = |txn: Option<&str>| {
        json!({
            "store": f.store,
            "source_id": f.source_id,
            "state": after.state.as_str(),
            "expires_at": after.expires_at,
            "transaction_id": txn,
            "price": f.price.map(money),
        })
    };
    let event = |kind: EventType, subject: String, data: Value| Event {
        id: event_id(kind, &format!("{}\n{}\n{subject}", f.store, f.source_id)),
        kind,
        occurred_at: f.at,
        user_id: f.user_id.to_owned(),
        product_id: Some(f.product_id.to_owned()),
        data,
    };
    let Some(was) = was else {
        if paid_up(after.state) {
            scoped(&mut out.counts, f, STARTS, 1);
        }
        return out;
    };
    // A new period paid: the store names it with a new transaction (order) id.
    if let (Some(new), Some(old)) = (after.last_txn_id, was.last_txn_id) {
        if new != old && after.state != PurchaseState::Revoked && paid_up(after.state) {
            scoped(&mut out.counts, f, RENEWALS, 1);
            if let Some(p) = f.price {
                let name = format!("{RENEWAL_REVENUE}_{}", p.currency.as_str());
                scoped(&mut out.counts, f, &name, p.amount);
            }
            out.events.push(event(
                EventType::SubscriptionRenewed,
                format!("renewed\n{new}"),
                data(Some(new)),
            ));
        }
    }
    let version = format!("{}\n{}", after.state.as_str(), was.last_event_at);
    // Revoked, then paid up again: the store took its refund back (Apple's REFUND_REVERSED).
    // Access is back, so whoever heard of the revocation hears of this.
    if was.state == PurchaseState::Revoked && paid_up(after.state) {
        out.events.push(event(
            EventType::SubscriptionRestored,
            version.clone(),
            data(after.last_txn_id),
        ));
    }
    if after.state != was.state {
        match after.state {
            PurchaseState::Grace => out.events.push(event(
                EventType::SubscriptionGracePeriod,
                version.clone(),
                data(after.last_txn_id),
            )),
            PurchaseState::Expired => {
                scoped(&mut out.counts, f, EXPIRATIONS, 1);
                out.events.push(event(
                    EventType::SubscriptionExpired,
                    version.clone(),
                    data(after.last_txn_id),
                ));
            }
            PurchaseState::Revoked => {
                scoped(&mut out.counts, f, REFUNDS, 1);
                out.events.push(event(
                    EventType::SubscriptionRevoked,
                    version.clone(),
                    data(after.last_txn_id),
                ));
            }
            PurchaseState::Canceled => scoped(&mut out.counts, f, CANCELLATIONS, 1),
            _ => {}
        }
    }
    if f.auto_renew_off && after.state != PurchaseState::Canceled {
        scoped(&mut out.counts, f, CANCELLATIONS, 1);
    }
    out
}

/// A store's price in minor units of `currency`: Apple reports milliunits (`9990` for
/// 9.99), Play a whole part and nanos. `None` when it does not fit exactly or is negative.
pub fn from_milliunits(milli: i64, currency: &str) -> Option<Money> {
    let currency = Currency::parse(currency).ok()?;
    let per_minor = 10_i64.pow(3u32.checked_sub(currency.exponent())?);
    (milli >= 0 && milli % per_minor == 0).then(|| Money {
        amount: milli / per_minor,
        currency,
    })
}

/// Play's `Money` (`units` a decimal string, `nanos` 0..1e9) in minor units.
pub fn from_units_nanos(units: &str, nanos: i64, currency: &str) -> Option<Money> {
    let currency = Currency::parse(currency).ok()?;
    let units: i64 = units.parse().ok()?;
    let exp = currency.exponent();
    let nanos_per_minor = 10_i64.pow(9 - exp);
    if units < 0 || !(0..1_000_000_000).contains(&nanos) || nanos % nanos_per_minor != 0 {
        return None;
    }
    let amount = units
        .checked_mul(10_i64.pow(exp))?
        .checked_add(nanos / nanos_per_minor)?;
    Some(Money { amount, currency })
}

/// The events of a store purchase that changes nothing stored: one no account could be
/// bound to yet (`purchase.unattributed`), or one a second account claimed
/// (`purchase.conflict`, `user_id` the claimant, `owner` the account it belongs to).
pub fn purchase_event(
    kind: EventType,
    f: &Facts<'_>,
    store_product_id: &str,
    transaction_id: Option<&str>,
    owner: Option<&str>,
    reason: &str,
) -> Event {
    Event {
        id: event_id(
            kind,
            &format!(
                "{}\n{}\n{}\n{}",
                f.store,
                f.source_id,
                transaction_id.unwrap_or("-"),
                f.user_id
            ),
        ),
        kind,
        occurred_at: f.at,
        user_id: f.user_id.to_owned(),
        product_id: Some(f.product_id.to_owned()),
        data: json!({
            "store": f.store,
            "source_id": f.source_id,
            "store_product_id": store_product_id,
            "transaction_id": transaction_id,
            "owner_user_id": owner,
            "reason": reason,
        }),
    }
}

/// The store subscriptions' figures of a group (everything, a product, a provider).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionFigures {
    /// Subscriptions first paid (a first record, or a pending one paid).
    pub starts: i64,
    /// New periods paid, as the stores reported them.
    pub renewals: i64,
    /// Currency → minor units those renewals were sold for, where the store reports a price.
    pub renewal_revenue: BTreeMap<String, i64>,
    /// Auto-renew turned off (Apple), or cancelled (Play).
    pub cancellations: i64,
    pub expirations: i64,
    /// Subscriptions taken back by the store (refunds, revocations).
    pub refunds: i64,
}

/// The figures of the counters under `prefix` ("" for the total, `product#<id>#`, ...).
pub fn figures(counters: &BTreeMap<String, i64>, prefix: &str) -> SubscriptionFigures {
    let c = |name: &str| {
        counters
            .get(&format!("{prefix}{name}"))
            .copied()
            .unwrap_or(0)
    };
    let start = format!("{prefix}{RENEWAL_REVENUE}_");
    SubscriptionFigures {
        starts: c(STARTS),
        renewals: c(RENEWALS),
        renewal_revenue: counters
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(k, v)| (k[start.len()..].to_owned(), *v))
            .filter(|(cur, _)| !cur.contains('#'))
            .collect(),
        cancellations: c(CANCELLATIONS),
        expirations: c(EXPIRATIONS),
        refunds: c(REFUNDS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(at: i64) -> Facts<'static> {
        Facts {
            store: "apple",
            source_id: "apple:100",
            user_id: "u",
            product_id: "sub",
            price: from_milliunits(12_990, "CNY"),
            auto_renew_off: false,
            at,
        }
    }

    fn v(state: PurchaseState, txn: &'static str, at: i64) -> Version<'static> {
        Version {
            state,
            last_txn_id: Some(txn),
            last_event_at: at,
            expires_at: Some(at / 1000 + 86_400),
        }
    }

    fn kinds(c: &PurchaseChange) -> Vec<&str> {
        c.events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn a_first_record_starts_and_tells_nothing() {
        let c = change(None, &v(PurchaseState::Active, "t1", 1_000), &facts(1));
        assert!(c.events.is_empty());
        assert!(c.counts.contains(&(STARTS.into(), 1)));
        assert!(c.counts.contains(&("product#sub#sub_starts".into(), 1)));
        assert!(c.counts.contains(&("provider#apple#sub_starts".into(), 1)));
        assert_eq!(c.read, None);
        let pending = v(PurchaseState::Pending, "t0", 500);
        let c = change(
            Some(&pending),
            &v(PurchaseState::Active, "t1", 1_000),
            &facts(1),
        );
        assert_eq!(c.read, Some(500));
        assert!(c.counts.contains(&(STARTS.into(), 1)));
    }

    #[test]
    fn a_new_transaction_is_a_renewal_at_its_price() {
        let before = v(PurchaseState::Active, "t1", 1_000);
        let c = change(
            Some(&before),
            &v(PurchaseState::Active, "t2", 2_000),
            &facts(2),
        );
        assert_eq!(kinds(&c), ["subscription.renewed"]);
        assert!(c.counts.contains(&(RENEWALS.into(), 1)));
        assert!(c
            .counts
            .contains(&("sub_renewal_revenue_CNY".into(), 1_299)));
        assert_eq!(c.events[0].data["price"]["amount"], 1_299);
        // The same renewal reached from another version is the same event.
        let other = v(PurchaseState::Grace, "t1", 1_500);
        let d = change(
            Some(&other),
            &v(PurchaseState::Active, "t2", 3_000),
            &facts(3),
        );
        assert_eq!(d.events[0].id, c.events[0].id);
        // The same transaction again: nothing.
        let e = change(
            Some(&before),
            &v(PurchaseState::Active, "t1", 2_000),
            &facts(2),
        );
        assert!(e.events.is_empty() && e.counts.is_empty());
    }

    #[test]
    fn state_changes_tell_once_per_version() {
        let before = v(PurchaseState::Active, "t1", 1_000);
        for (state, kind, counter) in [
            (
                PurchaseState::Grace,
                "subscription.grace_period",
                None::<&str>,
            ),
            (
                PurchaseState::Expired,
                "subscription.expired",
                Some(EXPIRATIONS),
            ),
            (
                PurchaseState::Revoked,
                "subscription.revoked",
                Some(REFUNDS),
            ),
        ] {
            let c = change(Some(&before), &v(state, "t1", 2_000), &facts(2));
            assert_eq!(kinds(&c), [kind]);
            if let Some(name) = counter {
                assert!(c.counts.contains(&(name.into(), 1)), "{kind}");
            }
            let again = change(
                Some(&v(state, "t1", 2_000)),
                &v(state, "t1", 3_000),
                &facts(3),
            );
            assert!(again.events.is_empty(), "{kind}");
        }
        let c = change(
            Some(&before),
            &v(PurchaseState::Canceled, "t1", 2_000),
            &facts(2),
        );
        assert!(c.events.is_empty());
        assert!(c.counts.contains(&(CANCELLATIONS.into(), 1)));
        let mut off = facts(2);
        off.auto_renew_off = true;
        let c = change(Some(&before), &v(PurchaseState::Active, "t1", 2_000), &off);
        assert!(c.counts.contains(&(CANCELLATIONS.into(), 1)));
    }

    #[test]
    fn a_reversed_refund_restores_once() {
        let revoked = v(PurchaseState::Revoked, "t1", 2_000);
        let c = change(
            Some(&revoked),
            &v(PurchaseState::Active, "t1", 3_000),
            &facts(3),
        );
        assert_eq!(kinds(&c), ["subscription.restored"]);
        assert_eq!(c.events[0].data["state"], "active");
        assert!(c.counts.is_empty(), "{:?}", c.counts);
        // The same reversal read again (the record already active): nothing more.
        let again = change(
            Some(&v(PurchaseState::Active, "t1", 3_000)),
            &v(PurchaseState::Active, "t1", 4_000),
            &facts(4),
        );
        assert!(again.events.is_empty());
        // A reversal after the period ended restores nothing: it expires.
        let late = change(
            Some(&revoked),
            &v(PurchaseState::Expired, "t1", 3_000),
            &facts(3),
        );
        assert_eq!(kinds(&late), ["subscription.expired"]);
    }

    #[test]
    fn figures_read_their_own_counters() {
        let mut counters = BTreeMap::new();
        let f = facts(1);
        let before = v(PurchaseState::Active, "t1", 1_000);
        for c in [
            change(None, &before, &f),
            change(Some(&before), &v(PurchaseState::Active, "t2", 2_000), &f),
            change(
                Some(&v(PurchaseState::Active, "t2", 2_000)),
                &v(PurchaseState::Expired, "t2", 3_000),
                &f,
            ),
        ] {
            for (k, n) in c.counts {
                *counters.entry(k).or_insert(0) += n;
            }
        }
        counters.insert("revenue_CNY".into(), 5);
        let all = figures(&counters, "");
        assert_eq!((all.starts, all.renewals, all.expirations), (1, 1, 1));
        assert_eq!(all.renewal_revenue, BTreeMap::from([("CNY".into(), 1_299)]));
        assert_eq!(figures(&counters, "product#sub#"), all);
        assert_eq!(
            figures(&counters, "product#other#"),
            SubscriptionFigures::default()
        );
    }

    #[test]
    fn store_prices_in_minor_units() {
        let m = from_milliunits(9_990, "USD").unwrap();
        assert_eq!((m.amount, m.currency.as_str()), (999, "USD"));
        assert_eq!(from_milliunits(120_000, "JPY").unwrap().amount, 120);
        assert_eq!(from_milliunits(9_995, "USD"), None);
        assert_eq!(from_milliunits(-10, "USD"), None);
        assert_eq!(from_milliunits(10, "usd"), None);
        assert_eq!(
            from_units_nanos("12", 990_000_000, "CNY").unwrap().amount,
            1_299
        );
        assert_eq!(from_units_nanos("120", 0, "JPY").unwrap().amount, 120);
        assert_eq!(from_units_nanos("1", 5_000_000, "CNY"), None);
        assert_eq!(from_units_nanos("x", 0, "CNY"), None);
        assert_eq!(from_units_nanos("1", -1, "CNY"), None);
    }
}

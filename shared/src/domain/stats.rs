//! Business figures per day in the operator's time zone: the funnel (created → paid),
//! revenue gross, refunded and net per currency, paying users new and repeat, repurchase and
//! revenue per paying user, in total and per product or provider. Counting happens in the
//! store inside the same transactions that create, settle and refund orders, under the
//! counter names this module gives ([`created_counts`], [`paid_counts`], ...); this module
//! derives the rates, so the arithmetic is tested without any store.
//!
//! Every counter is kept three times in the same item update: in total, under
//! `product#<id>#` and under `provider#<name>#`. A business line is a set of products, so
//! its figures are the sum of its products' counters at read time; no per-line counter is
//! needed.

use super::{Currency, Money, Order};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The operator's time zone, in which a day starts and ends (`STATS_TIME_ZONE`, an IANA
/// name). The database is compiled into the binary, so a Lambda without `/usr/share/zoneinfo`
/// answers the same as a laptop.
#[derive(Clone)]
pub struct StatsZone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl std::fmt::Debug for StatsZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for StatsZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Default for StatsZone {
    fn default() -> Self {
        Self::named(Self::DEFAULT).unwrap_or_else(|| StatsZone {
            name: Self::DEFAULT.into(),
            // China has kept UTC+8 without daylight saving since 1991.
            tz: jiff::tz::TimeZone::fixed(jiff::tz::offset(8)),
        })
    }
}

impl StatsZone {
    pub const DEFAULT: &'static str = "Asia/Shanghai";

    /// The zone of an IANA name (`Asia/Shanghai`, `UTC`, `Europe/Berlin`); `None` when the
    /// compiled-in database does not know it.
    pub fn named(name: &str) -> Option<Self> {
        // Names only: a POSIX TZ string or a path is not a zone an operator picks.
        if name.is_empty() || name.starts_with('/') || name.contains("..") {
            return None;
        }
        let tz = jiff::tz::db().get(name).ok()?;
        Some(StatsZone {
            name: name.to_owned(),
            tz,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `YYYY-MM-DD` of a unix time in this zone.
    pub fn day_of(&self, unix_s: i64) -> String {
        jiff::Timestamp::from_second(unix_s)
            .map(|t| t.to_zoned(self.tz.clone()).date().to_string())
            .unwrap_or_else(|_| "1970-01-01".into())
    }

    /// Unix time of a day's first instant in this zone; `None` unless `YYYY-MM-DD`.
    pub fn day_start(&self, day: &str) -> Option<i64> {
        let d = parse_day(day)?;
        Some(d.to_zoned(self.tz.clone()).ok()?.timestamp().as_second())
    }

    /// The days `from..=to`, at most `max` of them; `None` when malformed or reversed.
    pub fn days_between(&self, from: &str, to: &str, max: usize) -> Option<Vec<String>> {
        days_between(from, to, max)
    }
}

fn parse_day(day: &str) -> Option<jiff::civil::Date> {
    let d: jiff::civil::Date = day.parse().ok()?;
    // Exactly `YYYY-MM-DD`: no other spelling of the same date.
    (d.to_string() == day).then_some(d)
}

/// `YYYY-MM-DD` (UTC) of a unix time.
pub fn day_of(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Unix time of a day's midnight (UTC); `None` unless `YYYY-MM-DD`.
pub fn day_start(day: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    if d.format("%Y-%m-%d").to_string() != day {
        return None;
    }
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

/// The calendar days `from..=to`, at most `max` of them; `None` when malformed or reversed.
pub fn days_between(from: &str, to: &str, max: usize) -> Option<Vec<String>> {
    let (a, b) = (parse_day(from)?, parse_day(to)?);
    if b < a {
        return None;
    }
    let mut days = Vec::new();
    let mut d = a;
    while d <= b {
        if days.len() == max {
            return None;
        }
        days.push(d.to_string());
        d = d.tomorrow().ok()?;
    }
    Some(days)
}

/// The dimensions figures can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakdown {
    Product,
    Provider,
}

impl Breakdown {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "product" => Some(Breakdown::Product),
            "provider" => Some(Breakdown::Provider),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Breakdown::Product => "product#",
            Breakdown::Provider => "provider#",
        }
    }

    fn of(self, p: &Payment) -> &str {
        match self {
            Breakdown::Product => &p.product_id,
            Breakdown::Provider => &p.provider,
        }
    }
}

/// A counter in total, per product and per provider. `#` separates the parts: the catalog's
/// ids (`[A-Za-z0-9._:-]`) and the provider names never contain it.
fn scoped(out: &mut Vec<(String, i64)>, product: &str, provider: &str, name: &str, v: i64) {
    out.push((name.to_owned(), v));
    out.push((format!("product#{product}#{name}"), v));
    out.push((format!("provider#{provider}#{name}"), v));
}

/// What creating `order` counts, on the day of its `created_at`.
pub fn created_counts(order: &Order) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    scoped(
        &mut out,
        &order.product_id,
        &order.provider,
        "orders_created",
        1,
    );
    out
}

/// What a payment counts, on the day it was paid; `created` when the order was created by
/// the same write (a sale made at the provider), which then counts its creation too.
pub fn paid_counts(
    product: &str,
    provider: &str,
    amount: Money,
    late: bool,
    created: bool,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let revenue = format!("revenue_{}", amount.currency.as_str());
    scoped(&mut out, product, provider, "orders_paid", 1);
    scoped(&mut out, product, provider, &revenue, amount.amount);
    if late {
        scoped(&mut out, product, provider, "late_payments", 1);
    }
    if created {
        scoped(&mut out, product, provider, "orders_created", 1);
    }
    out
}

/// What a refund of `add` minor units of an order of `product` paid through `provider`
/// counts, on the day it is recorded; `completes` when it refunds the order in full
/// (counted as one refund).
pub fn refund_counts(
    product: &str,
    provider: &str,
    currency: Currency,
    add: i64,
    completes: bool,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let refunded = format!("refunded_{}", currency.as_str());
    scoped(&mut out, product, provider, &refunded, add);
    if completes {
        scoped(&mut out, product, provider, "refunds", 1);
    }
    out
}

/// What the provider reversing a refund of `refunded` minor units counts, on the day of the
/// reversal: the money comes back into net revenue and the refund is no longer counted.
pub fn reversal_counts(
    product: &str,
    provider: &str,
    currency: Currency,
    refunded: i64,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let reversed = format!("reversed_{}", currency.as_str());
    scoped(&mut out, product, provider, &reversed, refunded);
    scoped(&mut out, product, provider, "refund_reversals", 1);
    out
}

/// What the first stream token for a paid grant counts, on the day it is issued (see
/// [`super::first_access`]).
pub fn first_access_counts(product: &str, provider: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    scoped(&mut out, product, provider, "first_access", 1);
    out
}

/// What a user's free preview of a stream starting counts, on that day:
/// `stream#<id>#previews` (one per user and stream: a preview starts once).
pub fn preview_counts(stream_id: &str) -> Vec<(String, i64)> {
    vec![(format!("stream#{stream_id}#previews"), 1)]
}

/// What the payment of an order made from a stream's paywall adds, on its paid day:
/// `stream#<id>#purchases` (nothing for an order without a stream).
pub fn stream_purchase_counts(stream_id: Option<&str>) -> Vec<(String, i64)> {
    match stream_id {
        Some(s) => vec![(format!("stream#{s}#purchases"), 1)],
        None => Vec::new(),
    }
}

/// Preview → purchase of one stream over a day or a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamFigures {
    /// Users whose free preview of the stream started.
    pub previews: i64,
    /// Orders made from the stream's paywall and paid.
    pub purchases: i64,
    /// Purchases / previews; `None` without previews.
    pub conversion_rate: Option<f64>,
}

/// Stream id → its preview and purchase figures, for every stream counted in `r`.
pub fn stream_figures(r: &DayRecord) -> BTreeMap<String, StreamFigures> {
    let mut out: BTreeMap<String, StreamFigures> = BTreeMap::new();
    for (k, v) in r.counters.range("stream#".to_owned()..) {
        let Some((stream, name)) = k.strip_prefix("stream#").and_then(|k| k.split_once('#')) else {
            break;
        };
        let f = out.entry(stream.to_owned()).or_insert(StreamFigures {
            previews: 0,
            purchases: 0,
            conversion_rate: None,
        });
        match name {
            "previews" => f.previews += v,
            "purchases" => f.purchases += v,
            _ => {}
        }
    }
    for f in out.values_mut() {
        f.conversion_rate = rate(f.purchases, f.previews);
    }
    out
}

/// Callbacks of one provider refused (bad signature, over a cap, unknown order, ...), by the
/// reason's code. Counted on an item of their own per day and provider, never on the items
/// payments write, so a flood of bad callbacks cannot slow or fail a settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejections {
    pub total: i64,
    pub reasons: BTreeMap<String, i64>,
}

fn rejection_figures(r: &DayRecord) -> BTreeMap<String, Rejections> {
    r.rejections
        .iter()
        .map(|(provider, reasons)| {
            (
                provider.clone(),
                Rejections {
                    total: reasons.values().sum(),
                    reasons: reasons.clone(),
                },
            )
        })
        .collect()
}

/// One payment as recorded in its day (the paying users are counted from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub order_id: String,
    pub user_id: String,
    pub product_id: String,
    pub provider: String,
    pub amount: i64,
    pub currency: String,
    pub paid_at: i64,
}

/// What the store keeps for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRecord {
    /// `YYYY-MM-DD` in the store's [`StatsZone`].
    pub day: String,
    /// Counter name → value, as [`created_counts`] and its siblings name them.
    pub counters: BTreeMap<String, i64>,
    /// The day's payments.
    pub payments: Vec<Payment>,
    /// Each paying user of the day → their first payment ever (unix s).
    pub first_paid: BTreeMap<String, i64>,
    /// Provider → reason → callbacks refused that day (kept apart from the counters: see
    /// [`Rejections`]).
    pub rejections: BTreeMap<String, BTreeMap<String, i64>>,
}

impl DayRecord {
    pub fn new(day: &str) -> Self {
        DayRecord {
            day: day.to_owned(),
            ..Default::default()
        }
    }

    /// A counter in total (0 when never counted).
    pub fn count(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Adds counts, as a store's `ADD` does.
    pub fn add(&mut self, counts: &[(String, i64)]) {
        for (name, v) in counts {
            *self.counters.entry(name.clone()).or_default() += v;
        }
    }

    /// Currency → total of the counters `<what>_<CUR>`, under `prefix` ("" for the total).
    fn per_currency(&self, prefix: &str, what: &str) -> BTreeMap<String, i64> {
        let start = format!("{prefix}{what}_");
        self.counters
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(k, v)| (k[start.len()..].to_owned(), *v))
            .filter(|(cur, _)| !cur.contains('#'))
            .collect()
    }

    /// Revenue in total per currency (minor units).
    pub fn revenue(&self) -> BTreeMap<String, i64> {
        self.per_currency("", "revenue")
    }

    /// Adds another record's counters and payments (a range from its days).
    fn merge(&mut self, other: &DayRecord) {
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_default() += v;
        }
        self.payments.extend(other.payments.iter().cloned());
        for (u, t) in &other.first_paid {
            let e = self.first_paid.entry(u.clone()).or_insert(*t);
            *e = (*e).min(*t);
        }
        for (provider, reasons) in &other.rejections {
            let mine = self.rejections.entry(provider.clone()).or_default();
            for (reason, n) in reasons {
                *mine.entry(reason.clone()).or_default() += n;
            }
        }
    }
}

/// The figures of one group (everything, one product or one provider) over a day or a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub orders_created: i64,
    pub orders_paid: i64,
    /// Paid / created; `None` when nothing was created.
    pub conversion_rate: Option<f64>,
    /// Paid grants (one per order or store purchase) whose first stream token was issued
    /// here: the funnel's third step.
    pub first_access: i64,
    /// First access / paid; `None` when nothing was paid. Both are counted on their own
    /// day, so over a short range an order paid before it and watched in it can take this
    /// above 1.
    pub first_access_rate: Option<f64>,
    pub late_payments: i64,
    /// Orders refunded in full.
    pub refunds: i64,
    /// Currency → minor units paid (gross).
    pub revenue: BTreeMap<String, i64>,
    /// Currency → minor units refunded (partial refunds included), less reversed refunds.
    pub refunded: BTreeMap<String, i64>,
    /// Currency → revenue less refunded.
    pub net_revenue: BTreeMap<String, i64>,
    pub paying_users: i64,
    /// Paying users whose first payment ever is among these payments.
    pub new_payers: i64,
    /// Paying users who had paid before (earlier, or more than once here).
    pub repeat_payers: i64,
    pub repurchase_rate: Option<f64>,
    /// Currency → revenue (gross) / paying users, in minor units (rounded down): 客单价.
    pub revenue_per_paying_user: BTreeMap<String, i64>,
    /// Currency → net revenue / paying users, in minor units (rounded down).
    pub net_revenue_per_paying_user: BTreeMap<String, i64>,
    /// App Store and Play subscriptions: starts, renewals, cancellations, refunds.
    pub subscriptions: super::subscription::SubscriptionFigures,
}

fn rate(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn per_user(money: &BTreeMap<String, i64>, users: i64) -> BTreeMap<String, i64> {
    if users == 0 {
        return BTreeMap::new();
    }
    money.iter().map(|(k, v)| (k.clone(), v / users)).collect()
}

fn figures(r: &DayRecord, prefix: &str, payments: &[&Payment]) -> Figures {
    let c = |name: &str| r.count(&format!("{prefix}{name}"));
    let revenue = r.per_currency(prefix, "revenue");
    let mut refunded = r.per_currency(prefix, "refunded");
    for (cur, v) in r.per_currency(prefix, "reversed") {
        *refunded.entry(cur).or_default() -= v;
    }
    let mut net = revenue.clone();
    for (cur, v) in &refunded {
        *net.entry(cur.clone()).or_default() -= v;
    }
    // user → (payments, earliest here)
    let mut users: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for p in payments {
        let e = users.entry(&p.user_id).or_insert((0, p.paid_at));
        e.0 += 1;
        e.1 = e.1.min(p.paid_at);
    }
    let paying = users.len() as i64;
    let repeat = users
        .iter()
        .filter(|(u, (count, earliest))| {
            *count > 1 || r.first_paid.get(**u).is_some_and(|first| first < earliest)
        })
        .count() as i64;
    Figures {
        orders_created: c("orders_created"),
        orders_paid: c("orders_paid"),
        conversion_rate: rate(c("orders_paid"), c("orders_created")),
        first_access: c("first_access"),
        first_access_rate: rate(c("first_access"), c("orders_paid")),
        late_payments: c("late_payments"),
        refunds: c("refunds") - c("refund_reversals"),
        revenue_per_paying_user: per_user(&revenue, paying),
        revenue,
        refunded,
        net_revenue_per_paying_user: per_user(&net, paying),
        net_revenue: net,
        paying_users: paying,
        new_payers: users
            .iter()
            .filter(|(u, (_, earliest))| r.first_paid.get(**u).is_none_or(|f| f >= earliest))
            .count() as i64,
        repeat_payers: repeat,
        repurchase_rate: rate(repeat, paying),
        subscriptions: super::subscription::figures(&r.counters, prefix),
    }
}

/// The figures of a day (or a range), with the breakdown asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayStats {
    /// The day, or `from..to` for a range's total.
    pub day: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// Product id or provider → its figures, when a breakdown was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<BTreeMap<String, Figures>>,
    /// Stream id → previews started and purchases made from its paywall (every stream
    /// with either counted; empty otherwise).
    pub streams: BTreeMap<String, StreamFigures>,
    /// Provider → callbacks refused, in total and by reason (every provider with one).
    pub rejections: BTreeMap<String, Rejections>,
}

pub fn derive(r: &DayRecord, by: Option<Breakdown>) -> DayStats {
    let all: Vec<&Payment> = r.payments.iter().collect();
    DayStats {
        day: r.day.clone(),
        figures: figures(r, "", &all),
        streams: stream_figures(r),
        rejections: rejection_figures(r),
        by: by.map(|b| {
            let prefix = b.prefix();
            let mut groups: BTreeSet<&str> = r
                .counters
                .keys()
                .filter_map(|k| k.strip_prefix(prefix)?.split_once('#').map(|(g, _)| g))
                .collect();
            groups.extend(r.payments.iter().map(|p| b.of(p)));
            groups
                .into_iter()
                .map(|g| {
                    let mine: Vec<&Payment> = r.payments.iter().filter(|p| b.of(p) == g).collect();
                    (g.to_owned(), figures(r, &format!("{prefix}{g}#"), &mine))
                })
                .collect()
        }),
    }
}

/// The range's figures: every day's counters and payments added up, each paying user once.
pub fn derive_total(records: &[DayRecord], by: Option<Breakdown>) -> DayStats {
    let mut all = DayRecord::default();
    for r in records {
        all.merge(r);
    }
    all.day = match (records.first(), records.last()) {
        (Some(a), Some(b)) => format!("{}..{}", a.day, b.day),
        _ => String::new(),
    };
    derive(&all, by)
}

/// The counters of `r` with each product's counters also added up under its business line,
/// `line#<line>#<name>`: a line's figures are its products' as the catalog in force groups
/// them (a product the catalog no longer has goes where the lines' rules now put it), so no
/// per-line counter is ever written.
fn with_lines(r: &DayRecord, lines: &super::line::Lines) -> DayRecord {
    let mut out = r.clone();
    for (k, v) in &r.counters {
        let Some((product, name)) = k.strip_prefix("product#").and_then(|k| k.split_once('#'))
        else {
            continue;
        };
        let line = &lines.line_of(Some(product)).id;
        *out.counters
            .entry(format!("line#{line}#{name}"))
            .or_default() += v;
    }
    out
}

/// [`derive`] broken down by business line: every line of `lines`, each with its products'
/// counters and payments added up (a line with nothing counted shows zeros).
pub fn derive_by_line(r: &DayRecord, lines: &super::line::Lines) -> DayStats {
    let lined = with_lines(r, lines);
    let all: Vec<&Payment> = r.payments.iter().collect();
    DayStats {
        day: r.day.clone(),
        figures: figures(&lined, "", &all),
        streams: stream_figures(r),
        rejections: rejection_figures(r),
        by: Some(
            lines
                .all()
                .iter()
                .map(|l| {
                    let mine: Vec<&Payment> = r
                        .payments
                        .iter()
                        .filter(|p| lines.line_of(Some(&p.product_id)).id == l.id)
                        .collect();
                    (
                        l.id.clone(),
                        figures(&lined, &format!("line#{}#", l.id), &mine),
                    )
                })
                .collect(),
        ),
    }
}

/// [`derive_total`] broken down by business line.
pub fn derive_total_by_line(records: &[DayRecord], lines: &super::line::Lines) -> DayStats {
    let mut all = DayRecord::default();
    for r in records {
        all.merge(r);
    }
    all.day = match (records.first(), records.last()) {
        (Some(a), Some(b)) => format!("{}..{}", a.day, b.day),
        _ => String::new(),
    };
    derive_by_line(&all, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_of(1_800_000_000), "2027-01-15");
        assert_eq!(day_start("2027-01-15"), Some(1_799_971_200));
        assert_eq!(day_start("2027-1-15"), None);
        assert_eq!(day_start("2027-02-30"), None);
        assert_eq!(
            days_between("2027-01-30", "2027-02-02", 31).unwrap(),
            vec!["2027-01-30", "2027-01-31", "2027-02-01", "2027-02-02"]
        );
        assert_eq!(days_between("2027-02-02", "2027-01-30", 31), None);
        assert_eq!(days_between("2027-01-01", "2027-03-01", 31), None);
        assert_eq!(days_between("2027-1-1", "2027-01-03", 31), None);
        assert_eq!(
            days_between("2027-01-01", "2027-01-31", 31).unwrap().len(),
            31
        );
    }

    #[test]
    fn days_in_the_operators_zone() {
        let sh = StatsZone::default();
        assert_eq!(sh.name(), "Asia/Shanghai");
        // 2027-01-15 16:00 UTC is already the 16th in Shanghai.
        let t = day_start("2027-01-15").unwrap() + 16 * 3600;
        assert_eq!(day_of(t), "2027-01-15");
        assert_eq!(sh.day_of(t), "2027-01-16");
        assert_eq!(sh.day_of(t - 1), "2027-01-15");
        assert_eq!(sh.day_start("2027-01-16"), Some(t));
        // A day with a daylight saving change is 23 hours long and still one day.
        let berlin = StatsZone::named("Europe/Berlin").unwrap();
        let (a, b) = (
            berlin.day_start("2027-03-28").unwrap(),
            berlin.day_start("2027-03-29").unwrap(),
        );
        assert_eq!(b - a, 23 * 3600);
        assert_eq!(berlin.day_of(b - 1), "2027-03-28");
        assert_eq!(StatsZone::named("UTC").unwrap().day_of(t), "2027-01-15");
        for bad in [
            "",
            "Mars/Olympus",
            "/etc/localtime",
            "../etc",
            "Asia/../UTC",
        ] {
            assert!(StatsZone::named(bad).is_none(), "{bad}");
        }
    }

    fn pay(user: &str, product: &str, amount: i64, at: i64) -> Payment {
        Payment {
            order_id: format!("o-{user}-{at}"),
            user_id: user.into(),
            product_id: product.into(),
            provider: "sandbox".into(),
            amount,
            currency: "CNY".into(),
            paid_at: at,
        }
    }

    fn cny(amount: i64) -> Money {
        Money {
            amount,
            currency: Currency::CNY,
        }
    }

    #[test]
    fn derived_rates_in_total_and_per_product() {
        let start = day_start("2027-01-15").unwrap();
        let mut r = DayRecord::new("2027-01-15");
        let payments = [
            pay("new-once", "pass", 1_200, start + 10),
            pay("new-twice", "pass", 1_200, start + 20),
            pay("new-twice", "coins", 600, start + 30),
            pay("returning", "coins", 600, start + 40),
        ];
        for p in &payments {
            r.add(&paid_counts(
                &p.product_id,
                "sandbox",
                cny(p.amount),
                false,
                false,
            ));
        }
        for _ in 0..10 {
            r.add(&[("orders_created".into(), 1)]);
        }
        r.payments = payments.to_vec();
        r.first_paid = BTreeMap::from([
            ("new-once".into(), start + 10),
            ("new-twice".into(), start + 20),
            ("returning".into(), start - 86_400),
        ]);
        r.add(&refund_counts(
            "pass",
            "sandbox",
            Currency::CNY,
            1_200,
            true,
        ));
        let s = derive(&r, Some(Breakdown::Product));
        let f = &s.figures;
        assert_eq!(f.conversion_rate, Some(0.4));
        assert_eq!(f.revenue["CNY"], 3_600);
        assert_eq!(f.refunded["CNY"], 1_200);
        assert_eq!(f.net_revenue["CNY"], 2_400);
        assert_eq!((f.paying_users, f.new_payers, f.repeat_payers), (3, 2, 2));
        assert_eq!(f.repurchase_rate, Some(2.0 / 3.0));
        assert_eq!(f.revenue_per_paying_user["CNY"], 1_200);
        assert_eq!(f.net_revenue_per_paying_user["CNY"], 800);
        assert_eq!(f.refunds, 1);
        let by = s.by.unwrap();
        let pass = &by["pass"];
        assert_eq!((pass.orders_paid, pass.revenue["CNY"]), (2, 2_400));
        assert_eq!(pass.net_revenue["CNY"], 1_200);
        assert_eq!((pass.paying_users, pass.repeat_payers), (2, 0));
        let coins = &by["coins"];
        assert_eq!(
            (coins.paying_users, coins.new_payers, coins.repeat_payers),
            (2, 0, 2)
        );
        assert_eq!(coins.refunded, BTreeMap::new());
        // A reversal brings the refunded money back.
        r.add(&reversal_counts("pass", "sandbox", Currency::CNY, 1_200));
        let s = derive(&r, None);
        assert_eq!(s.figures.net_revenue["CNY"], 3_600);
        assert_eq!(s.figures.refunds, 0);
        assert!(s.by.is_none());
        let empty = derive(&DayRecord::new("2027-01-16"), None).figures;
        assert_eq!((empty.conversion_rate, empty.repurchase_rate), (None, None));
        assert!(empty.revenue_per_paying_user.is_empty());
    }

    #[test]
    fn a_range_counts_each_paying_user_once() {
        let start = day_start("2027-01-15").unwrap();
        let mut d1 = DayRecord::new("2027-01-15");
        d1.payments = vec![pay("a", "pass", 100, start + 1)];
        d1.first_paid = BTreeMap::from([("a".into(), start + 1)]);
        d1.add(&paid_counts("pass", "sandbox", cny(100), false, true));
        let mut d2 = DayRecord::new("2027-01-16");
        d2.payments = vec![pay("a", "pass", 100, start + 86_401)];
        d2.first_paid = BTreeMap::from([("a".into(), start + 1)]);
        d2.add(&paid_counts("pass", "sandbox", cny(100), false, true));
        let t = derive_total(&[d1, d2], Some(Breakdown::Provider));
        assert_eq!(t.day, "2027-01-15..2027-01-16");
        let f = &t.figures;
        assert_eq!((f.orders_created, f.orders_paid), (2, 2));
        assert_eq!((f.paying_users, f.new_payers, f.repeat_payers), (1, 1, 1));
        assert_eq!(f.revenue_per_paying_user["CNY"], 200);
        assert_eq!(t.by.unwrap()["sandbox"].orders_paid, 2);
    }

    #[test]
    fn a_line_is_the_sum_of_its_products() {
        let lines = crate::domain::line::Lines::parse(
            serde_json::json!([
                {"id": "music", "products": {"prefix": "m-"}},
                {"id": "sport", "products": {"ids": ["s-pass", "s-ticket"]}},
                {"id": "quiet", "products": {"prefix": "q-"}},
            ]),
            &["m-pass", "s-pass", "s-ticket", "q-pass"],
        )
        .unwrap();
        let start = day_start("2027-01-15").unwrap();
        let mut r = DayRecord::new("2027-01-15");
        let payments = [
            pay("a", "m-pass", 100, start + 1),
            pay("b", "s-pass", 300, start + 2),
            pay("b", "s-ticket", 50, start + 3),
            pay("c", "s-ticket", 50, start + 4),
        ];
        for p in &payments {
            r.add(&paid_counts(
                &p.product_id,
                "sandbox",
                cny(p.amount),
                false,
                true,
            ));
        }
        r.add(&refund_counts(
            "s-pass",
            "sandbox",
            Currency::CNY,
            300,
            true,
        ));
        r.payments = payments.to_vec();
        r.first_paid = BTreeMap::from([("b".into(), start - 10)]);
        let by_line = derive_by_line(&r, &lines);
        let by_product = derive(&r, Some(Breakdown::Product)).by.unwrap();
        let lines_of = by_line.by.as_ref().unwrap();
        assert_eq!(
            lines_of.keys().collect::<Vec<_>>(),
            vec!["music", "quiet", "sport"]
        );
        let sport = &lines_of["sport"];
        let (p, t) = (&by_product["s-pass"], &by_product["s-ticket"]);
        assert_eq!(sport.orders_paid, p.orders_paid + t.orders_paid);
        assert_eq!(sport.orders_created, 3);
        assert_eq!(sport.revenue["CNY"], 400);
        assert_eq!(sport.net_revenue["CNY"], 100);
        assert_eq!(sport.refunds, 1);
        // b paid twice within the line (and before): one paying user, a repeat one.
        assert_eq!(
            (sport.paying_users, sport.repeat_payers, sport.new_payers),
            (2, 1, 1)
        );
        assert_eq!(lines_of["music"], by_product["m-pass"]);
        assert_eq!(lines_of["quiet"].orders_created, 0);
        assert_eq!(by_line.figures, derive(&r, None).figures);
        let total = derive_total_by_line(&[r.clone(), r], &lines);
        assert_eq!(total.by.unwrap()["sport"].orders_paid, 6);
    }
}

//! Business figures per day (UTC): conversion, revenue, paying users, repurchase. Counting
//! happens in the store inside the same transactions that create and settle orders; this
//! module only derives the rates, so the arithmetic is tested without any store.

use serde::Serialize;
use std::collections::BTreeMap;

/// What the store keeps for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRecord {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub orders_created: i64,
    pub orders_paid: i64,
    pub late_payments: i64,
    pub refunds: i64,
    /// Currency → minor units paid that day.
    pub revenue: BTreeMap<String, i64>,
    /// Paying user → (payments that day, first payment ever, unix s).
    pub payers: BTreeMap<String, (i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayStats {
    pub day: String,
    pub orders_created: i64,
    pub orders_paid: i64,
    /// Paid / created; `None` on a day with no orders.
    pub conversion_rate: Option<f64>,
    pub late_payments: i64,
    pub refunds: i64,
    pub revenue: BTreeMap<String, i64>,
    pub paying_users: i64,
    /// Paying users of the day who had paid before (an earlier day, or earlier that day).
    pub repeat_payers: i64,
    pub repurchase_rate: Option<f64>,
    /// Currency → revenue / paying users, in minor units (rounded down).
    pub revenue_per_paying_user: BTreeMap<String, i64>,
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

/// The days `from..=to`, at most `max` of them; `None` when malformed or reversed.
pub fn days_between(from: &str, to: &str, max: usize) -> Option<Vec<String>> {
    let (a, b) = (day_start(from)?, day_start(to)?);
    if b < a || ((b - a) / 86_400) as usize >= max {
        return None;
    }
    Some(
        (0..=(b - a) / 86_400)
            .map(|i| day_of(a + i * 86_400))
            .collect(),
    )
}

fn rate(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

pub fn derive(r: &DayRecord) -> DayStats {
    let start = day_start(&r.day).unwrap_or(i64::MIN);
    let paying = r.payers.len() as i64;
    let repeat = r
        .payers
        .values()
        .filter(|(count, first)| *count > 1 || *first < start)
        .count() as i64;
    DayStats {
        day: r.day.clone(),
        orders_created: r.orders_created,
        orders_paid: r.orders_paid,
        conversion_rate: rate(r.orders_paid, r.orders_created),
        late_payments: r.late_payments,
        refunds: r.refunds,
        revenue: r.revenue.clone(),
        paying_users: paying,
        repeat_payers: repeat,
        repurchase_rate: rate(repeat, paying),
        revenue_per_paying_user: if paying == 0 {
            BTreeMap::new()
        } else {
            r.revenue
                .iter()
                .map(|(c, v)| (c.clone(), v / paying))
                .collect()
        },
    }
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
    }

    #[test]
    fn derived_rates() {
        let start = day_start("2027-01-15").unwrap();
        let r = DayRecord {
            day: "2027-01-15".into(),
            orders_created: 10,
            orders_paid: 4,
            late_payments: 1,
            refunds: 0,
            revenue: BTreeMap::from([("CNY".into(), 3_600), ("USD".into(), 100)]),
            payers: BTreeMap::from([
                ("new-once".into(), (1, start + 10)),
                ("new-twice".into(), (2, start + 20)),
                ("returning".into(), (1, start - 86_400)),
            ]),
        };
        let s = derive(&r);
        assert_eq!(s.conversion_rate, Some(0.4));
        assert_eq!((s.paying_users, s.repeat_payers), (3, 2));
        assert_eq!(s.repurchase_rate, Some(2.0 / 3.0));
        assert_eq!(s.revenue_per_paying_user["CNY"], 1_200);
        assert_eq!(s.revenue_per_paying_user["USD"], 33);
        let empty = derive(&DayRecord {
            day: "2027-01-16".into(),
            ..Default::default()
        });
        assert_eq!((empty.conversion_rate, empty.repurchase_rate), (None, None));
        assert!(empty.revenue_per_paying_user.is_empty());
    }
}

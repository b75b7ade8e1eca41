//! Grants and the entitlement rule.
//!
//! A user's access is the union of their unrevoked grants. Stacking of passes is computed
//! here, at read time, and never stored: a settle then never reads or conditions on other
//! grants, two purchases racing for one user cannot overlap, and a refund (a revoked grant)
//! removes exactly its own days.

use super::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DAY: i64 = 86_400;

/// What one purchase grants, before stacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    /// `days` counted from payment, or from the end of earlier passes of the same scope.
    Days(u32),
    /// A fixed window (an event and its replay).
    Window {
        from: i64,
        until: i64,
    },
    /// Until a store-reported expiry (subscriptions).
    Until(i64),
    Forever,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub scope: String,
    pub product_id: String,
    /// The order id or store purchase id that paid for it; one grant per (scope, source).
    pub source_id: String,
    pub paid_at: i64,
    pub term: Term,
    pub revoked_at: Option<i64>,
    /// The operator who revoked it by hand; `None` for a refund or a store's revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Why an operator revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// How many playback sessions it serves (counted in the user's `SESSIONS` item by
    /// source id); `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_views: Option<u32>,
    /// The payment provider of the order that paid for it (`None`: a store purchase, whose
    /// source id names the store, an operator's promotion, or a grant written before
    /// providers were kept). Only for the first-access figures; never shown.
    #[serde(default, skip_serializing)]
    pub provider: Option<String>,
}

/// A grant with its concrete validity after stacking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantWindow {
    pub scope: String,
    pub product_id: String,
    pub source_id: String,
    pub valid_from: i64,
    /// `None` means forever.
    pub valid_until: Option<i64>,
}

impl GrantWindow {
    pub fn covers(&self, now: i64) -> bool {
        self.valid_from <= now && self.valid_until.is_none_or(|u| now < u)
    }

    pub fn is_over(&self, now: i64) -> bool {
        self.valid_until.is_some_and(|u| u <= now)
    }
}

/// Every unrevoked grant with its validity. Passes of one scope fold in (paid_at, source_id)
/// order as `end = max(end, paid_at) + days`.
pub fn windows(grants: &[Grant]) -> Vec<GrantWindow> {
    windows_with(grants, &[])
}

/// [`windows`] of the live grants of a user whose ended grants are folded into
/// `checkpoints`: a scope's passes from its cutoff on stack after the checkpoint's chain end.
/// The checkpoints must not be stale for these grants ([`super::checkpoint::is_stale`]).
pub fn windows_with(grants: &[Grant], checkpoints: &[Checkpoint]) -> Vec<GrantWindow> {
    let mut out = Vec::with_capacity(grants.len());
    let mut passes: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants.iter().filter(|g| g.revoked_at.is_none()) {
        let (from, until) = match g.term {
            Term::Days(_) => {
                passes.entry(g.scope.as_str()).or_default().push(g);
                continue;
            }
            Term::Window { from, until } => (from, Some(until)),
            Term::Until(until) => (g.paid_at, Some(until)),
            Term::Forever => (g.paid_at, None),
        };
        out.push(window_of(g, from, until));
    }
    for (scope, mut list) in passes {
        list.sort_by(|a, b| (a.paid_at, &a.source_id).cmp(&(b.paid_at, &b.source_id)));
        let mut end = checkpoints
            .iter()
            .find(|c| c.scope == scope)
            .and_then(|c| c.chain_end)
            .unwrap_or(i64::MIN);
        for g in list {
            let from = end.max(g.paid_at);
            end = from.saturating_add(pass_seconds(g));
            out.push(window_of(g, from, Some(end)));
        }
    }
    out
}

fn pass_seconds(g: &Grant) -> i64 {
    match g.term {
        Term::Days(d) => i64::from(d) * DAY,
        _ => 0,
    }
}

/// Where each of `grants` (one scope, in stacking order) ends when its passes stack after
/// `chain_end`: `None` for a revoked grant and a forever one.
pub(crate) fn stacked_from(grants: &[&Grant], chain_end: Option<i64>) -> Vec<Option<i64>> {
    let mut end = chain_end.unwrap_or(i64::MIN);
    grants
        .iter()
        .map(|g| {
            if g.revoked_at.is_some() {
                return None;
            }
            match g.term {
                Term::Days(_) => {
                    end = end.max(g.paid_at).saturating_add(pass_seconds(g));
                    Some(end)
                }
                Term::Window { until, .. } | Term::Until(until) => Some(until),
                Term::Forever => None,
            }
        })
        .collect()
}

fn window_of(g: &Grant, from: i64, until: Option<i64>) -> GrantWindow {
    GrantWindow {
        scope: g.scope.clone(),
        product_id: g.product_id.clone(),
        source_id: g.source_id.clone(),
        valid_from: from,
        valid_until: until,
    }
}

/// Grants that still matter at `now`: current or yet to start (a ticket for next week).
pub fn live(grants: &[Grant], now: i64) -> Vec<GrantWindow> {
    live_with(grants, &[], now)
}

/// [`live`] of live grants and the checkpoints of their ended ones.
pub fn live_with(grants: &[Grant], checkpoints: &[Checkpoint], now: i64) -> Vec<GrantWindow> {
    let mut w: Vec<_> = windows_with(grants, checkpoints)
        .into_iter()
        .filter(|w| !w.is_over(now))
        .collect();
    w.sort_by(|a, b| {
        (&a.scope, a.valid_from, &a.source_id).cmp(&(&b.scope, b.valid_from, &b.source_id))
    });
    w
}

/// Whether any of `scopes` is open at `now`.
pub fn entitled(grants: &[Grant], scopes: &[String], now: i64) -> bool {
    entitled_with(grants, &[], scopes, now)
}

/// [`entitled`] from live grants and the checkpoints of their ended ones.
pub fn entitled_with(
    grants: &[Grant],
    checkpoints: &[Checkpoint],
    scopes: &[String],
    now: i64,
) -> bool {
    windows_with(grants, checkpoints)
        .iter()
        .any(|w| scopes.contains(&w.scope) && w.covers(now))
}

/// What opens `scopes` now: `(true, _)` when a grant without a view limit covers one of
/// them; otherwise the covering grants with `max_views`, as (source id, limit), oldest
/// payment first (the order their views are used), empty when none covers.
pub fn entitlement_with(
    grants: &[Grant],
    checkpoints: &[Checkpoint],
    scopes: &[String],
    now: i64,
) -> (bool, Vec<(String, u32)>) {
    let limits: BTreeMap<&str, (i64, u32)> = grants
        .iter()
        .filter_map(|g| g.max_views.map(|m| (g.source_id.as_str(), (g.paid_at, m))))
        .collect();
    let mut counted: Vec<(i64, String, u32)> = Vec::new();
    for w in windows_with(grants, checkpoints) {
        if !scopes.contains(&w.scope) || !w.covers(now) {
            continue;
        }
        match limits.get(w.source_id.as_str()) {
            None => return (true, Vec::new()),
            Some(&(paid_at, max)) => {
                if !counted.iter().any(|(_, s, _)| *s == w.source_id) {
                    counted.push((paid_at, w.source_id.clone(), max));
                }
            }
        }
    }
    counted.sort();
    (false, counted.into_iter().map(|(_, s, m)| (s, m)).collect())
}

/// The answer to "can this user use this product now" (Huya's checkStreamerCanUseGoods).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductStatus {
    pub can_use: bool,
    /// The end of the product's continuous access from now; `None` when not usable or forever.
    pub expires_at: Option<i64>,
    pub had_bought: bool,
    /// Huya's `checkStreamerGoodsExpire` answer, for mini-program front ends written against
    /// it: the unix second the product's access ends (in the past once over), `-1` when never
    /// bought, `None` when a purchase never ends.
    pub expire: Option<i64>,
}

pub fn product_status(grants: &[Grant], product_id: &str, now: i64) -> ProductStatus {
    product_status_with(grants, &[], product_id, now)
}

/// [`product_status`] from live grants and the checkpoints of their ended ones: an archived
/// purchase still counts as bought, and its end as the latest end when it is the latest.
pub fn product_status_with(
    grants: &[Grant],
    checkpoints: &[Checkpoint],
    product_id: &str,
    now: i64,
) -> ProductStatus {
    let archived_end = checkpoints
        .iter()
        .filter_map(|c| c.products.get(product_id).copied())
        .max();
    let had_bought = archived_end.is_some()
        || grants
            .iter()
            .any(|g| g.product_id == product_id && g.revoked_at.is_none());
    let mine: Vec<_> = windows_with(grants, checkpoints)
        .into_iter()
        .filter(|w| w.product_id == product_id)
        .collect();
    let can_use = mine.iter().any(|w| w.covers(now));
    let expires_at = if can_use && mine.iter().all(|w| w.valid_until.is_some()) {
        mine.iter()
            .filter(|w| !w.is_over(now))
            .filter_map(|w| w.valid_until)
            .max()
    } else {
        None
    };
    let expire = if !had_bought {
        Some(-1)
    } else if mine.iter().all(|w| w.valid_until.is_some()) {
        mine.iter()
            .filter_map(|w| w.valid_until)
            .chain(archived_end)
            .max()
    } else {
        None
    };
    ProductStatus {
        can_use,
        expires_at,
        had_bought,
        expire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(src: &str, paid_at: i64, days: u32) -> Grant {
        Grant {
            scope: "channel:main".into(),
            product_id: "pass".into(),
            source_id: src.into(),
            paid_at,
            term: Term::Days(days),
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        }
    }

    #[test]
    fn passes_stack_and_refund_removes_own_days() {
        let mut g = vec![pass("b", 10, 7), pass("a", 0, 30)];
        let w = windows(&g);
        let a = w.iter().find(|x| x.source_id == "a").unwrap();
        let b = w.iter().find(|x| x.source_id == "b").unwrap();
        assert_eq!((a.valid_from, a.valid_until), (0, Some(30 * DAY)));
        assert_eq!((b.valid_from, b.valid_until), (30 * DAY, Some(37 * DAY)));
        g[1].revoked_at = Some(20);
        let w = windows(&g);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].valid_from, w[0].valid_until),
            (10, Some(10 + 7 * DAY))
        );
    }

    #[test]
    fn a_gap_restarts_the_clock() {
        let g = vec![pass("a", 0, 1), pass("b", 5 * DAY, 1)];
        let w = windows(&g);
        let b = w.iter().find(|x| x.source_id == "b").unwrap();
        assert_eq!((b.valid_from, b.valid_until), (5 * DAY, Some(6 * DAY)));
        let scopes = vec!["channel:main".to_string()];
        assert!(entitled(&g, &scopes, DAY - 1));
        assert!(!entitled(&g, &scopes, DAY));
        assert!(entitled(&g, &scopes, 5 * DAY));
    }

    #[test]
    fn event_window_and_status() {
        let g = vec![Grant {
            scope: "stream:c".into(),
            product_id: "c".into(),
            source_id: "o1".into(),
            paid_at: 0,
            term: Term::Window {
                from: 100,
                until: 200,
            },
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        }];
        let s = vec!["stream:c".to_string()];
        assert!(!entitled(&g, &s, 99));
        assert!(entitled(&g, &s, 100));
        assert!(!entitled(&g, &s, 200));
        assert_eq!(live(&g, 50).len(), 1, "a ticket for later is live");
        assert_eq!(live(&g, 200).len(), 0);
        let st = product_status(&g, "c", 150);
        assert_eq!(
            st,
            ProductStatus {
                can_use: true,
                expires_at: Some(200),
                had_bought: true,
                expire: Some(200),
            }
        );
        let st = product_status(&g, "c", 250);
        assert_eq!(
            st,
            ProductStatus {
                can_use: false,
                expires_at: None,
                had_bought: true,
                expire: Some(200),
            }
        );
        let never = product_status(&g, "other", 150);
        assert!(!never.had_bought);
        assert_eq!(never.expire, Some(-1), "Huya's answer for never bought");
    }
}

#[cfg(test)]
mod subscription_tests {
    use super::*;

    fn g(scope: &str, product: &str, src: &str, paid_at: i64, term: Term) -> Grant {
        Grant {
            scope: scope.into(),
            product_id: product.into(),
            source_id: src.into(),
            paid_at,
            term,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        }
    }

    #[test]
    fn subscriptions_run_until_the_store_expiry_and_revocation_ends_them() {
        let mut grants = vec![
            g("channel:vip", "vip", "apple-1", 100, Term::Until(1_000)),
            g("channel:main", "vip", "apple-1", 100, Term::Until(1_000)),
            g("channel:main", "lifetime", "o9", 50, Term::Forever),
        ];
        let vip = vec!["channel:vip".to_string()];
        assert!(!entitled(&grants, &vip, 99));
        assert!(entitled(&grants, &vip, 999));
        assert!(!entitled(&grants, &vip, 1_000));
        assert_eq!(live(&grants, 500).len(), 3);
        assert_eq!(live(&grants, 1_000).len(), 1, "only the forever grant");
        assert_eq!(
            product_status(&grants, "vip", 500),
            ProductStatus {
                can_use: true,
                expires_at: Some(1_000),
                had_bought: true,
                expire: Some(1_000),
            }
        );
        assert_eq!(
            product_status(&grants, "lifetime", 500),
            ProductStatus {
                can_use: true,
                expires_at: None,
                had_bought: true,
                expire: None,
            }
        );
        // A refund or revocation removes the grant at once, before its expiry.
        grants[0].revoked_at = Some(400);
        grants[1].revoked_at = Some(400);
        assert!(!entitled(&grants, &vip, 500));
        assert_eq!(live(&grants, 500).len(), 1);
        assert_eq!(
            product_status(&grants, "vip", 500),
            ProductStatus {
                can_use: false,
                expires_at: None,
                had_bought: false,
                expire: Some(-1),
            }
        );
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn terms_round_trip_as_json() {
        for t in [
            Term::Days(7),
            Term::Window { from: 1, until: 2 },
            Term::Until(5),
            Term::Forever,
        ] {
            let text = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Term>(&text).unwrap(), t, "{text}");
        }
    }
}

/// The entitlement rule against a deliberately different reference model, on seeded random
/// grant sets: passes as a bucket of days drained one day at a time (so stacking is
/// simulated, not folded), windows and expiries as plain interval checks, revoked grants
/// dropped. Times are whole days so the bucket model is exact.
#[cfg(test)]
mod properties {
    use super::*;

    // Seeded (the seed is printed on failure).
    use crate::domain::test_rng::Rng;

    const SCOPES: [&str; 3] = ["channel:main", "channel:vip", "stream:x"];
    const HORIZON: i64 = 40;

    fn random_grants(rng: &mut Rng) -> Vec<Grant> {
        (0..rng.below(8))
            .map(|i| {
                let paid = rng.below(HORIZON as u64);
                let term = match rng.below(4) {
                    0 | 1 => Term::Days(1 + rng.below(6) as u32),
                    2 => {
                        let from = rng.below(HORIZON as u64);
                        Term::Window {
                            from: from * DAY,
                            until: (from + 1 + rng.below(5)) * DAY,
                        }
                    }
                    _ if rng.below(3) == 0 => Term::Forever,
                    _ => Term::Until((paid + rng.below(10)) * DAY),
                };
                Grant {
                    scope: SCOPES[rng.below(3) as usize].into(),
                    product_id: "p".into(),
                    source_id: format!("o{}", rng.below(4) * 10 + i),
                    paid_at: paid * DAY,
                    term,
                    revoked_at: (rng.below(5) == 0).then_some((paid + 1) * DAY),
                    revoked_by: None,
                    revoke_reason: None,
                    max_views: None,
                    provider: None,
                }
            })
            .collect()
    }

    /// Reference: is `scope` open during day `day`?
    fn reference(grants: &[Grant], scope: &str, day: i64) -> bool {
        let live: Vec<&Grant> = grants
            .iter()
            .filter(|g| g.scope == scope && g.revoked_at.is_none())
            .collect();
        let t = day * DAY;
        let plain = live.iter().any(|g| match g.term {
            Term::Days(_) => false,
            Term::Window { from, until } => from <= t && t < until,
            Term::Until(until) => g.paid_at <= t && t < until,
            Term::Forever => g.paid_at <= t,
        });
        let mut bucket = 0i64;
        let mut open = false;
        for d in 0..=day {
            bucket += live
                .iter()
                .filter(|g| g.paid_at == d * DAY)
                .map(|g| match g.term {
                    Term::Days(n) => i64::from(n),
                    _ => 0,
                })
                .sum::<i64>();
            open = bucket > 0;
            if open {
                bucket -= 1;
            }
        }
        plain || open
    }

    #[test]
    fn entitled_matches_the_reference_model() {
        for seed in 1..=400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let grants = random_grants(&mut rng);
            let wanted: Vec<String> = SCOPES
                .iter()
                .filter(|_| rng.below(2) == 0)
                .map(|s| s.to_string())
                .collect();
            for day in 0..HORIZON + 40 {
                for t in [day * DAY, day * DAY + DAY / 2, day * DAY + DAY - 1] {
                    let expected = wanted.iter().any(|s| reference(&grants, s, day));
                    assert_eq!(
                        entitled(&grants, &wanted, t),
                        expected,
                        "seed {seed}, t {t} (day {day}), scopes {wanted:?}, grants {grants:#?}"
                    );
                }
            }
        }
    }

    #[test]
    fn revoking_never_adds_access_and_stacking_never_loses_days() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
            let mut grants = random_grants(&mut rng);
            let all: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
            let before: Vec<bool> = (0..HORIZON * 2)
                .map(|d| entitled(&grants, &all, d * DAY))
                .collect();
            // Pass days of one scope are never lost to overlap: covered days == bought days.
            for scope in SCOPES {
                let only_passes: Vec<Grant> = grants
                    .iter()
                    .filter(|g| g.scope == scope && matches!(g.term, Term::Days(_)))
                    .cloned()
                    .collect();
                let bought: i64 = only_passes
                    .iter()
                    .filter(|g| g.revoked_at.is_none())
                    .map(|g| match g.term {
                        Term::Days(n) => i64::from(n),
                        _ => 0,
                    })
                    .sum();
                let s = vec![scope.to_string()];
                let covered = (0..HORIZON + 60)
                    .filter(|d| entitled(&only_passes, &s, d * DAY))
                    .count() as i64;
                assert_eq!(covered, bought, "seed {seed} scope {scope}");
            }
            if grants.is_empty() {
                continue;
            }
            let i = rng.below(grants.len() as u64) as usize;
            grants[i].revoked_at = Some(0);
            for (d, was) in before.iter().enumerate() {
                let now = entitled(&grants, &all, d as i64 * DAY);
                assert!(!now || *was, "seed {seed}: revoking opened day {d}");
            }
        }
    }
}

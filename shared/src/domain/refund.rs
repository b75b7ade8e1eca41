//! Refunds: how a reported refund counts against the order it refunds.
//!
//! Refunds add up on the order (`refunded_amount`, with the ids of the refunds counted).
//! Access is all or nothing per order, so it ends only when the refunds reach what was paid;
//! until then a refund is recorded and access kept. A refund in another currency than the
//! order's, or of more than remains unrefunded, is refused: no genuine provider sends one,
//! so it needs an operator, not a guess.
//!
//! [`decide`] is the rule. What it decides is written with conditions on exactly what it was
//! decided from ([`RefundCount`]), so a repeated or concurrent report is counted once and
//! the refund that completes the total revokes once.

use super::money::{Currency, Money};
use super::order::{Order, OrderState};

/// How a provider names a refund, which decides how its amount counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRef {
    /// One refund, by the provider's id for it (WeChat Pay's `refund_id`): the reported
    /// amount is what this refund alone returned, counted once per id.
    Single(String),
    /// The reported amount is everything refunded on the payment so far (Alipay's
    /// `refund_fee`; a whole refund from a source that names no refunds, like the sandbox
    /// and the app stores): only what exceeds the refunds already counted is new. The
    /// provider's id for the refund is recorded when it gives one.
    SoFar(Option<String>),
}

/// A refund as a provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReport {
    /// The payment refunded: it must be the one that paid the order.
    pub provider_txn_id: String,
    /// What was refunded, counted as `refund` says.
    pub refunded: Money,
    /// The order's total as the provider states it.
    pub order_total: Money,
    pub refund: RefundRef,
}

/// One refund to count on a PAID order, as one conditional write: add `add` to its refunded
/// total and record `refund_id`, only while the order is PAID, `refund_id` is not recorded
/// yet and the total before lies in `before_min..=before_max` (what the decision was made
/// on). When any of these fails, the write changes nothing and the decision is made again on
/// the order as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundCount {
    pub refund_id: String,
    /// Minor units of the order's currency.
    pub add: i64,
    pub before_min: i64,
    pub before_max: i64,
}

impl RefundCount {
    /// Whether the write's conditions hold for `order` as stored.
    pub fn applies_to(&self, order: &Order) -> bool {
        order.state == OrderState::Paid
            && !order.refund_ids.contains(&self.refund_id)
            && (self.before_min..=self.before_max).contains(&order.refunded_amount)
    }
}

/// A refund the provider took back (Apple's REFUND_REVERSED of a one-time purchase): the
/// order returns REFUNDED → PAID, the grants that refund revoked and the coins it took back
/// are restored, the refunds counted are cleared (so a later refund counts again), and the
/// reversal is recorded on the order. One write, only while the order is REFUNDED by exactly
/// the refund the reversal was decided on ([`RefundReversal::applies_to`]): a duplicate or
/// concurrent reversal, or one racing a newer refund, changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReversal {
    /// The payment whose refund is reversed: the one that paid the order.
    pub provider_txn_id: String,
    /// The order's `refunded_at` as read: which refund is reversed.
    pub refunded_at: i64,
    /// When the provider reversed it (recorded as `refund_reversed_at`).
    pub reversed_at: i64,
    /// Recorded as `refund_reversal_reason`, for support.
    pub reason: String,
}

impl RefundReversal {
    /// Whether the write's conditions hold for `order` as stored.
    pub fn applies_to(&self, order: &Order) -> bool {
        order.state == OrderState::Refunded
            && order.provider_txn_id.as_deref() == Some(self.provider_txn_id.as_str())
            && order.refunded_at == Some(self.refunded_at)
    }
}

/// What a reported refund means for its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundDecision {
    /// Counted already (a repeated notification): acknowledge, change nothing.
    AlreadyCounted,
    /// Count it; the refunds stay below what was paid, so access is kept.
    Count(RefundCount),
    /// Count it: it brings the refunds to what was paid, so in the same write the order
    /// becomes REFUNDED and its grants and coins are taken back.
    CountAndRevoke(RefundCount),
}

/// Why a reported refund is not applied. Nothing changes; the provider gets its failure
/// answer and retries, while an operator looks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    #[error("refund in {got}, but the order was paid in {paid}")]
    WrongCurrency { paid: Currency, got: Currency },
    #[error("refunds would total {total}, more than the {paid} paid")]
    MoreThanPaid { paid: Money, total: Money },
    #[error("refund of nothing")]
    Nothing,
    #[error("refund of another payment than the one that paid the order")]
    OtherPayment,
    #[error("refund for an order that is {0}")]
    NotPaid(&'static str),
}

impl RefundRefused {
    /// A stable label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RefundRefused::WrongCurrency { .. } => "refund_currency",
            RefundRefused::MoreThanPaid { .. } => "refund_exceeds_paid",
            RefundRefused::Nothing => "refund_empty",
            RefundRefused::OtherPayment | RefundRefused::NotPaid(_) => "not_refundable",
        }
    }
}

/// The rule: what `report` does to `order` as it was read.
pub fn decide(order: &Order, report: &RefundReport) -> Result<RefundDecision, RefundRefused> {
    let paid = order.amount;
    for got in [report.refunded.currency, report.order_total.currency] {
        if got != paid.currency {
            return Err(RefundRefused::WrongCurrency {
                paid: paid.currency,
                got,
            });
        }
    }
    if !matches!(order.state, OrderState::Paid | OrderState::Refunded) {
        return Err(RefundRefused::NotPaid(order.state.as_str()));
    }
    if order.provider_txn_id.as_deref() != Some(report.provider_txn_id.as_str()) {
        return Err(RefundRefused::OtherPayment);
    }
    // A REFUNDED order was refunded whole, whatever it recorded (orders refunded before
    // refunds were counted recorded nothing).
    let before = match order.state {
        OrderState::Refunded => paid.amount,
        _ => order.refunded_amount,
    };
    let more_than_paid = |total: i64| RefundRefused::MoreThanPaid {
        paid,
        total: Money {
            amount: total,
            currency: paid.currency,
        },
    };
    match &report.refund {
        RefundRef::Single(id) => {
            if order.refund_ids.contains(id) {
                return Ok(RefundDecision::AlreadyCounted);
            }
            let add = report.refunded.amount;
            if add == 0 {
                return Err(RefundRefused::Nothing);
            }
            let total = before.saturating_add(add);
            if total > paid.amount {
                return Err(more_than_paid(total));
            }
            let refund_id = id.clone();
            Ok(if total == paid.amount {
                RefundDecision::CountAndRevoke(RefundCount {
                    refund_id,
                    add,
                    before_min: before,
                    before_max: before,
                })
            } else {
                // Another refund may land first: any total before that keeps this one
                // partial will do, so concurrent partial refunds never wait on each other.
                RefundDecision::Count(RefundCount {
                    refund_id,
                    add,
                    before_min: 0,
                    before_max: paid.amount - add - 1,
                })
            })
        }
        RefundRef::SoFar(id) => {
            let total = report.refunded.amount;
            if total > paid.amount {
                return Err(more_than_paid(total));
            }
            let refund_id = id.clone().unwrap_or_else(|| format!("so-far:{total}"));
            if order.state == OrderState::Refunded || order.refund_ids.contains(&refund_id) {
                return Ok(RefundDecision::AlreadyCounted);
            }
            // What is new depends on what is counted: the write holds only on that total.
            let count = RefundCount {
                refund_id,
                add: total - before,
                before_min: before,
                before_max: before,
            };
            Ok(if total == paid.amount {
                RefundDecision::CountAndRevoke(count)
            } else if total <= before {
                RefundDecision::AlreadyCounted
            } else {
                RefundDecision::Count(count)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::OrderId;

    fn money(amount: i64, currency: &str) -> Money {
        Money::new(amount, Currency::parse(currency).unwrap()).unwrap()
    }

    fn cny(fen: i64) -> Money {
        money(fen, "CNY")
    }

    /// A 9.00 CNY order paid by `txn-1`, with `refunded` fen counted under `ids`.
    fn paid(refunded: i64, ids: &[&str]) -> Order {
        let mut o: Order = serde_json::from_value(serde_json::json!({
            "order_id": OrderId::from_parts(1, [1; 10]).as_str(),
            "user_id": "u", "product_id": "pass", "plan_id": "7d",
            "amount": {"amount": 900, "currency": "CNY"}, "provider": "wechat", "channel": null,
            "grants": ["channel:main"], "term": null, "credits": 0, "state": "PAID",
            "created_at": 0, "expires_at": 900, "paid_at": 10, "late": false,
            "provider_txn_id": "txn-1", "closed_at": null, "refunded_at": null,
            "refunded_amount": 0, "refund_ids": [], "payment": null, "sweep_attempts": 0,
            "last_error": null
        }))
        .unwrap();
        o.refunded_amount = refunded;
        o.refund_ids = ids.iter().map(|s| s.to_string()).collect();
        o
    }

    fn single(fen: i64, id: &str) -> RefundReport {
        RefundReport {
            provider_txn_id: "txn-1".into(),
            refunded: cny(fen),
            order_total: cny(900),
            refund: RefundRef::Single(id.into()),
        }
    }

    fn so_far(fen: i64) -> RefundReport {
        RefundReport {
            refund: RefundRef::SoFar(None),
            ..single(fen, "")
        }
    }

    fn count(id: &str, add: i64, before_min: i64, before_max: i64) -> RefundCount {
        RefundCount {
            refund_id: id.into(),
            add,
            before_min,
            before_max,
        }
    }

    #[test]
    fn a_partial_refund_is_counted_and_keeps_access() {
        assert_eq!(
            decide(&paid(0, &[]), &single(1, "r1")),
            Ok(RefundDecision::Count(count("r1", 1, 0, 898)))
        );
        assert_eq!(
            decide(&paid(300, &["r1"]), &single(500, "r2")),
            Ok(RefundDecision::Count(count("r2", 500, 0, 399)))
        );
    }

    #[test]
    fn the_refund_that_reaches_what_was_paid_revokes() {
        assert_eq!(
            decide(&paid(0, &[]), &single(900, "r1")),
            Ok(RefundDecision::CountAndRevoke(count("r1", 900, 0, 0)))
        );
        assert_eq!(
            decide(&paid(300, &["r1"]), &single(600, "r2")),
            Ok(RefundDecision::CountAndRevoke(count("r2", 600, 300, 300)))
        );
    }

    #[test]
    fn a_refund_already_counted_changes_nothing() {
        assert_eq!(
            decide(&paid(300, &["r1"]), &single(300, "r1")),
            Ok(RefundDecision::AlreadyCounted)
        );
        let mut refunded = paid(900, &["r1", "r2"]);
        refunded.state = OrderState::Refunded;
        assert_eq!(
            decide(&refunded, &single(600, "r2")),
            Ok(RefundDecision::AlreadyCounted)
        );
    }

    #[test]
    fn more_than_remains_is_refused() {
        assert_eq!(
            decide(&paid(0, &[]), &single(901, "r1")),
            Err(RefundRefused::MoreThanPaid {
                paid: cny(900),
                total: cny(901)
            })
        );
        assert_eq!(
            decide(&paid(500, &["r1"]), &single(401, "r2")),
            Err(RefundRefused::MoreThanPaid {
                paid: cny(900),
                total: cny(901)
            })
        );
        assert!(decide(&paid(0, &[]), &single(i64::MAX, "r1")).is_err());
        assert!(decide(&paid(899, &["r1"]), &single(i64::MAX, "r2")).is_err());
        // Nothing remains of a refunded order: a refund not counted yet is too much.
        let mut refunded = paid(0, &[]);
        refunded.state = OrderState::Refunded;
        assert!(matches!(
            decide(&refunded, &single(1, "r9")),
            Err(RefundRefused::MoreThanPaid { .. })
        ));
        assert_eq!(
            decide(&paid(0, &[]), &single(0, "r1")),
            Err(RefundRefused::Nothing)
        );
    }

    #[test]
    fn another_currency_is_refused_whatever_the_amount() {
        for fen in [1, 900, 100_000_000_000_000] {
            let usd = RefundReport {
                refunded: money(fen, "USD"),
                order_total: money(900, "USD"),
                ..single(fen, "r1")
            };
            assert_eq!(
                decide(&paid(0, &[]), &usd),
                Err(RefundRefused::WrongCurrency {
                    paid: Currency::CNY,
                    got: Currency::parse("USD").unwrap()
                })
            );
        }
        let mixed = RefundReport {
            order_total: money(900, "USD"),
            ..single(900, "r1")
        };
        assert!(matches!(
            decide(&paid(0, &[]), &mixed),
            Err(RefundRefused::WrongCurrency { .. })
        ));
    }

    #[test]
    fn only_the_paying_transaction_of_a_paid_order_refunds() {
        let mut pending = paid(0, &[]);
        pending.state = OrderState::Pending;
        assert_eq!(
            decide(&pending, &single(900, "r1")),
            Err(RefundRefused::NotPaid("PENDING"))
        );
        let other = RefundReport {
            provider_txn_id: "txn-2".into(),
            ..single(900, "r1")
        };
        assert_eq!(
            decide(&paid(0, &[]), &other),
            Err(RefundRefused::OtherPayment)
        );
    }

    #[test]
    fn running_totals_count_only_what_is_new() {
        assert_eq!(
            decide(&paid(0, &[]), &so_far(300)),
            Ok(RefundDecision::Count(count("so-far:300", 300, 0, 0)))
        );
        assert_eq!(
            decide(&paid(300, &["so-far:300"]), &so_far(500)),
            Ok(RefundDecision::Count(count("so-far:500", 200, 300, 300)))
        );
        // The same total again, or an older one arriving late: already counted.
        assert_eq!(
            decide(&paid(500, &["so-far:300", "so-far:500"]), &so_far(500)),
            Ok(RefundDecision::AlreadyCounted)
        );
        assert_eq!(
            decide(&paid(500, &["so-far:300", "so-far:500"]), &so_far(400)),
            Ok(RefundDecision::AlreadyCounted)
        );
        assert_eq!(
            decide(&paid(500, &["so-far:500"]), &so_far(900)),
            Ok(RefundDecision::CountAndRevoke(count(
                "so-far:900",
                400,
                500,
                500
            )))
        );
        assert!(matches!(
            decide(&paid(500, &[]), &so_far(901)),
            Err(RefundRefused::MoreThanPaid { .. })
        ));
        let mut refunded = paid(900, &["so-far:900"]);
        refunded.state = OrderState::Refunded;
        assert_eq!(
            decide(&refunded, &so_far(900)),
            Ok(RefundDecision::AlreadyCounted)
        );
        // The provider's own id is what is recorded when it gives one.
        let named = RefundReport {
            refund: RefundRef::SoFar(Some("2020032600001".into())),
            ..so_far(300)
        };
        assert_eq!(
            decide(&paid(0, &[]), &named),
            Ok(RefundDecision::Count(count("2020032600001", 300, 0, 0)))
        );
    }

    #[test]
    fn a_whole_refund_of_a_free_order_revokes() {
        // Store voids of store-priced products carry no money of ours: whole by definition.
        let none = money(0, "XXX");
        let mut o = paid(0, &[]);
        o.amount = none;
        let void = RefundReport {
            refunded: none,
            order_total: none,
            ..so_far(0)
        };
        assert_eq!(
            decide(&o, &void),
            Ok(RefundDecision::CountAndRevoke(count("so-far:0", 0, 0, 0)))
        );
        o.state = OrderState::Refunded;
        assert_eq!(decide(&o, &void), Ok(RefundDecision::AlreadyCounted));
    }

    #[test]
    fn a_reversal_applies_only_to_the_refund_it_was_decided_on() {
        let mut refunded = paid(900, &["so-far:900"]);
        refunded.state = OrderState::Refunded;
        refunded.refunded_at = Some(50);
        let r = RefundReversal {
            provider_txn_id: "txn-1".into(),
            refunded_at: 50,
            reversed_at: 60,
            reason: "test".into(),
        };
        assert!(r.applies_to(&refunded));
        assert!(!r.applies_to(&paid(0, &[])), "not refunded");
        let mut later = refunded.clone();
        later.refunded_at = Some(70);
        assert!(!r.applies_to(&later), "refunded again since");
        let other = RefundReversal {
            provider_txn_id: "txn-2".into(),
            ..r.clone()
        };
        assert!(!other.applies_to(&refunded), "another payment");
    }

    #[test]
    fn a_count_applies_only_to_what_it_was_decided_on() {
        let c = count("r2", 500, 0, 399);
        assert!(c.applies_to(&paid(300, &["r1"])));
        assert!(!c.applies_to(&paid(400, &["r1"])), "would reach the total");
        assert!(!c.applies_to(&paid(300, &["r2"])), "already counted");
        let mut refunded = paid(300, &["r1"]);
        refunded.state = OrderState::Refunded;
        assert!(!c.applies_to(&refunded));
    }
}

//! Refunds Tollgate starts: an operator's request to give money back, recorded before the
//! provider is asked, so that a crash, a timeout or a repeated request never loses it or
//! asks the provider twice for two different refunds.
//!
//! A request is filed under its order with an id derived from the order and the operator's
//! `Idempotency-Key` ([`out_refund_no`]): the same key always names the same refund, at
//! Tollgate and at the provider (WeChat Pay's `out_refund_no`, Alipay's `out_request_no`),
//! which both dedupe on it. While a request waits for the provider (REQUESTED, PENDING) its
//! amount is held on the order (`refund_requested`), so that requests in flight can never
//! together ask for more than remains; the provider's confirmation counts it like any
//! reported refund and releases the hold, a refusal releases it alone.

use super::ids::OrderId;
use super::order::Order;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest `reason` an operator may give (characters); it goes to the provider too
/// (WeChat Pay allows 80, Alipay 256).
pub const MAX_REASON_CHARS: usize = 80;

/// Where a refund request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundRequestState {
    /// Recorded; the provider has not (knowingly) accepted it yet. The sweeper sends it
    /// again with the same id when its check is due.
    Requested,
    /// The provider accepted it and is processing it: the sweeper asks how it went.
    Pending,
    /// The provider returned the money: counted on the order.
    Confirmed,
    /// The provider refused it: nothing counted, the held amount released.
    Failed,
}

impl RefundRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundRequestState::Requested => "REQUESTED",
            RefundRequestState::Pending => "PENDING",
            RefundRequestState::Confirmed => "CONFIRMED",
            RefundRequestState::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "REQUESTED" => RefundRequestState::Requested,
            "PENDING" => RefundRequestState::Pending,
            "CONFIRMED" => RefundRequestState::Confirmed,
            "FAILED" => RefundRequestState::Failed,
            _ => return None,
        })
    }

    /// Still waiting for the provider: its amount is held and the sweeper looks at it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RefundRequestState::Requested | RefundRequestState::Pending
        )
    }
}

/// One refund an operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub order_id: OrderId,
    /// Ours, derived from the order and the Idempotency-Key ([`out_refund_no`]).
    pub out_refund_no: String,
    /// Minor units of the order's currency.
    pub amount: i64,
    pub reason: String,
    /// The operator (token `sub` or IAM ARN).
    pub requested_by: String,
    pub requested_at: i64,
    /// What the request said ([`request_hash`]): the same key with another body is refused.
    pub request_hash: String,
    pub state: RefundRequestState,
    /// The provider's id for the refund once it gave one (WeChat Pay's `refund_id`).
    pub provider_refund_id: Option<String>,
    /// Why the provider refused it (its code), or the last trouble reaching it.
    pub failure: Option<String>,
    /// When the state last changed.
    pub updated_at: i64,
    /// While open: when the sweeper looks at it next (its due-index entry).
    pub next_check_at: Option<i64>,
    /// Times the sweeper could not get an answer.
    pub attempts: u32,
}

/// The refund id for the operator's `Idempotency-Key` on `order`: `R` and 32 hex digits of
/// SHA-256 over both, so that a repeated request names the same refund (and the provider,
/// which dedupes on it, never pays out twice), while keys may hold any printable character.
/// 33 characters of `[0-9A-Za-z]`: within WeChat Pay's `out_refund_no` (64) and Alipay's
/// `out_request_no` (64) alphabets.
pub fn out_refund_no(order: &OrderId, idempotency_key: &str) -> String {
    let h = Sha256::digest(format!("refund\n{order}\n{idempotency_key}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("R{hex}")
}

/// What a request said, to tell a replay from another request under the same key: the
/// amount as given (`None`: all that remains) and the reason.
pub fn request_hash(amount: Option<i64>, reason: &str) -> String {
    let amount = amount.map_or_else(|| "rest".to_owned(), |a| a.to_string());
    let h = Sha256::digest(format!("{amount}\n{reason}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// What may still be refunded of `order`: what was paid, less the refunds counted and the
/// requests still waiting for their provider.
pub fn remaining(order: &Order) -> i64 {
    order
        .amount
        .amount
        .saturating_sub(order.refunded_amount)
        .saturating_sub(order.refund_requested)
        .max(0)
}

/// How a new request holds its amount on the order, as one conditional write: `ADD
/// refund_requested amount`, only while the order is PAID, its counted refunds are exactly
/// `refunded` (what the decision read) and what is already held is at most `held_max`. So
/// concurrent requests never together hold more than remains, without waiting on each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundHold {
    pub amount: i64,
    pub refunded: i64,
    pub held_max: i64,
}

impl RefundHold {
    /// The hold for `amount` on `order` as read; `None` when more than remains.
    pub fn on(order: &Order, amount: i64) -> Option<RefundHold> {
        if amount <= 0 || amount > remaining(order) {
            return None;
        }
        Some(RefundHold {
            amount,
            refunded: order.refunded_amount,
            held_max: order.amount.amount - order.refunded_amount - amount,
        })
    }

    /// Whether the write's conditions hold for `order` as stored.
    pub fn applies_to(&self, order: &Order) -> bool {
        order.state == super::order::OrderState::Paid
            && order.refunded_amount == self.refunded
            && order.refund_requested <= self.held_max
    }
}

/// A change of an open request, written only while it is still open (REQUESTED or
/// PENDING), so that the sweeper and a synchronous answer never both finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequestChange {
    /// The provider accepted it and is processing it: look again at `next_check_at`.
    Pending {
        provider_refund_id: Option<String>,
        next_check_at: i64,
        at: i64,
    },
    /// No answer (network, timeout): try again at `next_check_at`.
    Retry {
        attempts: u32,
        failure: String,
        next_check_at: i64,
    },
    /// Confirmed or failed: leaves the due index and releases the held amount on the order.
    Finished {
        state: RefundRequestState,
        provider_refund_id: Option<String>,
        failure: Option<String>,
        at: i64,
    },
}

impl RefundRequest {
    /// `self` with `change` applied.
    pub fn changed(&self, change: &RefundRequestChange) -> RefundRequest {
        let mut r = self.clone();
        match change {
            RefundRequestChange::Pending {
                provider_refund_id,
                next_check_at,
                at,
            } => {
                r.state = RefundRequestState::Pending;
                if provider_refund_id.is_some() {
                    r.provider_refund_id.clone_from(provider_refund_id);
                }
                r.next_check_at = Some(*next_check_at);
                r.updated_at = *at;
            }
            RefundRequestChange::Retry {
                attempts,
                failure,
                next_check_at,
            } => {
                r.attempts = *attempts;
                r.failure = Some(failure.clone());
                r.next_check_at = Some(*next_check_at);
            }
            RefundRequestChange::Finished {
                state,
                provider_refund_id,
                failure,
                at,
            } => {
                r.state = *state;
                if provider_refund_id.is_some() {
                    r.provider_refund_id.clone_from(provider_refund_id);
                }
                r.failure.clone_from(failure);
                r.next_check_at = None;
                r.updated_at = *at;
            }
        }
        r
    }
}

/// When to look at an open request again after `attempts` unanswered tries: 1, 2, 4 …
/// minutes, at most an hour.
pub fn next_check(now: i64, attempts: u32) -> i64 {
    now + (60i64 << attempts.min(6)).min(3_600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::OrderState;

    fn order(paid: i64, refunded: i64, held: i64) -> Order {
        let mut o: Order = serde_json::from_value(serde_json::json!({
            "order_id": OrderId::from_parts(1, [1; 10]).as_str(),
            "user_id": "u", "product_id": "pass", "plan_id": "7d",
            "amount": {"amount": paid, "currency": "CNY"}, "provider": "wechat", "channel": null,
            "grants": ["channel:main"], "term": null, "credits": 0, "state": "PAID",
            "created_at": 0, "expires_at": 900, "paid_at": 10, "late": false,
            "provider_txn_id": "txn-1", "closed_at": null, "refunded_at": null,
            "refunded_amount": 0, "refund_ids": [], "payment": null, "sweep_attempts": 0,
            "last_error": null
        }))
        .unwrap();
        o.refunded_amount = refunded;
        o.refund_requested = held;
        o
    }

    #[test]
    fn the_same_key_names_the_same_refund_and_fits_both_providers() {
        let a = OrderId::from_parts(1, [1; 10]);
        let b = OrderId::from_parts(1, [2; 10]);
        let r = out_refund_no(&a, "key-1");
        assert_eq!(r, out_refund_no(&a, "key-1"));
        assert_ne!(r, out_refund_no(&a, "key-2"));
        assert_ne!(r, out_refund_no(&b, "key-1"));
        assert_eq!(r.len(), 33);
        assert!(r.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(request_hash(None, "x"), request_hash(None, "x"));
        assert_ne!(request_hash(None, "x"), request_hash(Some(900), "x"));
        assert_ne!(request_hash(Some(1), "x"), request_hash(Some(1), "y"));
    }

    #[test]
    fn what_remains_leaves_out_counted_and_held_refunds() {
        assert_eq!(remaining(&order(900, 0, 0)), 900);
        assert_eq!(remaining(&order(900, 300, 200)), 400);
        assert_eq!(remaining(&order(900, 900, 0)), 0);
        assert_eq!(remaining(&order(900, 600, 600)), 0, "never negative");
    }

    #[test]
    fn a_hold_is_refused_beyond_what_remains_and_applies_only_to_what_it_read() {
        let o = order(900, 300, 200);
        assert_eq!(RefundHold::on(&o, 401), None);
        assert_eq!(RefundHold::on(&o, 0), None);
        assert_eq!(RefundHold::on(&o, -5), None);
        let h = RefundHold::on(&o, 400).unwrap();
        assert_eq!(h.held_max, 200);
        assert!(h.applies_to(&o));
        assert!(!h.applies_to(&order(900, 300, 201)), "more held since");
        assert!(h.applies_to(&order(900, 300, 100)), "less held since");
        assert!(
            !h.applies_to(&order(900, 400, 100)),
            "a refund counted since"
        );
        let mut refunded = o.clone();
        refunded.state = OrderState::Refunded;
        assert!(!h.applies_to(&refunded));
    }

    #[test]
    fn checks_back_off_to_an_hour() {
        assert_eq!(next_check(0, 0), 60);
        assert_eq!(next_check(0, 1), 120);
        assert_eq!(next_check(0, 5), 1920);
        assert_eq!(next_check(0, 6), 3600);
        assert_eq!(next_check(0, u32::MAX), 3600);
    }

    #[test]
    fn states_round_trip_as_text() {
        for s in [
            RefundRequestState::Requested,
            RefundRequestState::Pending,
            RefundRequestState::Confirmed,
            RefundRequestState::Failed,
        ] {
            assert_eq!(RefundRequestState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RefundRequestState::parse("requested"), None);
    }
}

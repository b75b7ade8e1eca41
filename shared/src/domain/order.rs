//! Orders and their state machine.
//!
//! ```text
//! PENDING --paid--> PAID --refund--> REFUNDED --refund reversed--> PAID
//! PENDING --timeout/closed--> EXPIRED --paid (late)--> PAID (late = true)
//! PENDING --user cancel--> CANCELLED --paid (late)--> PAID (late = true)
//! ```
//! Money the provider took is always honoured: a payment that lands after expiry or after a
//! cancel (the close raced the payment) settles the order as a late payment, never dropped.
//! A refund the store itself takes back (Apple's REFUND_REVERSED) returns the order to PAID,
//! recorded on the order (`refund_reversed_at`, `refund_reversal_reason`).

use super::catalog::Offer;
use super::grant::Term;
use super::ids::OrderId;
use super::money::Money;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    Pending,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "PENDING",
            OrderState::Paid => "PAID",
            OrderState::Expired => "EXPIRED",
            OrderState::Cancelled => "CANCELLED",
            OrderState::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => OrderState::Pending,
            "PAID" => OrderState::Paid,
            "EXPIRED" => OrderState::Expired,
            "CANCELLED" => OrderState::Cancelled,
            "REFUNDED" => OrderState::Refunded,
            _ => return None,
        })
    }

    /// States from which a reported payment settles the order.
    pub const PAYABLE: [OrderState; 3] = [
        OrderState::Pending,
        OrderState::Expired,
        OrderState::Cancelled,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Paid,
    Expire,
    Cancel,
    Refund,
    /// The provider reversed the refund that made the order REFUNDED.
    ReverseRefund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order in state {from:?} cannot take {event:?}")]
pub struct IllegalTransition {
    pub from: OrderState,
    pub event: OrderEvent,
}

/// The one place that says which transitions exist. Stores enforce the same rule with
/// conditions on the stored state, so a racing writer can never skip it.
pub fn next_state(from: OrderState, event: OrderEvent) -> Result<OrderState, IllegalTransition> {
    use OrderEvent as E;
    use OrderState as S;
    match (from, event) {
        (S::Pending | S::Expired | S::Cancelled, E::Paid) => Ok(S::Paid),
        (S::Pending, E::Expire) => Ok(S::Expired),
        (S::Pending, E::Cancel) => Ok(S::Cancelled),
        (S::Paid, E::Refund) => Ok(S::Refunded),
        (S::Refunded, E::ReverseRefund) => Ok(S::Paid),
        _ => Err(IllegalTransition { from, event }),
    }
}

/// The states an event may start from (for store conditions).
pub fn sources_of(event: OrderEvent) -> &'static [OrderState] {
    match event {
        OrderEvent::Paid => &OrderState::PAYABLE,
        OrderEvent::Expire | OrderEvent::Cancel => &[OrderState::Pending],
        OrderEvent::Refund => &[OrderState::Paid],
        OrderEvent::ReverseRefund => &[OrderState::Refunded],
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: String,
    pub product_id: String,
    pub plan_id: Option<String>,
    pub amount: Money,
    pub provider: String,
    pub channel: Option<String>,
    /// What a payment of this order grants, fixed when it was sold so that a later catalog
    /// edit never changes a purchase already made.
    pub grants: Vec<String>,
    pub term: Option<Term>,
    pub credits: i64,
    pub state: OrderState,
    pub created_at: i64,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    /// Paid after it had expired or been cancelled.
    pub late: bool,
    pub provider_txn_id: Option<String>,
    /// Set when the order leaves PENDING/PAID other than by payment.
    pub closed_at: Option<i64>,
    /// When an EXPIRED or CANCELLED order may be deleted (its `ttl`): the close time plus
    /// `ORDER_RETENTION_DAYS`. Never set on a paid order (a payment removes it): those are
    /// records and are kept.
    #[serde(default)]
    pub retain_until: Option<i64>,
    pub refunded_at: Option<i64>,
    /// Refunds counted so far, in minor units of `amount`'s currency: partial refunds add up
    /// here while the order stays PAID; the one that reaches `amount` makes it REFUNDED.
    pub refunded_amount: i64,
    /// The ids of the refunds counted in `refunded_amount`, so a repeated notification of
    /// the same refund is never counted twice.
    pub refund_ids: BTreeSet<String>,
    /// Refunds Tollgate asked the provider for and is still waiting on (minor units), held
    /// so that requests in flight never together exceed what remains
    /// ([`super::refund_request`]).
    #[serde(default)]
    pub refund_requested: i64,
    /// When a partial refund ended the order's access while it stayed PAID
    /// (`PARTIAL_REFUND_REVOKES`): its grants are revoked and its coins taken back then,
    /// once; the refund that completes the order later takes nothing back twice.
    #[serde(default)]
    pub access_revoked_at: Option<i64>,
    /// How many playback sessions each grant of the order serves, fixed at sale
    /// (`max_views` of the plan or product); `None`: unlimited.
    #[serde(default)]
    pub max_views: Option<u32>,
    /// What the client needs to pay with the provider (prepay id, pay URL...).
    pub payment: Option<serde_json::Value>,
    /// Times the sweeper could not reach the provider for this order.
    pub sweep_attempts: u32,
    /// Why the last background attempt failed for good, for an operator.
    pub last_error: Option<String>,
    /// When the provider last reversed a refund of this order (REFUNDED → PAID), kept so
    /// support can see why a refunded order grants again.
    #[serde(default)]
    pub refund_reversed_at: Option<i64>,
    /// What that reversal was (who reported it, which refund), for support.
    #[serde(default)]
    pub refund_reversal_reason: Option<String>,
    /// The catalog stream whose paywall the order was made from (`stream_id` of
    /// `POST /orders`), for the preview → purchase figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

impl Order {
    /// A new unpaid order for `offer`, payable until `expires_at`. What it grants is fixed
    /// now, from the catalog as it is, so a later catalog edit never changes it.
    pub fn pending(
        order_id: OrderId,
        user_id: &str,
        offer: &Offer<'_>,
        provider: &str,
        channel: Option<String>,
        created_at: i64,
        expires_at: i64,
    ) -> Order {
        Order {
            order_id,
            user_id: user_id.to_owned(),
            product_id: offer.product.id.clone(),
            plan_id: offer.plan.map(|p| p.id.clone()),
            amount: offer.price,
            provider: provider.to_owned(),
            channel,
            grants: offer.product.grants.clone(),
            term: offer.term(),
            credits: offer.product.credits.unwrap_or(0),
            max_views: offer.max_views(),
            state: OrderState::Pending,
            created_at,
            expires_at,
            paid_at: None,
            late: false,
            provider_txn_id: None,
            closed_at: None,
            retain_until: None,
            refunded_at: None,
            refunded_amount: 0,
            refund_ids: BTreeSet::new(),
            refund_requested: 0,
            access_revoked_at: None,
            payment: None,
            sweep_attempts: 0,
            last_error: None,
            refund_reversed_at: None,
            refund_reversal_reason: None,
            stream_id: None,
        }
    }

    /// An order a provider sold through its own storefront (Huya's panel): it exists only
    /// once paid, by `provider_txn_id` at `paid_at`.
    pub fn sold(
        order_id: OrderId,
        user_id: &str,
        offer: &Offer<'_>,
        provider: &str,
        provider_txn_id: &str,
        paid_at: i64,
    ) -> Order {
        Order {
            state: OrderState::Paid,
            paid_at: Some(paid_at),
            provider_txn_id: Some(provider_txn_id.to_owned()),
            ..Order::pending(order_id, user_id, offer, provider, None, paid_at, paid_at)
        }
    }

    /// The grants a payment at `paid_at` creates: one per scope, sourced by this order.
    /// The coins the order was paid with (0 unless paid with coins): what its refund
    /// gives back.
    pub fn coins_paid(&self) -> i64 {
        if self.amount.currency == super::Currency::COINS {
            self.amount.amount
        } else {
            0
        }
    }

    pub fn grants_at(&self, paid_at: i64) -> Vec<super::grant::Grant> {
        match self.term {
            None => Vec::new(),
            Some(term) => self
                .grants
                .iter()
                .map(|scope| super::grant::Grant {
                    scope: scope.clone(),
                    product_id: self.product_id.clone(),
                    source_id: self.order_id.to_string(),
                    paid_at,
                    term,
                    revoked_at: None,
                    revoked_by: None,
                    revoke_reason: None,
                    max_views: self.max_views,
                    provider: Some(self.provider.clone()),
                })
                .collect(),
        }
    }

    /// Orders are spread over this many due-index partitions so the sweeper's reads and the
    /// index's write load never concentrate on one key.
    pub const DUE_SHARDS: u32 = 16;

    pub fn due_shard(&self) -> u32 {
        due_shard(&self.order_id)
    }
}

/// FNV-1a over the id: stable across processes and builds (unlike `DefaultHasher`).
pub fn due_shard(id: &OrderId) -> u32 {
    super::fnv::fnv1a(id.as_str().bytes()) % Order::DUE_SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderState as S;

    #[test]
    fn transition_table() {
        let all_states = [S::Pending, S::Paid, S::Expired, S::Cancelled, S::Refunded];
        let all_events = [E::Paid, E::Expire, E::Cancel, E::Refund, E::ReverseRefund];
        let legal = [
            (S::Pending, E::Paid, S::Paid),
            (S::Expired, E::Paid, S::Paid),
            (S::Cancelled, E::Paid, S::Paid),
            (S::Pending, E::Expire, S::Expired),
            (S::Pending, E::Cancel, S::Cancelled),
            (S::Paid, E::Refund, S::Refunded),
            (S::Refunded, E::ReverseRefund, S::Paid),
        ];
        for from in all_states {
            for ev in all_events {
                let expect = legal
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == ev)
                    .map(|l| l.2);
                assert_eq!(next_state(from, ev).ok(), expect, "{from:?} {ev:?}");
                assert_eq!(sources_of(ev).contains(&from), expect.is_some());
            }
        }
    }

    #[test]
    fn states_round_trip_as_text() {
        for s in [S::Pending, S::Paid, S::Expired, S::Cancelled, S::Refunded] {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(S::parse("paid"), None);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..512u64 {
            let id = OrderId::from_parts(i, [i as u8; 10]);
            assert_eq!(due_shard(&id), due_shard(&id.clone()));
            seen.insert(due_shard(&id));
        }
        assert_eq!(seen.len(), Order::DUE_SHARDS as usize);
    }
}

//! Events out: what the app's backends are told about a state change. Each event is written
//! as a record in the same store transaction as the change it describes (an outbox), so
//! there is never a change without its event nor an event without its change; a dispatcher
//! delivers the records afterwards, at least once.
//!
//! Event ids are derived from what the change is about (type and subject: the order, the
//! refund, the grant), never drawn at random: the same change always names the same event,
//! so a record can be written conditioned on its absence and receivers dedupe on the id.

use super::grant::Grant;
use super::money::Money;
use super::order::{Order, OrderState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Every kind of event, by its wire name (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.expired")]
    OrderExpired,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "order.refunded")]
    OrderRefunded,
    #[serde(rename = "grant.created")]
    GrantCreated,
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    #[serde(rename = "subscription.renewed")]
    SubscriptionRenewed,
    #[serde(rename = "subscription.expired")]
    SubscriptionExpired,
    #[serde(rename = "subscription.grace_period")]
    SubscriptionGracePeriod,
    #[serde(rename = "subscription.revoked")]
    SubscriptionRevoked,
    /// A revoked subscription paid up again: the store reversed its refund.
    #[serde(rename = "subscription.restored")]
    SubscriptionRestored,
    #[serde(rename = "coins.credited")]
    CoinsCredited,
    #[serde(rename = "coins.debited")]
    CoinsDebited,
    #[serde(rename = "purchase.unattributed")]
    PurchaseUnattributed,
    #[serde(rename = "purchase.conflict")]
    PurchaseConflict,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::OrderCreated,
        EventType::OrderPaid,
        EventType::OrderExpired,
        EventType::OrderCancelled,
        EventType::OrderRefunded,
        EventType::GrantCreated,
        EventType::GrantRevoked,
        EventType::SubscriptionRenewed,
        EventType::SubscriptionExpired,
        EventType::SubscriptionGracePeriod,
        EventType::SubscriptionRevoked,
        EventType::SubscriptionRestored,
        EventType::CoinsCredited,
        EventType::CoinsDebited,
        EventType::PurchaseUnattributed,
        EventType::PurchaseConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderPaid => "order.paid",
            EventType::OrderExpired => "order.expired",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderRefunded => "order.refunded",
            EventType::GrantCreated => "grant.created",
            EventType::GrantRevoked => "grant.revoked",
            EventType::SubscriptionRenewed => "subscription.renewed",
            EventType::SubscriptionExpired => "subscription.expired",
            EventType::SubscriptionGracePeriod => "subscription.grace_period",
            EventType::SubscriptionRevoked => "subscription.revoked",
            EventType::SubscriptionRestored => "subscription.restored",
            EventType::CoinsCredited => "coins.credited",
            EventType::CoinsDebited => "coins.debited",
            EventType::PurchaseUnattributed => "purchase.unattributed",
            EventType::PurchaseConflict => "purchase.conflict",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// One event as recorded and as delivered (the webhook body, with its line added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_` + 32 hex characters; the `webhook-id` of every delivery of it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Unix seconds of the change.
    pub occurred_at: i64,
    pub user_id: String,
    /// The product the change is about; `None` for a change of the user's coins made by an
    /// operator, which belongs to no product.
    pub product_id: Option<String>,
    /// What the change was, per type (documented in `openapi.yaml`, `webhooks`).
    pub data: Value,
}

/// The event id of the change `subject` of type `kind`.
pub fn event_id(kind: EventType, subject: &str) -> String {
    let h = Sha256::digest(format!("{}\n{subject}", kind.as_str()).as_bytes());
    format!("evt_{}", &hex::encode(h)[..32])
}

/// Whether `text` has the form of an event id (so it may go into a key).
pub fn is_event_id(text: &str) -> bool {
    text.len() == 36
        && text.starts_with("evt_")
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn money(m: Money) -> Value {
    json!({ "amount": m.amount, "currency": m.currency.as_str() })
}

impl Event {
    fn new(
        kind: EventType,
        subject: &str,
        at: i64,
        user: &str,
        product: Option<&str>,
        data: Value,
    ) -> Event {
        Event {
            id: event_id(kind, subject),
            kind,
            occurred_at: at,
            user_id: user.to_owned(),
            product_id: product.map(str::to_owned),
            data,
        }
    }

    /// A new order, PENDING (or, for a sale made at the provider, already paid).
    pub fn order_created(o: &Order) -> Event {
        Event::new(
            EventType::OrderCreated,
            o.order_id.as_str(),
            o.created_at,
            &o.user_id,
            Some(&o.product_id),
            json!({
                "order_id": o.order_id.as_str(),
                "plan_id": o.plan_id,
                "amount": money(o.amount),
                "provider": o.provider,
                "expires_at": o.expires_at,
            }),
        )
    }

    /// The order's payment was recorded; `late` when it had expired or been cancelled.
    pub fn order_paid(p: &PaidOrder<'_>) -> Event {
        Event::new(
            EventType::OrderPaid,
            p.order_id,
            p.recorded_at,
            p.user_id,
            Some(p.product_id),
            json!({
                "order_id": p.order_id,
                "amount": money(p.amount),
                "provider": p.provider,
                "provider_txn_id": p.provider_txn_id,
                "paid_at": p.paid_at,
                "late": p.late,
                "credits": p.credits,
            }),
        )
    }

    /// A PENDING order closed unpaid (`to`: EXPIRED or CANCELLED); `None` for another state.
    pub fn order_closed(o: &Order, to: OrderState, at: i64) -> Option<Event> {
        let kind = match to {
            OrderState::Expired => EventType::OrderExpired,
            OrderState::Cancelled => EventType::OrderCancelled,
            _ => return None,
        };
        Some(Event::new(
            kind,
            o.order_id.as_str(),
            at,
            &o.user_id,
            Some(&o.product_id),
            json!({ "order_id": o.order_id.as_str(), "closed_at": at }),
        ))
    }

    /// A refund of `amount` (id `refund_id`) was counted on the order; `completes` when it
    /// brought the refunds to the paid amount (REFUNDED), `access_ended` whether it revoked
    /// the order's grants.
    pub fn order_refunded(r: &RefundedOrder<'_>) -> Event {
        Event::new(
            EventType::OrderRefunded,
            &format!("{}\n{}", r.order.order_id, r.occurrence()),
            r.at,
            &r.order.user_id,
            Some(&r.order.product_id),
            json!({
                "order_id": r.order.order_id.as_str(),
                "refund_id": r.refund_id,
                "amount": { "amount": r.amount, "currency": r.order.amount.currency.as_str() },
                "partial": !r.completes,
                "access_ended": r.access_ended,
            }),
        )
    }

    /// A grant was written for `user` (a payment, a promotion).
    pub fn grant_created(user: &str, g: &Grant, at: i64) -> Event {
        Event::new(
            EventType::GrantCreated,
            &format!("{user}\n{}\n{}", g.scope, g.source_id),
            at,
            user,
            Some(&g.product_id),
            grant_data(g),
        )
    }

    /// A grant was revoked; `cause` tells this revocation from an earlier one of the same
    /// grant that a reversal undid (the refund id, or the operator's audit id).
    pub fn grant_revoked(user: &str, g: &Grant, at: i64, cause: &str) -> Event {
        let mut data = grant_data(g);
        data["revoked_at"] = json!(at);
        Event::new(
            EventType::GrantRevoked,
            &format!("{user}\n{}\n{}\n{cause}", g.scope, g.source_id),
            at,
            user,
            Some(&g.product_id),
            data,
        )
    }

    /// Coins were added to (`delta` > 0: `coins.credited`) or taken from (`coins.debited`)
    /// the user's wallet; `cause` names the change (the order, the operator's audit id).
    pub fn coins(user: &str, product: Option<&str>, delta: i64, at: i64, cause: &str) -> Event {
        let kind = if delta >= 0 {
            EventType::CoinsCredited
        } else {
            EventType::CoinsDebited
        };
        Event::new(
            kind,
            cause,
            at,
            user,
            product,
            json!({ "coins": delta.unsigned_abs(), "cause": cause }),
        )
    }
}

fn grant_data(g: &Grant) -> Value {
    json!({
        "scope": g.scope,
        "source_id": g.source_id,
        "paid_at": g.paid_at,
        "term": g.term,
    })
}

/// What `order.paid` says, taken from the settlement (the order is not read again).
pub struct PaidOrder<'a> {
    pub order_id: &'a str,
    pub user_id: &'a str,
    pub product_id: &'a str,
    pub amount: Money,
    pub provider: &'a str,
    pub provider_txn_id: &'a str,
    pub paid_at: i64,
    /// When Tollgate recorded the payment: the events' time.
    pub recorded_at: i64,
    pub late: bool,
    pub credits: i64,
}

/// What `order.refunded` says.
pub struct RefundedOrder<'a> {
    pub order: &'a Order,
    pub refund_id: &'a str,
    pub amount: i64,
    pub completes: bool,
    pub access_ended: bool,
    pub at: i64,
}

/// The events of one payment: the order paid, each grant created, the coins credited.
pub fn payment_events(p: &PaidOrder<'_>, grants: &[Grant]) -> Vec<Event> {
    let mut out = vec![Event::order_paid(p)];
    out.extend(
        grants
            .iter()
            .map(|g| Event::grant_created(p.user_id, g, p.recorded_at)),
    );
    if p.credits != 0 {
        out.push(Event::coins(
            p.user_id,
            Some(p.product_id),
            p.credits,
            p.recorded_at,
            &format!("order:{}", p.order_id),
        ));
    }
    out
}

impl RefundedOrder<'_> {
    /// This counting of the refund: its id, and the last reversal the order had when it was
    /// read, since a refund that a reversal cleared may be counted again under the same id.
    fn occurrence(&self) -> String {
        format!(
            "{}#{}",
            self.refund_id,
            self.order.refund_reversed_at.unwrap_or(0)
        )
    }
}

/// The events of a refund counted on `r.order`: the refund, and when it ends the access,
/// each grant revoked and the coins taken back (`coins_taken`).
pub fn refund_events(r: &RefundedOrder<'_>, coins_taken: bool) -> Vec<Event> {
    let mut out = vec![Event::order_refunded(r)];
    if r.access_ended {
        if let Some(paid_at) = r.order.paid_at {
            out.extend(
                r.order
                    .grants_at(paid_at)
                    .iter()
                    .map(|g| Event::grant_revoked(&r.order.user_id, g, r.at, &r.occurrence())),
            );
        }
        if coins_taken && r.order.credits != 0 {
            out.push(Event::coins(
                &r.order.user_id,
                Some(&r.order.product_id),
                -r.order.credits,
                r.at,
                &format!("refund:{}:{}", r.order.order_id, r.occurrence()),
            ));
        }
    }
    out
}

/// The sort key of an event record in time order: unix seconds (12 digits), then the id,
/// so string order is time order and never ties. The records of one UTC day share an
/// index partition (`EVENTS#<day>`).
pub fn sort_key(e: &Event) -> String {
    format!("{:012}#{}", e.occurred_at.max(0), e.id)
}

/// How far the delivery of an event to one endpoint got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not answered with a 2xx yet: tried again at `next_try`.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Retried for the whole retry period without success (dead-lettered).
    Failed,
    /// The endpoint answered 410 Gone: it is disabled and nothing more is sent to it.
    Disabled,
}

/// The delivery of an event to one endpoint (keyed by the endpoint's URL in the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub state: DeliveryState,
    pub attempts: u32,
    /// The HTTP status of the last attempt; `None` when it got no answer (timeout, refused).
    pub last_status: Option<u16>,
    pub last_attempt_at: Option<i64>,
    pub next_try: Option<i64>,
}

/// An event as stored: the event and, per endpoint URL, how its delivery went. `version`
/// conditions every change of the delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event: Event,
    pub deliveries: std::collections::BTreeMap<String, Delivery>,
    pub version: u64,
}

impl EventRecord {
    /// A record just written with its change: nothing delivered yet.
    pub fn new(event: Event) -> EventRecord {
        EventRecord {
            event,
            deliveries: Default::default(),
            version: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
            assert!(seen.insert(t.as_str()));
        }
        assert_eq!(EventType::parse("order.unknown"), None);
    }

    #[test]
    fn ids_are_stable_per_subject_and_type() {
        let a = event_id(EventType::OrderPaid, "01ORDER");
        assert_eq!(a, event_id(EventType::OrderPaid, "01ORDER"));
        assert_ne!(a, event_id(EventType::OrderCreated, "01ORDER"));
        assert_ne!(a, event_id(EventType::OrderPaid, "01ORDES"));
        assert!(is_event_id(&a), "{a}");
        assert!(!is_event_id("evt_XYZ"));
        assert!(!is_event_id(&a.replace("evt_", "msg_")));
    }

    #[test]
    fn coins_sign_picks_the_type() {
        assert_eq!(
            Event::coins("u", None, 5, 1, "a").kind,
            EventType::CoinsCredited
        );
        let d = Event::coins("u", None, -5, 1, "b");
        assert_eq!(d.kind, EventType::CoinsDebited);
        assert_eq!(d.data["coins"], json!(5));
    }
}

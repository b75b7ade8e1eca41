//! Persistence. One trait, two implementations (DynamoDB and embedded memory) that pass the
//! same conformance suite. Each method is one store round trip and one atomic change, so the
//! service layer can count its costs and never observe half of a state change.

pub mod dynamo;
pub mod memory;

use crate::domain::audit::AuditRecord;
use crate::domain::ban::Ban;
use crate::domain::checkpoint::{Checkpoint, FoldStep};
use crate::domain::event::{self, Event, EventRecord};
use crate::domain::ledger::{LedgerCursor, LedgerEntry};
use crate::domain::publish_key::PublishKey;
use crate::domain::refund::{RefundCount, RefundReversal};
use crate::domain::refund_request::{RefundHold, RefundRequest, RefundRequestChange};
use crate::domain::session::Sessions;
use crate::domain::stats::DayRecord;
use crate::domain::{Grant, Money, Order, OrderId, OrderQuota, OrderState, PurchaseState};
use async_trait::async_trait;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

/// Daily counters are spread over this many items (and partitions) per day, so a busy day
/// never concentrates its writes on one item: in DynamoDB two transactions touching the same
/// item conflict, so a single counter would serialise every settle of the day.
pub const STATS_SHARDS: u32 = 32;

pub fn stats_shard(id: &OrderId) -> u32 {
    crate::domain::fnv::fnv1a(id.as_str().bytes().rev()) % STATS_SHARDS
}

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub user_id: String,
    pub key: String,
    /// Hash of the request body the key was first used with.
    pub request_hash: String,
    pub order_id: OrderId,
    /// Past this instant the key may be reused (the store's TTL deletes it days later).
    pub expires_at: i64,
}

/// A purchase of a lifetime product in progress: while `until` (its order's expiry) is
/// ahead, no other order of that product may be created for the user. Written with the
/// order, in the create's own transaction, it makes the refusal of a second purchase a
/// condition of the write rather than a read before it: of two purchases racing, one is
/// created. Once the order is paid the user's grant refuses further purchases; a
/// cancellation ends the claim at once ([`Store::release_lifetime_claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifetimeClaim {
    pub user_id: String,
    pub product_id: String,
    pub order_id: OrderId,
    pub until: i64,
}

/// How long the claim of an order written already paid (with coins) lasts: its grant
/// refuses every purchase whose check reads after the payment; the claim covers those whose
/// check read before it and write after, a gap of a moment (no remote call between them).
pub const PAID_CLAIM_S: i64 = 300;

impl LifetimeClaim {
    /// The claim `order` makes: until it expires unpaid, or a while after a payment made
    /// with its creation.
    pub fn of(order: &Order) -> Self {
        let until = match order.paid_at {
            Some(paid_at) => order.expires_at.max(paid_at.saturating_add(PAID_CLAIM_S)),
            None => order.expires_at,
        };
        LifetimeClaim {
            user_id: order.user_id.clone(),
            product_id: order.product_id.clone(),
            order_id: order.order_id.clone(),
            until,
        }
    }

    /// Whether it still refuses other orders at `now`.
    pub fn live(&self, now: i64) -> bool {
        self.until > now
    }
}

/// Whether `order` is for a lifetime product (what it grants lasts for ever): its creation
/// claims the product for its user.
pub fn claims_lifetime(order: &Order) -> bool {
    matches!(order.term, Some(crate::domain::Term::Forever))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Another order of this lifetime product is in progress for the user: its claim
    /// (nothing was written).
    Claimed(LifetimeClaim),
    /// The key was already used (and is not expired): here is what it was used for. A
    /// replay is answered even when the user's window is full.
    KeyExists(IdempotencyRecord),
    /// The user already created the quota's limit of orders in this window: nothing was
    /// written. `until` is when the window ends.
    QuotaReached {
        until: i64,
    },
}

/// One payment to record: the order moves `expected_state → PAID`, the provider transaction
/// is claimed, grants are written and coins credited, all or nothing.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub order_id: OrderId,
    pub user_id: String,
    pub expected_state: OrderState,
    /// Must equal the stored order's amount; checked again inside the write.
    pub amount: Money,
    pub provider: String,
    pub provider_txn_id: String,
    pub paid_at: i64,
    /// The order's product: what the day's figures count the payment under, and what its
    /// `order.paid` event names.
    pub product_id: String,
    pub grants: Vec<Grant>,
    pub credits: i64,
    /// When Tollgate records the payment (now): the time of its events, which `paid_at`
    /// (the provider's, clamped) may precede.
    pub recorded_at: i64,
    /// The stream whose paywall sold the order, if the client said so: the day's figures
    /// count the purchase under it (preview → purchase).
    pub stream_id: Option<String>,
}

impl Settlement {
    /// The payment of an order paid with coins, as the day's figures count it: written with
    /// the order (there is no provider transaction; its own id stands for one), no grants or
    /// coins of its own to add (the store writes the order's grants itself).
    pub(crate) fn of_coin_order(order: &Order, paid_at: i64, now: i64) -> Settlement {
        Settlement {
            order_id: order.order_id.clone(),
            user_id: order.user_id.clone(),
            expected_state: order.state,
            amount: order.amount,
            provider: order.provider.clone(),
            provider_txn_id: order.order_id.to_string(),
            product_id: order.product_id.clone(),
            paid_at,
            recorded_at: now,
            stream_id: order.stream_id.clone(),
            grants: Vec::new(),
            credits: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    Settled,
    /// The provider transaction was already recorded, for this order or `other_order`.
    TxnAlreadyRecorded {
        order_id: OrderId,
    },
    /// The order was not in `expected_state` (or its amount differed): the stored order.
    OrderChanged(Box<Order>),
    UnknownOrder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    Done(Box<Order>),
    /// The order was not in the required state: the stored order.
    Conflict(Box<Order>),
    UnknownOrder,
}

/// What recording a refund request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequestOutcome {
    /// Recorded and its amount held on the order: the caller's read of the order with the
    /// hold added.
    Recorded(Box<Order>),
    /// A request with this id exists already (the same Idempotency-Key): it as stored.
    /// Nothing was written.
    Exists(Box<RefundRequest>),
    /// The hold's conditions failed (the order moved on since it was read): the order as
    /// stored. Nothing was written.
    OrderChanged(Box<Order>),
    UnknownOrder,
}

/// An open refund request whose check is due (the sweeper's refund index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRefund {
    pub order_id: OrderId,
    pub out_refund_no: String,
    pub due_at: i64,
}

/// One page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Whether older orders follow (the next page starts before the last one here).
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub order_id: OrderId,
    /// When the sweeper should look at it: its expiry, or later after failed attempts.
    pub due_at: i64,
}

/// Everything under one user's partition: one query answers "what may this user watch".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserItems {
    /// The live grants: every grant not archived by a fold.
    pub grants: Vec<Grant>,
    /// One per scope that was folded: what its archived grants add up to.
    pub checkpoints: Vec<Checkpoint>,
    /// The archived grants, as stored: only [`Store::user_history`] reads them.
    pub archived: Vec<Grant>,
    pub credits: i64,
    /// The `SESSIONS` item (version 0 when it does not exist yet).
    pub sessions: Sessions,
    /// The user's bans (`BAN#<stream or *>`), expired ones included: callers judge them.
    pub bans: Vec<Ban>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutSessions {
    Written,
    /// The version moved on: the sessions as stored now.
    Stale(Sessions),
}

impl PutSessions {
    pub fn written(&self) -> bool {
        matches!(self, PutSessions::Written)
    }
}

/// How long a processed store notification id is remembered (its `ttl`).
pub const NOTE_TTL: i64 = 30 * 86_400;

/// A store purchase: one App Store original transaction (`PURCHASE#apple#<otid>`) or one
/// Play purchase token. Its grants are rewritten whole with each newer store message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePurchase {
    /// "apple" or "google".
    pub store: String,
    pub purchase_id: String,
    pub user_id: String,
    pub product_id: String,
    pub state: PurchaseState,
    pub expires_at: Option<i64>,
    /// The store's signing time (ms) of the newest message applied: the ordering guard.
    pub last_event_at: i64,
    pub last_txn_id: Option<String>,
    pub order_id: Option<String>,
    /// What the purchase grants now (source id = `<store>:<purchase_id>`).
    pub grants: Vec<Grant>,
}

impl StorePurchase {
    /// Ends the purchase's access as of the store message signed at `now_ms` (a void, or
    /// a token replaced by a newer one): every grant is revoked, earlier revocations kept.
    pub fn end(&mut self, state: PurchaseState, now_ms: i64) {
        let now = now_ms.div_euclid(1000);
        self.state = state;
        self.last_event_at = now_ms;
        for g in &mut self.grants {
            g.revoked_at.get_or_insert(now);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    Applied,
    /// The stored purchase is as new or newer: nothing changed.
    Stale(Box<StorePurchase>),
    /// The purchase belongs to another user: nothing changed.
    OwnedByOther(Box<StorePurchase>),
}

/// An operator's `Idempotency-Key` on a change (a promotional grant, a wallet change),
/// written in the change's own transaction. Kept for good, like the audit record beside it:
/// operators make few changes, and a retry days later must still not apply twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    /// The user the change is for: keys are per user.
    pub user_id: String,
    pub key: String,
    /// Hash of the request the key was first used with.
    pub request_hash: String,
    /// What the change answered, to answer a replay the same.
    pub result: serde_json::Value,
    pub at: i64,
}

/// A write conditioned on the state its caller read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<T> {
    Written,
    /// The state moved on since it was read: what is stored now (nothing was written).
    Changed(T),
}

/// A change made under an [`AdminKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedOutcome {
    Written,
    /// The key was used before: its record (nothing was written).
    KeyUsed(AdminKey),
}

/// A wallet change conditioned on the balance read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletOutcome {
    Written,
    KeyUsed(AdminKey),
    /// The balance is no longer the one read: the balance now (nothing was written).
    BalanceMoved(i64),
}

/// One page of audit records, in the order asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Whether more follow after the last one here.
    pub more: bool,
}

/// One spend of coins under the user's `Idempotency-Key` (`POST /wallet/debits`), kept for
/// good with the entry it wrote: the same key never debits twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitRecord {
    pub user_id: String,
    pub key: String,
    /// Hash of the request the key was first used with.
    pub request_hash: String,
    /// The ledger entry the debit wrote (its `amount` is negative).
    pub entry: LedgerEntry,
}

/// What a debit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebitOutcome {
    Debited,
    /// The key was used before: its record (nothing was written).
    KeyUsed(DebitRecord),
    /// The balance does not cover the amount (or is a debt): the balance now. Nothing was
    /// written.
    Insufficient {
        balance: i64,
    },
}

/// What paying an order with coins did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoinPayment {
    /// The order, its grants, the debit and its ledger entry were written.
    Paid,
    /// The Idempotency-Key is live: what it was used for (nothing was written).
    KeyExists(IdempotencyRecord),
    /// The balance does not cover the price: the balance now (nothing was written).
    Insufficient { balance: i64 },
    /// Another order of this lifetime product is in progress for the user: its claim
    /// (nothing was written).
    Claimed(LifetimeClaim),
}

/// The ledger entry of coins an order moves as part of a payment, refund or reversal (the
/// store writes it beside the balance change): at `at` (Unix seconds), with a fresh id.
pub(crate) fn order_ledger_entry(
    at: i64,
    amount: i64,
    source: crate::domain::ledger::LedgerSource,
    reason: &str,
    order_id: &OrderId,
) -> LedgerEntry {
    let at_ms = at.saturating_mul(1000);
    LedgerEntry {
        id: OrderId::from_parts(at_ms.max(0) as u64, crate::crypto::random_bytes()).to_string(),
        at_ms,
        amount,
        source,
        reason: reason.to_owned(),
        reference: Some(order_id.to_string()),
    }
}

/// One page of a user's ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPage {
    /// The balance as stored, read with the entries: on the first page only.
    pub balance: Option<i64>,
    pub entries: Vec<LedgerEntry>,
    /// Whether older entries follow.
    pub more: bool,
}

/// One page of event records, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub records: Vec<EventRecord>,
    /// Whether more follow after the last one here (within the period asked for).
    pub more: bool,
}

/// The events a settle writes with the payment: the order paid, its grants, its coins.
pub(crate) fn settle_events(s: &Settlement, late: bool) -> Vec<Event> {
    event::payment_events(
        &event::PaidOrder {
            order_id: s.order_id.as_str(),
            user_id: &s.user_id,
            product_id: &s.product_id,
            amount: s.amount,
            provider: &s.provider,
            provider_txn_id: &s.provider_txn_id,
            paid_at: s.paid_at,
            recorded_at: s.recorded_at,
            late,
            credits: s.credits,
        },
        &s.grants,
    )
}

/// The events a refund writes with its count (`order` is the caller's read): `completes`
/// (REFUNDED) or `revoking` (a partial refund that ends the access) revoke the grants unless
/// an earlier partial refund did; coins are taken back only by the first refund that ends
/// the access.
pub(crate) fn refund_write_events(
    order: &Order,
    count: &RefundCount,
    at: i64,
    completes: bool,
    revoking: bool,
) -> Vec<Event> {
    let mut out = event::refund_events(
        &event::RefundedOrder {
            order,
            refund_id: &count.refund_id,
            amount: count.add,
            completes,
            access_ended: (completes || revoking) && order.access_revoked_at.is_none(),
            at,
        },
        order.access_revoked_at.is_none(),
    );
    // An order paid with coins gives them back when refunded whole (in the same transaction).
    if completes && order.coins_paid() > 0 {
        out.push(Event::coins(
            &order.user_id,
            Some(&order.product_id),
            order.coins_paid(),
            at,
            &format!("refund:{}:{}", order.order_id, count.refund_id),
        ));
    }
    out
}

/// The events of an order paid with coins, written with it: the order created and paid, its
/// grants, and the coins debited (`entry` is the debit's ledger entry).
pub(crate) fn coin_payment_events(order: &Order, entry: &LedgerEntry, now: i64) -> Vec<Event> {
    let paid_at = order.paid_at.unwrap_or(now);
    let mut out = vec![Event::order_created(order)];
    out.extend(event::payment_events(
        &event::PaidOrder {
            order_id: order.order_id.as_str(),
            user_id: &order.user_id,
            product_id: &order.product_id,
            amount: order.amount,
            provider: &order.provider,
            provider_txn_id: order.order_id.as_str(),
            paid_at,
            recorded_at: now,
            late: false,
            credits: 0,
        },
        &order.grants_at(paid_at),
    ));
    out.push(Event::coins(
        &order.user_id,
        Some(&order.product_id),
        entry.amount,
        now,
        &format!("order:{}", order.order_id),
    ));
    out
}

/// The event of a spend of coins (`POST /wallet/debits`): `coins.debited`, named by the
/// ledger entry it wrote.
pub(crate) fn debit_events(rec: &DebitRecord) -> Vec<Event> {
    vec![Event::coins(
        &rec.user_id,
        None,
        rec.entry.amount,
        rec.entry.at_ms.div_euclid(1000),
        &format!("spend:{}", rec.entry.id),
    )]
}

/// The events of an operator's promotional grant: one `grant.created` per grant.
pub(crate) fn granted_events(user: &str, grants: &[Grant], audit: &AuditRecord) -> Vec<Event> {
    grants
        .iter()
        .map(|g| Event::grant_created(user, g, audit.at))
        .collect()
}

/// The events of an operator's revocation: one `grant.revoked` per grant.
pub(crate) fn revoked_events(user: &str, revoked: &[Grant], audit: &AuditRecord) -> Vec<Event> {
    revoked
        .iter()
        .map(|g| Event::grant_revoked(user, g, g.revoked_at.unwrap_or(audit.at), &audit.id))
        .collect()
}

/// The event of an operator's wallet change from `before` to `after` (none when equal).
pub(crate) fn wallet_events(
    user: &str,
    before: i64,
    after: i64,
    audit: &AuditRecord,
) -> Vec<Event> {
    if before == after {
        return Vec::new();
    }
    vec![Event::coins(
        user,
        None,
        after.saturating_sub(before),
        audit.at,
        &format!("audit:{}", audit.id),
    )]
}

/// The events of a refund reversed (`order` as read, REFUNDED): each grant given back
/// (`grant.created`, named by the reversed refund so it never collides with the grant's
/// first event; `data.restored_at`) and the coins credited again.
pub(crate) fn reversal_events(order: &Order, r: &RefundReversal) -> Result<Vec<Event>, StoreError> {
    let Some(paid_at) = order.paid_at else {
        return Ok(Vec::new());
    };
    let occurrence = format!("reversal:{}:{}", order.order_id, r.refunded_at);
    let mut out: Vec<Event> = order
        .grants_at(paid_at)
        .iter()
        .map(|g| {
            let mut e = Event::grant_created(&order.user_id, g, r.reversed_at);
            e.id = event::event_id(
                event::EventType::GrantCreated,
                &format!(
                    "{}\n{}\n{}\n{occurrence}",
                    order.user_id, g.scope, g.source_id
                ),
            );
            e.data["restored_at"] = serde_json::json!(r.reversed_at);
            e
        })
        .collect();
    if order.credits != 0 {
        out.push(Event::coins(
            &order.user_id,
            Some(&order.product_id),
            order.credits,
            r.reversed_at,
            &occurrence,
        ));
    }
    Ok(out)
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or throttled us: safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be read back: needs an operator.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Writes a new PENDING order and, when given, its idempotency key, and counts it in
    /// its user's window of `quota`, in one transaction; nothing is written when the key
    /// is live (`KeyExists`, checked first) or the window is full (`QuotaReached`).
    async fn create_order(
        &self,
        order: &Order,
        idempotency: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError>;

    /// As [`Store::create_order`], for an order of a lifetime product: the same
    /// transaction also writes the order's [`LifetimeClaim`], conditioned on no other
    /// order's claim on the product being live; `Claimed` (nothing written) when one is.
    /// The key is checked before the claim, so a replay is still answered with its order.
    async fn create_lifetime_order(
        &self,
        order: &Order,
        idempotency: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError>;

    /// Ends `order`'s claim on its lifetime product at `now` (it was cancelled): one
    /// conditional write, which changes nothing when the claim is another order's or gone.
    async fn release_lifetime_claim(&self, order: &Order, now: i64) -> Result<(), StoreError>;

    /// The live (unexpired) record of an Idempotency-Key, if any.
    async fn get_idempotency(
        &self,
        user_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Strongly consistent read.
    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;

    /// Up to `limit` of the user's orders, newest first, older than `before` when given: one
    /// query. In DynamoDB the index behind it is eventually consistent.
    async fn user_orders(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&OrderId>,
    ) -> Result<OrderPage, StoreError>;

    /// The order a provider transaction was recorded for (its `TXN#<provider>#<id>` claim,
    /// written by the settle), if any: one strongly consistent read.
    async fn order_for_txn(
        &self,
        provider: &str,
        txn_id: &str,
    ) -> Result<Option<OrderId>, StoreError>;

    async fn settle(&self, s: &Settlement) -> Result<SettleOutcome, StoreError>;

    /// Records a sale the provider made on its own (Huya): writes `order`, already PAID, and
    /// `s`'s transaction claim, grants and coins, all or nothing. The claim
    /// (`TXN#<provider>#<id>`) makes every retry of the same sale a `TxnAlreadyRecorded`.
    async fn settle_new_order(
        &self,
        order: &Order,
        s: &Settlement,
    ) -> Result<SettleOutcome, StoreError>;

    /// PENDING → EXPIRED or CANCELLED; leaves the due index. With `retain_until`, the order
    /// may be deleted from then on (its `ttl`); a late payment removes it again. `order` is
    /// the caller's read (its `order.expired` or `order.cancelled` event is written in the
    /// same transaction); the condition is on the stored state alone.
    async fn close_order(
        &self,
        order: &Order,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError>;

    /// Counts a refund that leaves the order PAID (`order`, the caller's read, names the
    /// order and what its `order.refunded` event, at `at`, says): adds `count.add` to its `refunded_amount`
    /// and records `count.refund_id`, conditioned on the order (PAID, the id not recorded
    /// yet, the total before within `count`'s bounds), with its event and the day's refunded
    /// money, in one transaction. `Done` with the order
    /// as written, `Conflict` with the stored order when a condition failed.
    async fn count_refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError>;

    /// PAID → REFUNDED by the refund `count` that completes what was paid: counts it as
    /// [`Store::count_refund`] does, revokes exactly the grants `order` made and takes back
    /// its coins (unless a partial refund took them already: `access_revoked_at`), all in
    /// one transaction under `count`'s conditions. `order` is the caller's read of the
    /// stored order.
    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        refunded_at: i64,
    ) -> Result<TransitionOutcome, StoreError>;

    /// Counts a partial refund as [`Store::count_refund`] does and, in the same transaction,
    /// ends the order's access while it stays PAID (`PARTIAL_REFUND_REVOKES`): sets
    /// `access_revoked_at` (kept if set), revokes exactly the grants `order` made and takes
    /// back its coins unless `order` (the caller's read) shows them taken already, under
    /// `count`'s conditions and that same `access_revoked_at`.
    async fn count_refund_revoking(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError>;

    /// REFUNDED → PAID: the provider reversed the refund `reversal` names. In one
    /// transaction under [`RefundReversal::applies_to`] (REFUNDED, paid by that transaction,
    /// `refunded_at` as read): the order is PAID again with no refunds counted
    /// (`refunded_amount` 0, no `refund_ids`) and the reversal recorded; exactly the grants
    /// `order` made are un-revoked and its coins given back. `order` is the caller's read.
    /// `Done` with the order as written, `Conflict` with the stored order otherwise.
    async fn reverse_refund(
        &self,
        order: &Order,
        reversal: &RefundReversal,
    ) -> Result<TransitionOutcome, StoreError>;

    /// Records `req` (REQUESTED, open, due at its `next_check_at`) under its order and holds
    /// its amount on the order (`refund_requested`) under `hold`'s conditions, in one
    /// transaction: nothing is written when a request with its id exists (`Exists`, checked
    /// first) or the order moved on (`OrderChanged`). `order` is the caller's read;
    /// `Recorded` carries it with the hold added. The operator's `audit` record is written in
    /// the same transaction.
    async fn request_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
        hold: &RefundHold,
        audit: &AuditRecord,
    ) -> Result<RefundRequestOutcome, StoreError>;

    /// One refund request of an order: one strongly consistent read.
    async fn refund_request(
        &self,
        order_id: &OrderId,
        out_refund_no: &str,
    ) -> Result<Option<RefundRequest>, StoreError>;

    /// Applies `change` to the request `req` names, only while it is still open (REQUESTED
    /// or PENDING): the request as written, or `None` when it was not open (another writer
    /// finished it) or is missing. A `Finished` change also leaves the refund index and
    /// releases `req.amount` held on the order, in the same transaction; the others are one
    /// conditional update.
    async fn change_refund_request(
        &self,
        req: &RefundRequest,
        change: &RefundRequestChange,
    ) -> Result<Option<RefundRequest>, StoreError>;

    /// Open refund requests due at or before `now`, oldest first: one query of the refund
    /// index (never a scan).
    async fn due_refund_requests(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueRefund>, StoreError>;

    /// Moves a PENDING order's next sweep to `next_at` and records the attempts so far;
    /// `false` when it is no longer PENDING.
    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError>;

    /// Records that `user_id` asked to re-query their order at `now`; `false` (and no change)
    /// when the order is not theirs or the last request was less than `min_interval` ago.
    async fn mark_requery(
        &self,
        id: &OrderId,
        user_id: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError>;

    /// Notes a permanent background failure on the order.
    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError>;

    /// The business record of each day in `days` (`YYYY-MM-DD` in the store's
    /// [`StatsZone`](crate::domain::stats::StatsZone)), counted by the same transactions that
    /// create, settle and refund orders.
    async fn day_records(&self, days: &[String]) -> Result<Vec<DayRecord>, StoreError>;

    /// PENDING orders of one due-index shard due at or before `now`, oldest first.
    /// The index is eventually consistent in DynamoDB: callers re-check the order itself.
    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError>;

    /// Live grants, checkpoints, wallet, device sessions and bans of one user: one strongly
    /// consistent query, which skips the archived grants (see [`crate::domain::checkpoint`]).
    ///
    /// The rule every store call that writes a grant follows, so that checkpoints stay exact:
    /// a grant is only ever written at its live key (`GRANT#<scope>#<source>`, built by the
    /// one grant item builder), whole or by changing the live item; never in the archive. A
    /// call that changes a grant which may be archived (a refund or reversal of an old
    /// order, a manual revocation) writes the whole grant live (for DynamoDB an update that
    /// sets every attribute, creating the item if it is absent). A live grant before its
    /// scope's cutoff then marks the checkpoint stale: checks read the whole history
    /// ([`Store::user_history`]) until a fold repairs it. Only [`Store::fold_grants`] moves
    /// grants between live and archive.
    async fn user_items(&self, user_id: &str) -> Result<UserItems, StoreError>;

    /// [`Store::user_items`] with the archived grants too (`archived`): one strongly
    /// consistent query of the whole partition, paged past 1 MB. What support shows, and
    /// what a check reads when a checkpoint is stale.
    async fn user_history(&self, user_id: &str) -> Result<UserItems, StoreError>;

    /// Applies one fold step in one transaction: the scope's checkpoint is written only if
    /// its stored version is still `step.expected_version`, and every grant is moved only if
    /// it is still as read (a restored one only to an empty live key). `false`, and nothing
    /// written, when anything moved on since the read.
    async fn fold_grants(&self, user_id: &str, step: &FoldStep) -> Result<bool, StoreError>;

    /// Replaces the user's `SESSIONS` item with `sessions` at version `expected_version + 1`,
    /// only if the stored version is still `expected_version` (0: the item must not exist).
    /// When another writer got there first, nothing is written and the stored sessions come
    /// back (from the failed condition, no extra read) to decide again on.
    async fn put_sessions(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError>;

    /// The stored purchase `purchase_id` of `store` ("apple" or "google"), if any.
    async fn get_purchase(
        &self,
        store: &str,
        purchase_id: &str,
    ) -> Result<Option<StorePurchase>, StoreError>;

    /// Writes the purchase and its grants in one transaction, only when it is new or
    /// `last_event_at` is newer than the stored one and the owner is the same.
    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError>;

    /// Writes the purchase, its grants, and `change`'s events and day counters in one
    /// transaction, conditioned on the stored record being the one the change was decided
    /// on (`change.read`: its `last_event_at` and the same user; `None`: no record), so a
    /// store message counts and tells once however often it is applied. When the condition
    /// fails nothing is written and the stored record is returned (`Stale`, or
    /// `OwnedByOther` when another user's).
    async fn put_purchase_change(
        &self,
        p: &StorePurchase,
        change: &crate::domain::subscription::PurchaseChange,
    ) -> Result<PurchaseOutcome, StoreError>;

    /// Records events that no stored change carries (a store purchase no account could be
    /// bound to, or one a second account claimed): one conditional write of them all;
    /// `false`, and nothing written, when one is recorded already.
    async fn put_events(&self, events: &[Event]) -> Result<bool, StoreError>;

    /// Whether notification `id` of `source` was processed (and its record not expired).
    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError>;

    /// Records notification `id` as processed for [`NOTE_TTL`]; `false` when it already was.
    async fn record_note(
        &self,
        source: &str,
        id: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Claims the short-lived marker `key` (printable, at most 200 characters) until `until`:
    /// one conditional write that succeeds only when no unexpired claim exists, so of
    /// concurrent or repeated claims within the window exactly one gets `true`. Used to queue
    /// one background job for a burst of identical requests.
    async fn claim_marker(&self, key: &str, now: i64, until: i64) -> Result<bool, StoreError>;

    /// Gives up the claim of `key` made until `until` (when the work it guarded could not be
    /// started), so the next request may claim again; a later claim is left alone.
    async fn release_marker(&self, key: &str, until: i64) -> Result<(), StoreError>;

    /// Writes the user's ban of `ban.scope` and its audit record in one transaction, only
    /// if the stored ban of that scope is still `replaces` (`None`: there is none).
    async fn put_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        replaces: Option<&Ban>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError>;

    /// Deletes the user's ban `ban` (as read) and writes the audit record, in one
    /// transaction, only if the stored ban of its scope is still that one.
    async fn lift_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError>;

    /// The stored publish key of a stream, if one was ever set.
    async fn publish_key(&self, stream_id: &str) -> Result<Option<PublishKey>, StoreError>;

    /// Replaces the stream's publish key with `key` (its version one more than `replaces`')
    /// and writes the audit record, in one transaction, only if the stored key is still
    /// `replaces` (`None`: there is none), so two rotations never share a version and the
    /// previous key stops working at once.
    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        key: &PublishKey,
        replaces: Option<&PublishKey>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<PublishKey>>, StoreError>;

    /// Writes new grants for `user_id` (an operator's promotion), the operator's key and the
    /// audit record in one transaction; nothing when the key was used (`KeyUsed`). A grant
    /// that exists already fails the transaction (`Corrupt`): its source id is new.
    async fn grant(
        &self,
        user_id: &str,
        grants: &[Grant],
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<KeyedOutcome, StoreError>;

    /// Revokes by hand: writes each of `revoked` (grants as read, now carrying
    /// `revoked_at`, `revoked_by` and `revoke_reason`) and the audit record in one
    /// transaction, only if every one is still stored unrevoked as read. `Changed` when one
    /// is not (nothing was written).
    async fn revoke_grants(
        &self,
        user_id: &str,
        revoked: &[Grant],
        audit: &AuditRecord,
    ) -> Result<Guarded<()>, StoreError>;

    /// Sets the user's coin balance from `before` (as read; 0 when there is no wallet yet)
    /// to `after`, with the operator's key and the audit record, in one transaction.
    async fn adjust_wallet(
        &self,
        user_id: &str,
        before: i64,
        after: i64,
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<WalletOutcome, StoreError>;

    /// The record of an operator's key for `user_id`, if it was used: one read.
    async fn admin_key(&self, user_id: &str, key: &str) -> Result<Option<AdminKey>, StoreError>;

    /// Up to `limit` audit records about `user_id`, newest first, older than the sort key
    /// `before` when given and not older than `since` when given: one query.
    async fn user_audit(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&str>,
        since: Option<i64>,
    ) -> Result<AuditPage, StoreError>;

    /// Up to `limit` audit records of everyone, oldest first, from `since` on, after the
    /// sort key `after` when given: one query (in DynamoDB of an eventually consistent
    /// index).
    async fn audit_since(
        &self,
        since: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError>;

    /// The user's wallet and up to `limit` of their newest ledger entries (after `after`
    /// when given: then without the balance): one strongly consistent query.
    async fn wallet_ledger(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&LedgerCursor>,
    ) -> Result<LedgerPage, StoreError>;

    /// Takes `-rec.entry.amount` coins from the wallet, writes the entry and the key, in one
    /// transaction conditioned on the key being unused and the balance covering the amount,
    /// so concurrent debits never take the balance below zero.
    async fn debit_wallet(&self, rec: &DebitRecord) -> Result<DebitOutcome, StoreError>;

    /// Writes `order` (already PAID with coins, its `amount` the coins), its grants, the
    /// debit of its price with the ledger entry `entry`, the Idempotency-Key when given and
    /// the day's figures, in one transaction conditioned on the key (absent or expired) and
    /// the balance covering the price; an order of a lifetime product also writes its
    /// [`LifetimeClaim`], conditioned as [`Store::create_lifetime_order`]'s.
    async fn pay_with_coins(
        &self,
        order: &Order,
        idempotency: Option<&IdempotencyRecord>,
        entry: &LedgerEntry,
        now: i64,
    ) -> Result<CoinPayment, StoreError>;
    /// Up to `limit` event records, oldest first, that occurred from `since` to `until`
    /// (unix seconds), after the sort key `after` when given: one query of the event index
    /// per UTC day read (in DynamoDB an eventually consistent index).
    async fn events_since(
        &self,
        since: i64,
        until: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError>;

    /// One event record by id: one strongly consistent read.
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// Writes `record`'s delivery state, only if the stored record's version is still
    /// `record.version - 1` (the version it was read at, plus one): of two dispatchers that
    /// read the same state, one writes. With `expires_at` (once every delivery is certain:
    /// delivered, failed for good or to a disabled endpoint) the record may be deleted from
    /// then on (its `ttl`). `Changed` carries the record as stored.
    async fn put_event_deliveries(
        &self,
        record: &EventRecord,
        expires_at: Option<i64>,
    ) -> Result<Guarded<Option<EventRecord>>, StoreError>;

    /// Marks the endpoint `url` disabled since `at` (it answered 410 Gone): nothing more is
    /// sent to it. One put; a later call keeps the first time.
    async fn disable_endpoint(&self, url: &str, at: i64) -> Result<(), StoreError>;

    /// The disabled endpoints, with when each was disabled: one query.
    async fn disabled_endpoints(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Enables endpoint `url` again and writes the operator's `audit` record, in one
    /// transaction conditioned on the endpoint being disabled; `false` (nothing written)
    /// when it is not.
    async fn enable_endpoint(&self, url: &str, audit: &AuditRecord) -> Result<bool, StoreError>;

    /// [`Store::put_sessions`] that also adds `counts` to the day counters of `at` (the
    /// shard of `user_id`), in one transaction: for a sessions write a figure follows
    /// exactly once (the first token of a paid grant). One round trip; `Stale` writes and
    /// counts nothing.
    async fn put_sessions_counted(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
        at: i64,
        counts: &[(String, i64)],
    ) -> Result<PutSessions, StoreError>;

    /// Adds one to the callbacks of `provider` refused for `reason` on the day of `at`: one
    /// update of that day's and provider's own item (`REJECTS#<day>` / `<provider>`), which
    /// nothing else writes, so refusals never contend with payments.
    async fn count_rejection(
        &self,
        provider: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError>;
}

/// The counter shard of a count keyed by something other than an order (a user, a store
/// purchase).
pub fn stats_shard_of(key: &str) -> u32 {
    crate::domain::fnv::fnv1a(key.bytes()) % STATS_SHARDS
}

//! Persistence. One trait, two implementations (DynamoDB and embedded memory) that pass the
//! same conformance suite. Each method is one store round trip and one atomic change, so the
//! service layer can count its costs and never observe half of a state change.

pub mod dynamo;
pub mod memory;

use crate::domain::ban::Ban;
use crate::domain::checkpoint::{Checkpoint, FoldStep};
use crate::domain::publish_key::PublishKey;
use crate::domain::refund::{RefundCount, RefundReversal};
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
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_str().bytes().rev() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % STATS_SHARDS
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
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
    pub grants: Vec<Grant>,
    pub credits: i64,
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
    /// may be deleted from then on (its `ttl`); a late payment removes it again.
    async fn close_order(
        &self,
        id: &OrderId,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError>;

    /// Counts a refund that leaves the order PAID: adds `count.add` to its `refunded_amount`
    /// and records `count.refund_id`, in one conditional write on the order (PAID, the id
    /// not recorded yet, the total before within `count`'s bounds). `Done` with the order
    /// as written, `Conflict` with the stored order when a condition failed.
    async fn count_refund(
        &self,
        id: &OrderId,
        count: &RefundCount,
    ) -> Result<TransitionOutcome, StoreError>;

    /// PAID → REFUNDED by the refund `count` that completes what was paid: counts it as
    /// [`Store::count_refund`] does, revokes exactly the grants `order` made and takes back
    /// its coins, all in one transaction under `count`'s conditions. `order` is the
    /// caller's read of the stored order.
    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        refunded_at: i64,
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

    /// The business record of each day in `days` (UTC `YYYY-MM-DD`), counted by the same
    /// transactions that create, settle and refund orders.
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

    /// Writes the user's ban of `ban.scope`, replacing one of the same scope: one write. The
    /// replaced ban, if there was one.
    async fn put_ban(&self, user_id: &str, ban: &Ban) -> Result<Option<Ban>, StoreError>;

    /// Deletes the user's ban of `scope`, only if there is one: `false` when there was none.
    async fn lift_ban(&self, user_id: &str, scope: &str) -> Result<bool, StoreError>;

    /// The stored publish key of a stream, if one was ever set.
    async fn publish_key(&self, stream_id: &str) -> Result<Option<PublishKey>, StoreError>;

    /// Replaces the stream's publish key with `hash` in one atomic write that also counts the
    /// version up, so the previous key stops working at once, and records `by` (the operator):
    /// the key as stored now.
    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        hash: &str,
        by: &str,
        now: i64,
    ) -> Result<PublishKey, StoreError>;
}

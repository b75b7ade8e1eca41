//! A store that misbehaves on purpose, for the soak test: from a seeded generator it fails a
//! share of calls with `Unavailable` before they reach the real store, fails others *after*
//! the real store did the work (the write happened, the caller sees a failure or a timeout:
//! the case a retry must survive), and delays some. Switched off, it forwards everything.

use crate::fuzz::rng::Rng;
use async_trait::async_trait;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate::domain::refund::RefundCount;
use tollgate::domain::refund_request::{RefundHold, RefundRequest, RefundRequestChange};
use tollgate::domain::{Order, OrderId, OrderState};
use tollgate::store::*;

/// Shares of calls, in calls per 10,000.
#[derive(Debug, Clone, Copy)]
pub struct StoreFaultRates {
    /// Fail without calling the store.
    pub fail_before: u32,
    /// Call the store, then fail (after a delay, as a timeout would).
    pub fail_after: u32,
    /// Answer correctly, late.
    pub delay: u32,
    /// The longest injected delay.
    pub max_delay_ms: u64,
}

/// What was injected so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreFaultCounts {
    pub calls: u64,
    pub failed_before: u64,
    pub failed_after: u64,
    pub delayed: u64,
}

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    rates: StoreFaultRates,
    rng: Mutex<Rng>,
    on: AtomicBool,
    calls: AtomicU64,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
    delayed: AtomicU64,
}

enum Fault {
    None,
    Before,
    After(Duration),
    Delay(Duration),
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, rates: StoreFaultRates, seed: u64) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            rates,
            rng: Mutex::new(Rng::for_run(seed, "store-faults", 0)),
            on: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            failed_before: AtomicU64::new(0),
            failed_after: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        })
    }

    /// Turns injection on or off (off: every call goes straight through).
    pub fn set_enabled(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    pub fn counts(&self) -> StoreFaultCounts {
        StoreFaultCounts {
            calls: self.calls.load(Ordering::SeqCst),
            failed_before: self.failed_before.load(Ordering::SeqCst),
            failed_after: self.failed_after.load(Ordering::SeqCst),
            delayed: self.delayed.load(Ordering::SeqCst),
        }
    }

    fn draw(&self) -> Fault {
        if !self.on.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let r = rng.below(10_000) as u32;
        let pause = Duration::from_millis(rng.below(self.rates.max_delay_ms as usize + 1) as u64);
        let StoreFaultRates {
            fail_before,
            fail_after,
            delay,
            ..
        } = self.rates;
        if r < fail_before {
            Fault::Before
        } else if r < fail_before + fail_after {
            Fault::After(pause)
        } else if r < fail_before + fail_after + delay {
            Fault::Delay(pause)
        } else {
            Fault::None
        }
    }

    /// Runs `call` (a call of the inner store, not started yet) under the fault drawn for it.
    async fn guard<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.draw() {
            Fault::None => call.await,
            Fault::Before => {
                self.failed_before.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Unavailable(format!("injected: {op} not sent")))
            }
            Fault::After(pause) => {
                self.failed_after.fetch_add(1, Ordering::SeqCst);
                let _ = call.await;
                tokio::time::sleep(pause).await;
                Err(StoreError::Unavailable(format!(
                    "injected: {op} done, answer lost"
                )))
            }
            Fault::Delay(pause) => {
                self.delayed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(pause).await;
                call.await
            }
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &tollgate::domain::OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.guard(
            "create_order",
            self.inner.create_order(order, idem, quota, now),
        )
        .await
    }
    async fn create_lifetime_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &tollgate::domain::OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.guard(
            "create_lifetime_order",
            self.inner.create_lifetime_order(order, idem, quota, now),
        )
        .await
    }
    async fn release_lifetime_claim(&self, order: &Order, now: i64) -> Result<(), StoreError> {
        self.guard(
            "release_lifetime_claim",
            self.inner.release_lifetime_claim(order, now),
        )
        .await
    }
    async fn get_idempotency(
        &self,
        user: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.guard(
            "get_idempotency",
            self.inner.get_idempotency(user, key, now),
        )
        .await
    }
    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.guard("get_order", self.inner.get_order(id)).await
    }
    async fn user_orders(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&OrderId>,
    ) -> Result<tollgate::store::OrderPage, StoreError> {
        self.guard(
            "user_orders",
            self.inner.user_orders(user_id, limit, before),
        )
        .await
    }
    async fn order_for_txn(
        &self,
        provider: &str,
        txn_id: &str,
    ) -> Result<Option<OrderId>, StoreError> {
        self.guard("order_for_txn", self.inner.order_for_txn(provider, txn_id))
            .await
    }
    async fn settle(&self, s: &Settlement) -> Result<SettleOutcome, StoreError> {
        self.guard("settle", self.inner.settle(s)).await
    }
    async fn count_refund_revoking(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.guard(
            "count_refund_revoking",
            self.inner.count_refund_revoking(order, count, at),
        )
        .await
    }
    async fn reverse_refund(
        &self,
        order: &Order,
        reversal: &tollgate::domain::refund::RefundReversal,
    ) -> Result<TransitionOutcome, StoreError> {
        self.guard("reverse_refund", self.inner.reverse_refund(order, reversal))
            .await
    }
    async fn claim_marker(&self, key: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        self.guard("claim_marker", self.inner.claim_marker(key, now, until))
            .await
    }
    async fn release_marker(&self, key: &str, until: i64) -> Result<(), StoreError> {
        self.guard("release_marker", self.inner.release_marker(key, until))
            .await
    }
    async fn settle_new_order(
        &self,
        order: &Order,
        s: &Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        self.guard("settle_new_order", self.inner.settle_new_order(order, s))
            .await
    }
    async fn close_order(
        &self,
        order: &Order,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError> {
        self.guard(
            "close_order",
            self.inner.close_order(order, to, at, retain_until),
        )
        .await
    }
    async fn count_refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.guard("count_refund", self.inner.count_refund(order, count, at))
            .await
    }
    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.guard("refund", self.inner.refund(order, count, at))
            .await
    }
    async fn request_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
        hold: &RefundHold,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<RefundRequestOutcome, StoreError> {
        self.guard(
            "request_refund",
            self.inner.request_refund(order, req, hold, audit),
        )
        .await
    }
    async fn refund_request(
        &self,
        order_id: &OrderId,
        out_refund_no: &str,
    ) -> Result<Option<RefundRequest>, StoreError> {
        self.guard(
            "refund_request",
            self.inner.refund_request(order_id, out_refund_no),
        )
        .await
    }
    async fn change_refund_request(
        &self,
        req: &RefundRequest,
        change: &RefundRequestChange,
    ) -> Result<Option<RefundRequest>, StoreError> {
        self.guard(
            "change_refund_request",
            self.inner.change_refund_request(req, change),
        )
        .await
    }
    async fn due_refund_requests(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueRefund>, StoreError> {
        self.guard(
            "due_refund_requests",
            self.inner.due_refund_requests(now, limit),
        )
        .await
    }
    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        self.guard("defer_due", self.inner.defer_due(id, attempts, next_at))
            .await
    }
    async fn mark_requery(
        &self,
        id: &OrderId,
        user: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        self.guard(
            "mark_requery",
            self.inner.mark_requery(id, user, now, min_interval),
        )
        .await
    }
    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        self.guard("record_error", self.inner.record_error(id, reason))
            .await
    }
    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.guard("due_orders", self.inner.due_orders(shard, now, limit))
            .await
    }
    async fn day_records(
        &self,
        days: &[String],
    ) -> Result<Vec<tollgate::domain::stats::DayRecord>, StoreError> {
        self.guard("day_records", self.inner.day_records(days))
            .await
    }
    async fn user_items(&self, user: &str) -> Result<UserItems, StoreError> {
        self.guard("user_items", self.inner.user_items(user)).await
    }
    async fn user_history(&self, user: &str) -> Result<UserItems, StoreError> {
        self.guard("user_history", self.inner.user_history(user))
            .await
    }
    async fn fold_grants(
        &self,
        user: &str,
        step: &tollgate::domain::checkpoint::FoldStep,
    ) -> Result<bool, StoreError> {
        self.guard("fold_grants", self.inner.fold_grants(user, step))
            .await
    }
    async fn get_purchase(
        &self,
        store: &str,
        id: &str,
    ) -> Result<Option<StorePurchase>, StoreError> {
        self.guard("get_purchase", self.inner.get_purchase(store, id))
            .await
    }
    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError> {
        self.guard("put_purchase", self.inner.put_purchase(p)).await
    }
    async fn put_purchase_change(
        &self,
        p: &StorePurchase,
        change: &tollgate::domain::subscription::PurchaseChange,
    ) -> Result<PurchaseOutcome, StoreError> {
        self.guard(
            "put_purchase_change",
            self.inner.put_purchase_change(p, change),
        )
        .await
    }
    async fn put_events(
        &self,
        events: &[tollgate::domain::event::Event],
    ) -> Result<bool, StoreError> {
        self.guard("put_events", self.inner.put_events(events))
            .await
    }
    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        self.guard("note_seen", self.inner.note_seen(source, id, now))
            .await
    }
    async fn record_note(
        &self,
        source: &str,
        id: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.guard("record_note", self.inner.record_note(source, id, kind, now))
            .await
    }
    async fn put_sessions(
        &self,
        user: &str,
        sessions: &tollgate::domain::session::Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        self.guard(
            "put_sessions",
            self.inner.put_sessions(user, sessions, expected_version),
        )
        .await
    }
    async fn put_sessions_counted(
        &self,
        user: &str,
        sessions: &tollgate::domain::session::Sessions,
        expected_version: u64,
        at: i64,
        counts: &[(String, i64)],
    ) -> Result<PutSessions, StoreError> {
        self.guard(
            "put_sessions_counted",
            self.inner
                .put_sessions_counted(user, sessions, expected_version, at, counts),
        )
        .await
    }
    async fn count_rejection(
        &self,
        provider: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.guard(
            "count_rejection",
            self.inner.count_rejection(provider, reason, at),
        )
        .await
    }
    async fn put_ban(
        &self,
        user: &str,
        ban: &tollgate::domain::ban::Ban,
        replaces: Option<&tollgate::domain::ban::Ban>,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::ban::Ban>>, StoreError> {
        self.guard("put_ban", self.inner.put_ban(user, ban, replaces, audit))
            .await
    }
    async fn lift_ban(
        &self,
        user: &str,
        ban: &tollgate::domain::ban::Ban,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::ban::Ban>>, StoreError> {
        self.guard("lift_ban", self.inner.lift_ban(user, ban, audit))
            .await
    }
    async fn publish_key(
        &self,
        stream_id: &str,
    ) -> Result<Option<tollgate::domain::publish_key::PublishKey>, StoreError> {
        self.guard("publish_key", self.inner.publish_key(stream_id))
            .await
    }
    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        key: &tollgate::domain::publish_key::PublishKey,
        replaces: Option<&tollgate::domain::publish_key::PublishKey>,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::publish_key::PublishKey>>, StoreError> {
        self.guard(
            "rotate_publish_key",
            self.inner
                .rotate_publish_key(stream_id, key, replaces, audit),
        )
        .await
    }
    async fn grant(
        &self,
        user: &str,
        grants: &[tollgate::domain::Grant],
        key: &AdminKey,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<KeyedOutcome, StoreError> {
        self.guard("grant", self.inner.grant(user, grants, key, audit))
            .await
    }
    async fn revoke_grants(
        &self,
        user: &str,
        revoked: &[tollgate::domain::Grant],
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<()>, StoreError> {
        self.guard(
            "revoke_grants",
            self.inner.revoke_grants(user, revoked, audit),
        )
        .await
    }
    async fn adjust_wallet(
        &self,
        user: &str,
        before: i64,
        after: i64,
        key: &AdminKey,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<WalletOutcome, StoreError> {
        self.guard(
            "adjust_wallet",
            self.inner.adjust_wallet(user, before, after, key, audit),
        )
        .await
    }
    async fn admin_key(&self, user: &str, key: &str) -> Result<Option<AdminKey>, StoreError> {
        self.guard("admin_key", self.inner.admin_key(user, key))
            .await
    }
    async fn user_audit(
        &self,
        user: &str,
        limit: usize,
        before: Option<&str>,
        since: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        self.guard(
            "user_audit",
            self.inner.user_audit(user, limit, before, since),
        )
        .await
    }
    async fn audit_since(
        &self,
        since: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        self.guard("audit_since", self.inner.audit_since(since, limit, after))
            .await
    }
    async fn wallet_ledger(
        &self,
        user: &str,
        limit: usize,
        after: Option<&tollgate::domain::ledger::LedgerCursor>,
    ) -> Result<LedgerPage, StoreError> {
        self.guard(
            "wallet_ledger",
            self.inner.wallet_ledger(user, limit, after),
        )
        .await
    }
    async fn debit_wallet(&self, rec: &DebitRecord) -> Result<DebitOutcome, StoreError> {
        self.guard("debit_wallet", self.inner.debit_wallet(rec))
            .await
    }
    async fn pay_with_coins(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        entry: &tollgate::domain::ledger::LedgerEntry,
        now: i64,
    ) -> Result<CoinPayment, StoreError> {
        self.guard(
            "pay_with_coins",
            self.inner.pay_with_coins(order, idem, entry, now),
        )
        .await
    }
    async fn events_since(
        &self,
        since: i64,
        until: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<tollgate::store::EventPage, StoreError> {
        self.guard(
            "events_since",
            self.inner.events_since(since, until, limit, after),
        )
        .await
    }
    async fn get_event(
        &self,
        id: &str,
    ) -> Result<Option<tollgate::domain::event::EventRecord>, StoreError> {
        self.guard("get_event", self.inner.get_event(id)).await
    }
    async fn put_event_deliveries(
        &self,
        record: &tollgate::domain::event::EventRecord,
        expires_at: Option<i64>,
    ) -> Result<Guarded<Option<tollgate::domain::event::EventRecord>>, StoreError> {
        self.guard(
            "put_event_deliveries",
            self.inner.put_event_deliveries(record, expires_at),
        )
        .await
    }
    async fn disable_endpoint(&self, url: &str, at: i64) -> Result<(), StoreError> {
        self.guard("disable_endpoint", self.inner.disable_endpoint(url, at))
            .await
    }
    async fn disabled_endpoints(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.guard("disabled_endpoints", self.inner.disabled_endpoints())
            .await
    }
    async fn enable_endpoint(
        &self,
        url: &str,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<bool, StoreError> {
        self.guard("enable_endpoint", self.inner.enable_endpoint(url, audit))
            .await
    }
}

/// A store whose event ids can be occupied: the memory store, or DynamoDB (moto).
pub enum EventIds<'a> {
    Memory(&'a MemoryStore),
    Dynamo(&'a DynamoStore),
}

/// Injects a failure into the transaction of the change that will write event `id`: a
/// record with that id is put first (under another user), so the change's conditional put
/// of its event fails, and with it the whole change. What proves the change and its event
/// are one write: were the event written apart, the change would go through.
pub async fn occupy_event_id(store: EventIds<'_>, id: &str) {
    let planted = tollgate::domain::event::EventRecord::new(tollgate::domain::event::Event {
        id: id.to_owned(),
        kind: tollgate::domain::event::EventType::OrderPaid,
        occurred_at: 1,
        user_id: "planted".into(),
        product_id: None,
        data: serde_json::json!({}),
    });
    match store {
        EventIds::Memory(m) => m.put_event_record(planted),
        EventIds::Dynamo(d) => {
            use aws_sdk_dynamodb::types::AttributeValue as V;
            d.client()
                .put_item()
                .table_name(d.table())
                .item("pk", V::S(format!("EVENT#{id}")))
                .item("sk", V::S("EVENT".into()))
                .item("record", V::S("EVENT".into()))
                .item(
                    "event",
                    V::S(serde_json::to_string(&planted.event).unwrap()),
                )
                .item("deliveries", V::S("{}".into()))
                .item("version", V::N("0".into()))
                .send()
                .await
                .expect("put the occupying event record");
        }
    }
}

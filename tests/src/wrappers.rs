//! Store wrappers for tests: one that counts round trips and items read, one that fails a
//! chosen operation on demand. Both forward everything else to a real store.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tollgate::domain::refund::{RefundCount, RefundReversal};
use tollgate::domain::refund_request::{RefundHold, RefundRequest, RefundRequestChange};
use tollgate::domain::{Order, OrderId, OrderQuota, OrderState};
use tollgate::store::*;

/// Counts calls per operation and the due-index entries returned.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<HashMap<&'static str, u64>>,
    pub due_items: AtomicU64,
    /// Operations that fail with `Unavailable` while their counter is above zero.
    failures: Mutex<HashMap<&'static str, u32>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            calls: Mutex::new(HashMap::new()),
            due_items: AtomicU64::new(0),
            failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn calls(&self, op: &str) -> u64 {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.lock().unwrap().values().sum()
    }

    /// Calls per operation since the last `take` (or `reset`), then resets.
    pub fn take(&self) -> HashMap<&'static str, u64> {
        self.due_items.store(0, Ordering::SeqCst);
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
        self.due_items.store(0, Ordering::SeqCst);
    }

    /// The next `times` calls of `op` fail as if the store were unreachable.
    pub fn fail_next(&self, op: &'static str, times: u32) {
        self.failures.lock().unwrap().insert(op, times);
    }

    fn enter(&self, op: &'static str) -> Result<(), StoreError> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        let mut f = self.failures.lock().unwrap();
        match f.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(StoreError::Unavailable(format!("injected failure of {op}")))
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn create_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.enter("create_order")?;
        self.inner.create_order(order, idem, quota, now).await
    }
    async fn create_lifetime_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.enter("create_lifetime_order")?;
        self.inner
            .create_lifetime_order(order, idem, quota, now)
            .await
    }
    async fn release_lifetime_claim(&self, order: &Order, now: i64) -> Result<(), StoreError> {
        self.enter("release_lifetime_claim")?;
        self.inner.release_lifetime_claim(order, now).await
    }
    async fn get_idempotency(
        &self,
        user: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.enter("get_idempotency")?;
        self.inner.get_idempotency(user, key, now).await
    }
    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.enter("get_order")?;
        self.inner.get_order(id).await
    }
    async fn user_orders(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&OrderId>,
    ) -> Result<tollgate::store::OrderPage, StoreError> {
        self.enter("user_orders")?;
        self.inner.user_orders(user_id, limit, before).await
    }
    async fn order_for_txn(
        &self,
        provider: &str,
        txn_id: &str,
    ) -> Result<Option<OrderId>, StoreError> {
        self.enter("order_for_txn")?;
        self.inner.order_for_txn(provider, txn_id).await
    }
    async fn settle(&self, s: &Settlement) -> Result<SettleOutcome, StoreError> {
        self.enter("settle")?;
        self.inner.settle(s).await
    }
    async fn settle_new_order(
        &self,
        order: &Order,
        s: &Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        self.enter("settle_new_order")?;
        self.inner.settle_new_order(order, s).await
    }
    async fn close_order(
        &self,
        order: &Order,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError> {
        self.enter("close_order")?;
        self.inner.close_order(order, to, at, retain_until).await
    }
    async fn count_refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.enter("count_refund")?;
        self.inner.count_refund(order, count, at).await
    }
    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.enter("refund")?;
        self.inner.refund(order, count, at).await
    }
    async fn count_refund_revoking(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.enter("count_refund_revoking")?;
        self.inner.count_refund_revoking(order, count, at).await
    }
    async fn reverse_refund(
        &self,
        order: &Order,
        reversal: &RefundReversal,
    ) -> Result<TransitionOutcome, StoreError> {
        self.enter("reverse_refund")?;
        self.inner.reverse_refund(order, reversal).await
    }
    async fn request_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
        hold: &RefundHold,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<RefundRequestOutcome, StoreError> {
        self.enter("request_refund")?;
        self.inner.request_refund(order, req, hold, audit).await
    }
    async fn refund_request(
        &self,
        order_id: &OrderId,
        out_refund_no: &str,
    ) -> Result<Option<RefundRequest>, StoreError> {
        self.enter("refund_request")?;
        self.inner.refund_request(order_id, out_refund_no).await
    }
    async fn change_refund_request(
        &self,
        req: &RefundRequest,
        change: &RefundRequestChange,
    ) -> Result<Option<RefundRequest>, StoreError> {
        self.enter("change_refund_request")?;
        self.inner.change_refund_request(req, change).await
    }
    async fn due_refund_requests(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueRefund>, StoreError> {
        self.enter("due_refund_requests")?;
        self.inner.due_refund_requests(now, limit).await
    }
    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        self.enter("defer_due")?;
        self.inner.defer_due(id, attempts, next_at).await
    }
    async fn mark_requery(
        &self,
        id: &OrderId,
        user: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        self.enter("mark_requery")?;
        self.inner.mark_requery(id, user, now, min_interval).await
    }
    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        self.enter("record_error")?;
        self.inner.record_error(id, reason).await
    }
    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.enter("due_orders")?;
        let r = self.inner.due_orders(shard, now, limit).await?;
        self.due_items.fetch_add(r.len() as u64, Ordering::SeqCst);
        Ok(r)
    }
    async fn day_records(
        &self,
        days: &[String],
    ) -> Result<Vec<tollgate::domain::stats::DayRecord>, StoreError> {
        self.enter("day_records")?;
        self.inner.day_records(days).await
    }
    async fn user_items(&self, user: &str) -> Result<UserItems, StoreError> {
        self.enter("user_items")?;
        self.inner.user_items(user).await
    }
    async fn user_history(&self, user: &str) -> Result<UserItems, StoreError> {
        self.enter("user_history")?;
        self.inner.user_history(user).await
    }
    async fn fold_grants(
        &self,
        user: &str,
        step: &tollgate::domain::checkpoint::FoldStep,
    ) -> Result<bool, StoreError> {
        self.enter("fold_grants")?;
        self.inner.fold_grants(user, step).await
    }
    async fn get_purchase(
        &self,
        store: &str,
        id: &str,
    ) -> Result<Option<StorePurchase>, StoreError> {
        self.enter("get_purchase")?;
        self.inner.get_purchase(store, id).await
    }
    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError> {
        self.enter("put_purchase")?;
        self.inner.put_purchase(p).await
    }
    async fn put_purchase_change(
        &self,
        p: &StorePurchase,
        change: &tollgate::domain::subscription::PurchaseChange,
    ) -> Result<PurchaseOutcome, StoreError> {
        self.enter("put_purchase_change")?;
        self.inner.put_purchase_change(p, change).await
    }
    async fn put_events(
        &self,
        events: &[tollgate::domain::event::Event],
    ) -> Result<bool, StoreError> {
        self.enter("put_events")?;
        self.inner.put_events(events).await
    }
    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        self.enter("note_seen")?;
        self.inner.note_seen(source, id, now).await
    }
    async fn record_note(
        &self,
        source: &str,
        id: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.enter("record_note")?;
        self.inner.record_note(source, id, kind, now).await
    }
    async fn put_sessions(
        &self,
        user: &str,
        sessions: &tollgate::domain::session::Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        self.enter("put_sessions")?;
        self.inner
            .put_sessions(user, sessions, expected_version)
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
        self.enter("put_sessions_counted")?;
        self.inner
            .put_sessions_counted(user, sessions, expected_version, at, counts)
            .await
    }
    async fn count_rejection(
        &self,
        provider: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.enter("count_rejection")?;
        self.inner.count_rejection(provider, reason, at).await
    }
    async fn claim_marker(&self, key: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        self.enter("claim_marker")?;
        self.inner.claim_marker(key, now, until).await
    }
    async fn release_marker(&self, key: &str, until: i64) -> Result<(), StoreError> {
        self.enter("release_marker")?;
        self.inner.release_marker(key, until).await
    }
    async fn put_ban(
        &self,
        user: &str,
        ban: &tollgate::domain::ban::Ban,
        replaces: Option<&tollgate::domain::ban::Ban>,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::ban::Ban>>, StoreError> {
        self.enter("put_ban")?;
        self.inner.put_ban(user, ban, replaces, audit).await
    }
    async fn lift_ban(
        &self,
        user: &str,
        ban: &tollgate::domain::ban::Ban,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::ban::Ban>>, StoreError> {
        self.enter("lift_ban")?;
        self.inner.lift_ban(user, ban, audit).await
    }
    async fn publish_key(
        &self,
        stream_id: &str,
    ) -> Result<Option<tollgate::domain::publish_key::PublishKey>, StoreError> {
        self.enter("publish_key")?;
        self.inner.publish_key(stream_id).await
    }
    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        key: &tollgate::domain::publish_key::PublishKey,
        replaces: Option<&tollgate::domain::publish_key::PublishKey>,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<Option<tollgate::domain::publish_key::PublishKey>>, StoreError> {
        self.enter("rotate_publish_key")?;
        self.inner
            .rotate_publish_key(stream_id, key, replaces, audit)
            .await
    }
    async fn grant(
        &self,
        user: &str,
        grants: &[tollgate::domain::Grant],
        key: &AdminKey,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<KeyedOutcome, StoreError> {
        self.enter("grant")?;
        self.inner.grant(user, grants, key, audit).await
    }
    async fn revoke_grants(
        &self,
        user: &str,
        revoked: &[tollgate::domain::Grant],
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<Guarded<()>, StoreError> {
        self.enter("revoke_grants")?;
        self.inner.revoke_grants(user, revoked, audit).await
    }
    async fn adjust_wallet(
        &self,
        user: &str,
        before: i64,
        after: i64,
        key: &AdminKey,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<WalletOutcome, StoreError> {
        self.enter("adjust_wallet")?;
        self.inner
            .adjust_wallet(user, before, after, key, audit)
            .await
    }
    async fn admin_key(&self, user: &str, key: &str) -> Result<Option<AdminKey>, StoreError> {
        self.enter("admin_key")?;
        self.inner.admin_key(user, key).await
    }
    async fn user_audit(
        &self,
        user: &str,
        limit: usize,
        before: Option<&str>,
        since: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        self.enter("user_audit")?;
        self.inner.user_audit(user, limit, before, since).await
    }
    async fn audit_since(
        &self,
        since: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        self.enter("audit_since")?;
        self.inner.audit_since(since, limit, after).await
    }
    async fn wallet_ledger(
        &self,
        user: &str,
        limit: usize,
        after: Option<&tollgate::domain::ledger::LedgerCursor>,
    ) -> Result<LedgerPage, StoreError> {
        self.enter("wallet_ledger")?;
        self.inner.wallet_ledger(user, limit, after).await
    }
    async fn debit_wallet(&self, rec: &DebitRecord) -> Result<DebitOutcome, StoreError> {
        self.enter("debit_wallet")?;
        self.inner.debit_wallet(rec).await
    }
    async fn pay_with_coins(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        entry: &tollgate::domain::ledger::LedgerEntry,
        now: i64,
    ) -> Result<CoinPayment, StoreError> {
        self.enter("pay_with_coins")?;
        self.inner.pay_with_coins(order, idem, entry, now).await
    }
    async fn events_since(
        &self,
        since: i64,
        until: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<tollgate::store::EventPage, StoreError> {
        self.enter("events_since")?;
        self.inner.events_since(since, until, limit, after).await
    }
    async fn get_event(
        &self,
        id: &str,
    ) -> Result<Option<tollgate::domain::event::EventRecord>, StoreError> {
        self.enter("get_event")?;
        self.inner.get_event(id).await
    }
    async fn put_event_deliveries(
        &self,
        record: &tollgate::domain::event::EventRecord,
        expires_at: Option<i64>,
    ) -> Result<Guarded<Option<tollgate::domain::event::EventRecord>>, StoreError> {
        self.enter("put_event_deliveries")?;
        self.inner.put_event_deliveries(record, expires_at).await
    }
    async fn disable_endpoint(&self, url: &str, at: i64) -> Result<(), StoreError> {
        self.enter("disable_endpoint")?;
        self.inner.disable_endpoint(url, at).await
    }
    async fn disabled_endpoints(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.enter("disabled_endpoints")?;
        self.inner.disabled_endpoints().await
    }
    async fn enable_endpoint(
        &self,
        url: &str,
        audit: &tollgate::domain::audit::AuditRecord,
    ) -> Result<bool, StoreError> {
        self.enter("enable_endpoint")?;
        self.inner.enable_endpoint(url, audit).await
    }
}

//! DynamoDB single-table store.
//!
//! Every state change is one conditional write or one `TransactWriteItems`; a failed
//! condition comes back with the stored item (`ReturnValuesOnConditionCheckFailure=ALL_OLD`),
//! so a duplicate learns what happened without a second read.
//!
//! This module holds the store handle and dispatches each [`Store`] method to the module
//! for what it touches; the item format lives in `keys`, `attrs` and `items`.

mod admin_keys;
mod attrs;
mod audit;
mod checkpoints;
mod counted_sessions;
mod errors;
mod events;
mod items;
mod keys;
mod ledger;
mod manual_grants;
mod markers;
mod notes;
mod order_history;
mod orders;
mod payments;
mod publish_keys;
mod purchases;
mod refund_requests;
mod rejections;
mod stats;
mod table;
mod transact;
mod users;
mod wallet;

pub use events::EVENT_RECORD;
pub use table::GSI1;

use crate::domain::audit::AuditRecord;
use crate::domain::ban::Ban;
use crate::domain::checkpoint::FoldStep;
use crate::domain::publish_key::PublishKey;
use crate::domain::refund::{RefundCount, RefundReversal};
use crate::domain::refund_request::{RefundHold, RefundRequest, RefundRequestChange};
use crate::domain::session::Sessions;
use crate::domain::stats::DayRecord;
use crate::domain::{Grant, Order, OrderId, OrderQuota, OrderState};
use crate::store::{
    AdminKey, AuditPage, CreateOutcome, DueEntry, DueRefund, EventPage, Guarded, IdempotencyRecord,
    KeyedOutcome, OrderPage, PurchaseOutcome, PutSessions, RefundRequestOutcome, SettleOutcome,
    Settlement, Store, StoreError, StorePurchase, TransitionOutcome, UserItems, WalletOutcome,
};
use async_trait::async_trait;
use attrs::Item;
use aws_sdk_dynamodb::Client;
use errors::unavailable;
use keys::key;

/// The store on one DynamoDB table; cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// The operator's day the figures are counted in.
    stats_zone: crate::domain::stats::StatsZone,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish()
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            stats_zone: Default::default(),
        }
    }

    /// Counts the figures in the days of `zone` (by default `Asia/Shanghai`).
    pub fn with_stats_zone(mut self, zone: crate::domain::stats::StatsZone) -> Self {
        self.stats_zone = zone;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One strongly consistent read of one item.
    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = crate::metrics::timed(
            "StoreCallMs",
            &[("Call", "get item")],
            self.client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(|e| unavailable("get item", e))?;
        Ok(out.item().cloned())
    }

    /// BatchGetItem in chunks of 100, following unprocessed keys.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            for _ in 0..10 {
                if pending.is_empty() {
                    break;
                }
                let ka = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let r = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(|e| unavailable("batch get", e))?;
                if let Some(items) = r.responses().and_then(|m| m.get(&self.table)) {
                    out.extend(items.iter().cloned());
                }
                pending = r
                    .unprocessed_keys()
                    .and_then(|m| m.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(
                    "batch get: keys left unprocessed".into(),
                ));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        orders::create_order(self, order, idem, quota, now, false).await
    }

    async fn create_lifetime_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        orders::create_order(self, order, idem, quota, now, true).await
    }

    async fn release_lifetime_claim(&self, order: &Order, now: i64) -> Result<(), StoreError> {
        orders::release_lifetime_claim(self, order, now).await
    }

    async fn get_idempotency(
        &self,
        user_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        orders::get_idempotency(self, user_id, key, now).await
    }

    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        orders::get_order(self, id).await
    }

    async fn order_for_txn(
        &self,
        provider: &str,
        txn_id: &str,
    ) -> Result<Option<OrderId>, StoreError> {
        payments::order_for_txn(self, provider, txn_id).await
    }

    async fn user_orders(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&OrderId>,
    ) -> Result<OrderPage, StoreError> {
        order_history::user_orders(self, user_id, limit, before).await
    }

    async fn settle(&self, st: &Settlement) -> Result<SettleOutcome, StoreError> {
        payments::settle(self, st).await
    }

    async fn settle_new_order(
        &self,
        order: &Order,
        st: &Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        payments::settle_new_order(self, order, st).await
    }

    async fn close_order(
        &self,
        order: &Order,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError> {
        orders::close_order(self, order, to, at, retain_until).await
    }

    async fn count_refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        payments::count_refund(self, order, count, at).await
    }

    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        payments::refund(self, order, count, at).await
    }

    async fn count_refund_revoking(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        payments::count_refund_revoking(self, order, count, at).await
    }

    async fn reverse_refund(
        &self,
        order: &Order,
        reversal: &RefundReversal,
    ) -> Result<TransitionOutcome, StoreError> {
        payments::reverse_refund(self, order, reversal).await
    }

    async fn request_refund(
        &self,
        order: &Order,
        req: &RefundRequest,
        hold: &RefundHold,
        audit: &AuditRecord,
    ) -> Result<RefundRequestOutcome, StoreError> {
        refund_requests::request_refund(self, order, req, hold, audit).await
    }

    async fn refund_request(
        &self,
        order_id: &OrderId,
        out_refund_no: &str,
    ) -> Result<Option<RefundRequest>, StoreError> {
        refund_requests::refund_request(self, order_id, out_refund_no).await
    }

    async fn change_refund_request(
        &self,
        req: &RefundRequest,
        change: &RefundRequestChange,
    ) -> Result<Option<RefundRequest>, StoreError> {
        refund_requests::change_refund_request(self, req, change).await
    }

    async fn due_refund_requests(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueRefund>, StoreError> {
        refund_requests::due_refund_requests(self, now, limit).await
    }

    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        orders::defer_due(self, id, attempts, next_at).await
    }

    async fn mark_requery(
        &self,
        id: &OrderId,
        user_id: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        orders::mark_requery(self, id, user_id, now, min_interval).await
    }

    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        orders::record_error(self, id, reason).await
    }

    async fn day_records(&self, days: &[String]) -> Result<Vec<DayRecord>, StoreError> {
        stats::day_records(self, days).await
    }

    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        orders::due_orders(self, shard, now, limit).await
    }

    async fn user_items(&self, user_id: &str) -> Result<UserItems, StoreError> {
        users::user_items(self, user_id, false).await
    }

    async fn user_history(&self, user_id: &str) -> Result<UserItems, StoreError> {
        users::user_items(self, user_id, true).await
    }

    async fn fold_grants(&self, user_id: &str, step: &FoldStep) -> Result<bool, StoreError> {
        checkpoints::fold_grants(self, user_id, step).await
    }

    async fn put_sessions(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        users::put_sessions(self, user_id, sessions, expected_version).await
    }

    async fn get_purchase(
        &self,
        store: &str,
        purchase_id: &str,
    ) -> Result<Option<StorePurchase>, StoreError> {
        purchases::get_purchase(self, store, purchase_id).await
    }

    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError> {
        purchases::put_purchase(self, p).await
    }

    async fn put_purchase_change(
        &self,
        p: &StorePurchase,
        change: &crate::domain::subscription::PurchaseChange,
    ) -> Result<PurchaseOutcome, StoreError> {
        purchases::put_purchase_change(self, p, change).await
    }

    async fn put_events(&self, events: &[crate::domain::event::Event]) -> Result<bool, StoreError> {
        purchases::put_events(self, events).await
    }

    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        notes::note_seen(self, source, id, now).await
    }

    async fn record_note(
        &self,
        source: &str,
        id: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        notes::record_note(self, source, id, kind, now).await
    }

    async fn claim_marker(&self, key: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        markers::claim_marker(self, key, now, until).await
    }

    async fn release_marker(&self, key: &str, until: i64) -> Result<(), StoreError> {
        markers::release_marker(self, key, until).await
    }

    async fn put_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        replaces: Option<&Ban>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError> {
        users::put_ban(self, user_id, ban, replaces, audit).await
    }

    async fn lift_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError> {
        users::lift_ban(self, user_id, ban, audit).await
    }

    async fn publish_key(&self, stream_id: &str) -> Result<Option<PublishKey>, StoreError> {
        publish_keys::publish_key(self, stream_id).await
    }

    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        key: &PublishKey,
        replaces: Option<&PublishKey>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<PublishKey>>, StoreError> {
        publish_keys::rotate_publish_key(self, stream_id, key, replaces, audit).await
    }

    async fn grant(
        &self,
        user_id: &str,
        grants: &[Grant],
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<KeyedOutcome, StoreError> {
        manual_grants::grant(self, user_id, grants, key, audit).await
    }

    async fn revoke_grants(
        &self,
        user_id: &str,
        revoked: &[Grant],
        audit: &AuditRecord,
    ) -> Result<Guarded<()>, StoreError> {
        manual_grants::revoke_grants(self, user_id, revoked, audit).await
    }

    async fn adjust_wallet(
        &self,
        user_id: &str,
        before: i64,
        after: i64,
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<WalletOutcome, StoreError> {
        wallet::adjust_wallet(self, user_id, before, after, key, audit).await
    }

    async fn admin_key(&self, user_id: &str, key: &str) -> Result<Option<AdminKey>, StoreError> {
        admin_keys::admin_key(self, user_id, key).await
    }

    async fn user_audit(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&str>,
        since: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        audit::user_audit(self, user_id, limit, before, since).await
    }

    async fn audit_since(
        &self,
        since: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        audit::audit_since(self, since, limit, after).await
    }

    async fn wallet_ledger(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&crate::domain::ledger::LedgerCursor>,
    ) -> Result<crate::store::LedgerPage, StoreError> {
        ledger::wallet_ledger(self, user_id, limit, after).await
    }

    async fn debit_wallet(
        &self,
        rec: &crate::store::DebitRecord,
    ) -> Result<crate::store::DebitOutcome, StoreError> {
        ledger::debit_wallet(self, rec).await
    }

    async fn pay_with_coins(
        &self,
        order: &Order,
        idempotency: Option<&IdempotencyRecord>,
        entry: &crate::domain::ledger::LedgerEntry,
        now: i64,
    ) -> Result<crate::store::CoinPayment, StoreError> {
        ledger::pay_with_coins(self, order, idempotency, entry, now).await
    }

    async fn events_since(
        &self,
        since: i64,
        until: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        events::events_since(self, since, until, limit, after).await
    }

    async fn get_event(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::event::EventRecord>, StoreError> {
        events::get_event(self, id).await
    }

    async fn put_event_deliveries(
        &self,
        record: &crate::domain::event::EventRecord,
        expires_at: Option<i64>,
    ) -> Result<Guarded<Option<crate::domain::event::EventRecord>>, StoreError> {
        events::put_event_deliveries(self, record, expires_at).await
    }

    async fn disable_endpoint(&self, url: &str, at: i64) -> Result<(), StoreError> {
        events::disable_endpoint(self, url, at).await
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, i64)>, StoreError> {
        events::disabled_endpoints(self).await
    }

    async fn enable_endpoint(&self, url: &str, audit: &AuditRecord) -> Result<bool, StoreError> {
        events::enable_endpoint(self, url, audit).await
    }

    async fn put_sessions_counted(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
        at: i64,
        counts: &[(String, i64)],
    ) -> Result<PutSessions, StoreError> {
        counted_sessions::put_sessions_counted(
            self,
            user_id,
            sessions,
            expected_version,
            at,
            counts,
        )
        .await
    }

    async fn count_rejection(
        &self,
        provider: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        rejections::count_rejection(self, provider, reason, at).await
    }
}

//! The embedded store: every table in one mutex, so each operation is atomic exactly like a
//! DynamoDB transaction, and the same conformance suite holds for both.

use super::*;
use crate::domain::audit::AuditRecord;
use crate::domain::checkpoint;
use crate::domain::ledger::{LedgerCursor, LedgerEntry, LedgerSource};
use crate::domain::order::{next_state, OrderEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Tables {
    orders: HashMap<OrderId, Order>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    /// (provider, provider transaction id) → order.
    txns: HashMap<(String, String), OrderId>,
    /// user → (scope, source id) → grant: the live grants.
    grants: HashMap<String, BTreeMap<(String, String), Grant>>,
    /// user → (scope, source id) → grant: the grants a fold archived.
    archived_grants: HashMap<String, BTreeMap<(String, String), Grant>>,
    /// user → scope → its checkpoint.
    checkpoints: HashMap<String, BTreeMap<String, Checkpoint>>,
    wallets: HashMap<String, i64>,
    sessions: HashMap<String, Sessions>,
    /// (shard, due_at, order id) for PENDING orders only, like the sparse GSI.
    due: BTreeSet<(u32, i64, OrderId)>,
    due_at: HashMap<OrderId, i64>,
    days: HashMap<String, DayRecord>,
    first_paid: HashMap<String, i64>,
    requery_requested_at: HashMap<OrderId, i64>,
    purchases: HashMap<(String, String), StorePurchase>,
    /// (source, id) → expiry.
    notes: HashMap<(String, String), i64>,
    /// user → scope → ban.
    bans: HashMap<String, BTreeMap<String, Ban>>,
    /// stream → its publish key.
    publish_keys: HashMap<String, PublishKey>,
    /// marker → claimed until.
    markers: HashMap<String, i64>,
    /// (order, out_refund_no) → refund request.
    refund_requests: HashMap<(OrderId, String), RefundRequest>,
    /// (due at, order, out_refund_no) of open refund requests: the refund index.
    refunds_due: BTreeSet<(i64, OrderId, String)>,
    /// (user, window start) → orders created in that window.
    order_windows: HashMap<(String, i64), u32>,
    /// (user, product) → the claim of the lifetime purchase last started.
    lifetime_claims: HashMap<(String, String), LifetimeClaim>,
    /// What may be deleted from when on, oldest first: the embedded store's `ttl`.
    expiring: BTreeSet<(i64, Expiring)>,
    /// Every audit record by sort key: the `since` order.
    audit_log: BTreeMap<String, AuditRecord>,
    /// user → sort key → audit record about them.
    audit_by_user: HashMap<String, BTreeMap<String, AuditRecord>>,
    /// (user, key) → an operator's Idempotency-Key.
    admin_keys: HashMap<(String, String), AdminKey>,
    /// user → ledger position → entry: every movement of their coins, newest first.
    ledgers: HashMap<String, BTreeMap<String, LedgerEntry>>,
    /// (user, key) → a spend under that Idempotency-Key.
    debit_keys: HashMap<(String, String), DebitRecord>,
    /// Every event record by sort key (time order): the outbox.
    events: BTreeMap<String, EventRecord>,
    /// Event id → its sort key.
    event_keys: HashMap<String, String>,
    /// Webhook endpoint URL → when it was disabled.
    disabled_endpoints: BTreeMap<String, i64>,
}

/// Moves `entry.amount` coins in `user`'s wallet and writes the entry: what every balance
/// change does, in the change's own critical section.
fn post(t: &mut Tables, user: &str, entry: LedgerEntry) {
    *t.wallets.entry(user.to_owned()).or_default() += entry.amount;
    t.ledgers
        .entry(user.to_owned())
        .or_default()
        .insert(entry.position(), entry);
}

/// Refuses a change whose events are recorded already, before anything of it is written:
/// the DynamoDB store puts each event conditioned on its absence in the change's
/// transaction, so there the whole change fails too.
fn events_absent(t: &Tables, events: &[Event]) -> Result<(), StoreError> {
    match events.iter().find(|e| t.event_keys.contains_key(&e.id)) {
        Some(e) => Err(StoreError::Corrupt(format!(
            "event {} ({}) is recorded already",
            e.id,
            e.kind.as_str()
        ))),
        None => Ok(()),
    }
}

/// Files the events of a change, inside the change's own critical section (as the DynamoDB
/// store adds their puts to the change's transaction), after [`events_absent`] passed.
fn record_events(t: &mut Tables, events: Vec<Event>) {
    for e in events {
        let sk = crate::domain::event::sort_key(&e);
        t.event_keys.insert(e.id.clone(), sk.clone());
        t.events.insert(sk, EventRecord::new(e));
    }
}

/// Files an audit record in both orders: what every operator change calls inside its own
/// critical section, as the DynamoDB store adds [`super::dynamo`]'s audit put to the
/// change's transaction.
fn record_audit(t: &mut Tables, rec: &AuditRecord) {
    let sk = rec.sort_key();
    if let crate::domain::audit::AuditSubject::User(u) = rec.subject() {
        t.audit_by_user
            .entry(u.to_owned())
            .or_default()
            .insert(sk.clone(), rec.clone());
    }
    t.audit_log.insert(sk, rec.clone());
}

/// An item with an expiry, as filed in `Tables::expiring`. An entry is only a hint: the
/// item is deleted when it still carries that same expiry (a key reused after expiring, or
/// an order paid late, has moved on).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Expiring {
    Order(OrderId),
    Idempotency(String, String),
    Window(String, i64),
    Note(String, String),
}

/// How many expired items one operation deletes at most: pruning keeps pace with the
/// writes that create expiring items (a create files at most three) without ever making
/// one call slow.
const PRUNE_BUDGET: usize = 64;

impl Tables {
    /// Counts `count` and ends the access of `order` (the caller's read): grants revoked,
    /// coins taken back once. `completes`: PAID → REFUNDED; otherwise the order stays PAID
    /// with `access_revoked_at`.
    fn revoke(
        &mut self,
        order: &Order,
        count: &RefundCount,
        at: i64,
        completes: bool,
        zone: &crate::domain::stats::StatsZone,
    ) -> Result<TransitionOutcome, StoreError> {
        let order_read = order;
        let Some(stored) = self.orders.get(&order.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        if next_state(stored.state, OrderEvent::Refund).is_err()
            || !count.applies_to(stored)
            || stored.access_revoked_at != order.access_revoked_at
        {
            return Ok(TransitionOutcome::Conflict(Box::new(stored.clone())));
        }
        let stored = stored.clone();
        let events = refund_write_events(order_read, count, at, completes, !completes);
        events_absent(self, &events)?;
        let sold = sold_grants(&stored)?;
        let user_grants = self.grants.entry(stored.user_id.clone()).or_default();
        for g in sold {
            // An archived grant (or a missing one) is written back whole, as DynamoDB's
            // update creates it.
            user_grants
                .entry((g.scope.clone(), g.source_id.clone()))
                .or_insert(g)
                .revoked_at
                .get_or_insert(at);
        }
        if stored.credits != 0 && stored.access_revoked_at.is_none() {
            let entry = order_ledger_entry(
                at,
                -stored.credits,
                LedgerSource::Refund,
                "coins of a refunded order",
                &stored.order_id,
            );
            post(self, &stored.user_id, entry);
        }
        if completes && stored.coins_paid() > 0 {
            let entry = order_ledger_entry(
                at,
                stored.coins_paid(),
                LedgerSource::Refund,
                "refund of an order paid with coins",
                &stored.order_id,
            );
            post(self, &stored.user_id, entry);
        }
        let order = self
            .orders
            .get_mut(&stored.order_id)
            .expect("checked above");
        if completes {
            order.state = OrderState::Refunded;
            order.refunded_at = Some(at);
        } else {
            order.access_revoked_at.get_or_insert(at);
        }
        order.refunded_amount += count.add;
        order.refund_ids.insert(count.refund_id.clone());
        let done = order.clone();
        add_counts(
            self,
            zone,
            at,
            &crate::domain::stats::refund_counts(
                &done.product_id,
                &done.provider,
                done.amount.currency,
                count.add,
                completes,
            ),
        );
        record_events(self, events);
        Ok(TransitionOutcome::Done(Box::new(done)))
    }

    /// Another order's live claim on `order`'s lifetime product, if any.
    fn live_claim(&self, order: &Order, now: i64) -> Option<LifetimeClaim> {
        self.lifetime_claims
            .get(&(order.user_id.clone(), order.product_id.clone()))
            .filter(|c| c.live(now))
            .cloned()
    }

    /// What a new order's write checks first: a live record of its Idempotency-Key (the
    /// answer instead of writing), and that its id is new.
    fn new_order_key(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        if let Some(rec) = idem {
            let k = (rec.user_id.clone(), rec.key.clone());
            if let Some(existing) = self.idempotency.get(&k) {
                if existing.expires_at > now {
                    return Ok(Some(existing.clone()));
                }
            }
        }
        if self.orders.contains_key(&order.order_id) {
            return Err(StoreError::Corrupt(format!(
                "order id {} generated twice",
                order.order_id
            )));
        }
        Ok(None)
    }

    /// Deletes up to [`PRUNE_BUDGET`] items whose expiry is at or before `now`, as
    /// DynamoDB's TTL does (only sooner), so the local server gives memory back.
    fn prune(&mut self, now: i64) {
        for _ in 0..PRUNE_BUDGET {
            let Some((at, _)) = self.expiring.first() else {
                return;
            };
            if *at > now {
                return;
            }
            let Some((at, what)) = self.expiring.pop_first() else {
                return;
            };
            match what {
                Expiring::Order(id) => {
                    if self.orders.get(&id).is_some_and(|o| {
                        o.retain_until == Some(at)
                            && matches!(o.state, OrderState::Expired | OrderState::Cancelled)
                    }) {
                        self.orders.remove(&id);
                        self.requery_requested_at.remove(&id);
                        if let Some(due) = self.due_at.remove(&id) {
                            self.due
                                .remove(&(crate::domain::order::due_shard(&id), due, id));
                        }
                    }
                }
                Expiring::Idempotency(user, key) => {
                    let k = (user, key);
                    if self.idempotency.get(&k).is_some_and(|r| r.expires_at == at) {
                        self.idempotency.remove(&k);
                    }
                }
                Expiring::Window(user, start) => {
                    self.order_windows.remove(&(user, start));
                }
                Expiring::Note(source, id) => {
                    let k = (source, id);
                    if self.notes.get(&k) == Some(&at) {
                        self.notes.remove(&k);
                    }
                }
            }
        }
    }
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// The operator's day the figures are counted in.
    stats_zone: crate::domain::stats::StatsZone,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the figures in the days of `zone` (by default `Asia/Shanghai`).
    pub fn with_stats_zone(mut self, zone: crate::domain::stats::StatsZone) -> Self {
        self.stats_zone = zone;
        self
    }

    /// How many items the store holds (orders, keys, counters, grants, records...): what
    /// an operator or a test watches to see retention give memory back.
    pub fn item_count(&self) -> usize {
        let t = self.lock();
        t.orders.len()
            + t.idempotency.len()
            + t.txns.len()
            + t.grants.values().map(BTreeMap::len).sum::<usize>()
            + t.archived_grants.values().map(BTreeMap::len).sum::<usize>()
            + t.checkpoints.values().map(BTreeMap::len).sum::<usize>()
            + t.wallets.len()
            + t.sessions.len()
            + t.due.len()
            + t.days.len()
            + t.first_paid.len()
            + t.requery_requested_at.len()
            + t.purchases.len()
            + t.notes.len()
            + t.bans.values().map(BTreeMap::len).sum::<usize>()
            + t.publish_keys.len()
            + t.order_windows.len()
            + t.audit_log.len()
            + t.admin_keys.len()
            + t.refund_requests.len()
            + t.refunds_due.len()
            + t.ledgers.values().map(BTreeMap::len).sum::<usize>()
            + t.debit_keys.len()
            + t.events.len()
            + t.disabled_endpoints.len()
    }

    /// Records `record` as it is, unless its id is recorded already. What a test uses to
    /// occupy an event id, so that the change which would write that event fails whole (as
    /// a DynamoDB item put at its key makes the change's transaction fail).
    pub fn put_event_record(&self, record: EventRecord) {
        let mut t = self.lock();
        if !t.event_keys.contains_key(&record.event.id) {
            let sk = crate::domain::event::sort_key(&record.event);
            t.event_keys.insert(record.event.id.clone(), sk.clone());
            t.events.insert(sk, record);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied change (every operation
        // checks first, then writes), so a poisoned lock is still consistent.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds `counts` to the figures of the day (in `zone`) of `at`.
fn add_counts(
    t: &mut Tables,
    zone: &crate::domain::stats::StatsZone,
    at: i64,
    counts: &[(String, i64)],
) {
    let d = zone.day_of(at);
    t.days
        .entry(d.clone())
        .or_insert_with(|| DayRecord::new(&d))
        .add(counts);
}

/// The figures a settle adds, in the same critical section as the settle itself: the
/// counters, the day's payment record and the payer's first payment.
fn count_paid(
    t: &mut Tables,
    zone: &crate::domain::stats::StatsZone,
    s: &Settlement,
    late: bool,
    created: bool,
) {
    t.first_paid.entry(s.user_id.clone()).or_insert(s.paid_at);
    add_counts(
        t,
        zone,
        s.paid_at,
        &[
            crate::domain::stats::paid_counts(&s.product_id, &s.provider, s.amount, late, created),
            crate::domain::stats::stream_purchase_counts(s.stream_id.as_deref()),
        ]
        .concat(),
    );
    let d = zone.day_of(s.paid_at);
    if let Some(rec) = t.days.get_mut(&d) {
        rec.payments.push(crate::domain::stats::Payment {
            order_id: s.order_id.to_string(),
            user_id: s.user_id.clone(),
            product_id: s.product_id.clone(),
            provider: s.provider.clone(),
            amount: s.amount.amount,
            currency: s.amount.currency.as_str().to_owned(),
            paid_at: s.paid_at,
        });
    }
}

/// The grants a paid order made, as it sold them: what a refund revokes and a reversal
/// restores, written back whole when the grant was archived.
fn sold_grants(o: &Order) -> Result<Vec<Grant>, StoreError> {
    match o.paid_at {
        Some(at) => Ok(o.grants_at(at)),
        None if o.grants.is_empty() || o.term.is_none() => Ok(Vec::new()),
        None => Err(StoreError::Corrupt(format!(
            "order {} grants access but has no payment time",
            o.order_id
        ))),
    }
}

fn leave_due(t: &mut Tables, o: &Order) {
    if let Some(at) = t.due_at.remove(&o.order_id) {
        t.due.remove(&(o.due_shard(), at, o.order_id.clone()));
    }
}

fn enter_due(t: &mut Tables, o: &Order, at: i64) {
    leave_due(t, o);
    t.due.insert((o.due_shard(), at, o.order_id.clone()));
    t.due_at.insert(o.order_id.clone(), at);
}

impl MemoryStore {
    /// One create, with the lifetime claim when `claim`: the checks in the transaction's
    /// order (key, claim, window), then every write.
    fn create(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
        claim: bool,
    ) -> Result<CreateOutcome, StoreError> {
        let mut t = self.lock();
        t.prune(now);
        if let Some(existing) = t.new_order_key(order, idem, now)? {
            return Ok(CreateOutcome::KeyExists(existing));
        }
        if claim {
            if let Some(held) = t.live_claim(order, now) {
                return Ok(CreateOutcome::Claimed(held));
            }
        }
        let window = quota.window(now);
        let window_key = (order.user_id.clone(), window.start);
        let created = t.order_windows.get(&window_key).copied().unwrap_or(0);
        if !quota.admits(created) {
            return Ok(CreateOutcome::QuotaReached { until: window.end });
        }
        let events = vec![Event::order_created(order)];
        events_absent(&t, &events)?;
        if created == 0 {
            t.expiring.insert((
                window.end,
                Expiring::Window(window_key.0.clone(), window.start),
            ));
        }
        t.order_windows
            .insert(window_key, created.saturating_add(1));
        if let Some(rec) = idem {
            t.idempotency
                .insert((rec.user_id.clone(), rec.key.clone()), rec.clone());
            t.expiring.insert((
                rec.expires_at,
                Expiring::Idempotency(rec.user_id.clone(), rec.key.clone()),
            ));
        }
        if order.state == OrderState::Pending {
            enter_due(&mut t, order, order.expires_at);
        }
        t.orders.insert(order.order_id.clone(), order.clone());
        add_counts(
            &mut t,
            &self.stats_zone,
            order.created_at,
            &crate::domain::stats::created_counts(order),
        );
        if claim {
            t.lifetime_claims.insert(
                (order.user_id.clone(), order.product_id.clone()),
                LifetimeClaim::of(order),
            );
        }
        record_events(&mut t, events);
        Ok(CreateOutcome::Created)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.create(order, idem, quota, now, false)
    }

    async fn create_lifetime_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        quota: &OrderQuota,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.create(order, idem, quota, now, true)
    }

    async fn release_lifetime_claim(&self, order: &Order, now: i64) -> Result<(), StoreError> {
        let mut t = self.lock();
        let k = (order.user_id.clone(), order.product_id.clone());
        if let Some(c) = t.lifetime_claims.get_mut(&k) {
            if c.order_id == order.order_id {
                c.until = c.until.min(now);
            }
        }
        Ok(())
    }

    async fn get_idempotency(
        &self,
        user_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()
            .idempotency
            .get(&(user_id.to_owned(), key.to_owned()))
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.lock().orders.get(id).cloned())
    }

    async fn user_orders(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&OrderId>,
    ) -> Result<OrderPage, StoreError> {
        let t = self.lock();
        let mut mine: Vec<&Order> = t
            .orders
            .values()
            .filter(|o| o.user_id == user_id && before.is_none_or(|b| o.order_id < *b))
            .collect();
        mine.sort_by(|a, b| b.order_id.cmp(&a.order_id));
        Ok(OrderPage {
            more: mine.len() > limit,
            orders: mine.into_iter().take(limit).cloned().collect(),
        })
    }

    async fn order_for_txn(
        &self,
        provider: &str,
        txn_id: &str,
    ) -> Result<Option<OrderId>, StoreError> {
        Ok(self
            .lock()
            .txns
            .get(&(provider.to_owned(), txn_id.to_owned()))
            .cloned())
    }

    async fn settle(&self, s: &Settlement) -> Result<SettleOutcome, StoreError> {
        let mut t = self.lock();
        let txn_key = (s.provider.clone(), s.provider_txn_id.clone());
        if let Some(order_id) = t.txns.get(&txn_key) {
            return Ok(SettleOutcome::TxnAlreadyRecorded {
                order_id: order_id.clone(),
            });
        }
        let Some(order) = t.orders.get(&s.order_id) else {
            return Ok(SettleOutcome::UnknownOrder);
        };
        if order.state != s.expected_state
            || order.amount != s.amount
            || next_state(order.state, OrderEvent::Paid).is_err()
        {
            return Ok(SettleOutcome::OrderChanged(Box::new(order.clone())));
        }
        let events = settle_events(s, order.state != OrderState::Pending);
        events_absent(&t, &events)?;
        let user_grants = t.grants.entry(s.user_id.clone()).or_default();
        if s.grants
            .iter()
            .any(|g| user_grants.contains_key(&(g.scope.clone(), g.source_id.clone())))
        {
            return Err(StoreError::Corrupt(format!(
                "grant for order {} exists while the order is unpaid",
                s.order_id
            )));
        }
        for g in &s.grants {
            user_grants.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        if s.credits != 0 {
            let entry = order_ledger_entry(
                s.paid_at,
                s.credits,
                LedgerSource::Order,
                "coins bought",
                &s.order_id,
            );
            post(&mut t, &s.user_id, entry);
        }
        t.txns.insert(txn_key, s.order_id.clone());
        let order = t.orders.get_mut(&s.order_id).expect("checked above");
        let late = order.state != OrderState::Pending;
        order.state = OrderState::Paid;
        order.paid_at = Some(s.paid_at);
        order.late = late;
        order.provider_txn_id = Some(s.provider_txn_id.clone());
        // A paid order is a record: a late payment takes away the expiry its close gave it.
        let retained = order.retain_until.take();
        let snapshot = order.clone();
        if let Some(at) = retained {
            t.expiring
                .remove(&(at, Expiring::Order(snapshot.order_id.clone())));
        }
        leave_due(&mut t, &snapshot);
        count_paid(&mut t, &self.stats_zone, s, late, false);
        record_events(&mut t, events);
        Ok(SettleOutcome::Settled)
    }

    async fn settle_new_order(
        &self,
        order: &Order,
        s: &Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        let mut t = self.lock();
        let txn_key = (s.provider.clone(), s.provider_txn_id.clone());
        if let Some(order_id) = t.txns.get(&txn_key) {
            return Ok(SettleOutcome::TxnAlreadyRecorded {
                order_id: order_id.clone(),
            });
        }
        if let Some(existing) = t.orders.get(&order.order_id) {
            return Ok(SettleOutcome::OrderChanged(Box::new(existing.clone())));
        }
        let mut events = vec![Event::order_created(order)];
        events.extend(settle_events(s, false));
        events_absent(&t, &events)?;
        let user_grants = t.grants.entry(s.user_id.clone()).or_default();
        if s.grants
            .iter()
            .any(|g| user_grants.contains_key(&(g.scope.clone(), g.source_id.clone())))
        {
            return Err(StoreError::Corrupt(format!(
                "grant for order {} exists before the order",
                s.order_id
            )));
        }
        for g in &s.grants {
            user_grants.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        if s.credits != 0 {
            let entry = order_ledger_entry(
                s.paid_at,
                s.credits,
                LedgerSource::Order,
                "coins bought",
                &s.order_id,
            );
            post(&mut t, &s.user_id, entry);
        }
        t.txns.insert(txn_key, order.order_id.clone());
        t.orders.insert(order.order_id.clone(), order.clone());
        count_paid(&mut t, &self.stats_zone, s, false, true);
        record_events(&mut t, events);
        Ok(SettleOutcome::Settled)
    }

    async fn close_order(
        &self,
        read: &Order,
        to: OrderState,
        at: i64,
        retain_until: Option<i64>,
    ) -> Result<TransitionOutcome, StoreError> {
        let mut t = self.lock();
        t.prune(at);
        let events: Vec<Event> = Event::order_closed(read, to, at).into_iter().collect();
        let Some(order) = t.orders.get(&read.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        if order.state == OrderState::Pending {
            // Still PENDING: what the close is conditioned on held, so its events go in.
            events_absent(&t, &events)?;
        }
        let Some(order) = t.orders.get_mut(&read.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        let event = match to {
            OrderState::Expired => OrderEvent::Expire,
            OrderState::Cancelled => OrderEvent::Cancel,
            _ => return Ok(TransitionOutcome::Conflict(Box::new(order.clone()))),
        };
        if next_state(order.state, event) != Ok(to) {
            return Ok(TransitionOutcome::Conflict(Box::new(order.clone())));
        }
        order.state = to;
        order.closed_at = Some(at);
        order.retain_until = retain_until;
        let snapshot = order.clone();
        leave_due(&mut t, &snapshot);
        if let Some(until) = retain_until {
            t.expiring
                .insert((until, Expiring::Order(snapshot.order_id.clone())));
        }
        record_events(&mut t, events);
        Ok(TransitionOutcome::Done(Box::new(snapshot)))
    }

    async fn count_refund(
        &self,
        read: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        let mut t = self.lock();
        let events = refund_write_events(read, count, at, false, false);
        let Some(order) = t.orders.get(&read.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        if !count.applies_to(order) {
            return Ok(TransitionOutcome::Conflict(Box::new(order.clone())));
        }
        events_absent(&t, &events)?;
        let Some(order) = t.orders.get_mut(&read.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        order.refunded_amount += count.add;
        order.refund_ids.insert(count.refund_id.clone());
        let done = order.clone();
        add_counts(
            &mut t,
            &self.stats_zone,
            at,
            &crate::domain::stats::refund_counts(
                &done.product_id,
                &done.provider,
                done.amount.currency,
                count.add,
                false,
            ),
        );
        record_events(&mut t, events);
        Ok(TransitionOutcome::Done(Box::new(done)))
    }

    async fn refund(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.lock().revoke(order, count, at, true, &self.stats_zone)
    }

    async fn count_refund_revoking(
        &self,
        order: &Order,
        count: &RefundCount,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        self.lock()
            .revoke(order, count, at, false, &self.stats_zone)
    }

    async fn reverse_refund(
        &self,
        order: &Order,
        reversal: &RefundReversal,
    ) -> Result<TransitionOutcome, StoreError> {
        let mut t = self.lock();
        let Some(stored) = t.orders.get(&order.order_id) else {
            return Ok(TransitionOutcome::UnknownOrder);
        };
        if next_state(stored.state, OrderEvent::ReverseRefund).is_err()
            || !reversal.applies_to(stored)
        {
            return Ok(TransitionOutcome::Conflict(Box::new(stored.clone())));
        }
        let events = super::reversal_events(order, reversal)?;
        events_absent(&t, &events)?;
        // The grants and coins are the ones `order` (the caller's read) names, as in the
        // DynamoDB transaction.
        let sold = sold_grants(order)?;
        let user_grants = t.grants.entry(order.user_id.clone()).or_default();
        for g in sold {
            user_grants
                .entry((g.scope.clone(), g.source_id.clone()))
                .or_insert(g)
                .revoked_at = None;
        }
        if order.credits != 0 {
            let entry = order_ledger_entry(
                reversal.reversed_at,
                order.credits,
                LedgerSource::Refund,
                "refund reversed: coins back",
                &order.order_id,
            );
            post(&mut t, &order.user_id, entry);
        }
        let o = t.orders.get_mut(&order.order_id).expect("checked above");
        o.state = OrderState::Paid;
        let reversed = crate::domain::stats::reversal_counts(
            &o.product_id,
            &o.provider,
            o.amount.currency,
            o.refunded_amount,
        );
        o.refunded_amount = 0;
        o.refund_ids.clear();
        o.refund_reversed_at = Some(reversal.reversed_at);
        o.refund_reversal_reason = Some(reversal.reason.clone());
        o.access_revoked_at = None;
        let done = o.clone();
        add_counts(&mut t, &self.stats_zone, reversal.reversed_at, &reversed);
        record_events(&mut t, events);
        Ok(TransitionOutcome::Done(Box::new(done)))
    }

    async fn day_records(&self, days: &[String]) -> Result<Vec<DayRecord>, StoreError> {
        let t = self.lock();
        Ok(days
            .iter()
            .map(|d| {
                let mut rec = t.days.get(d).cloned().unwrap_or_else(|| DayRecord::new(d));
                rec.first_paid = rec
                    .payments
                    .iter()
                    .filter_map(|p| Some((p.user_id.clone(), *t.first_paid.get(&p.user_id)?)))
                    .collect();
                rec
            })
            .collect())
    }

    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let mut t = self.lock();
        // The sweeper calls this on a timer: expired items go even while nothing is written.
        t.prune(now);
        Ok(t.due
            .range((shard, i64::MIN, OrderId::from_parts(0, [0; 10]))..)
            .take_while(|(s, exp, _)| *s == shard && *exp <= now)
            .take(limit)
            .map(|(_, at, id)| DueEntry {
                order_id: id.clone(),
                due_at: *at,
            })
            .collect())
    }

    async fn request_refund(
        &self,
        read: &Order,
        req: &RefundRequest,
        hold: &RefundHold,
        audit: &AuditRecord,
    ) -> Result<RefundRequestOutcome, StoreError> {
        let mut t = self.lock();
        let k = (req.order_id.clone(), req.out_refund_no.clone());
        if let Some(existing) = t.refund_requests.get(&k) {
            return Ok(RefundRequestOutcome::Exists(Box::new(existing.clone())));
        }
        let Some(order) = t.orders.get_mut(&req.order_id) else {
            return Ok(RefundRequestOutcome::UnknownOrder);
        };
        if !hold.applies_to(order) {
            return Ok(RefundRequestOutcome::OrderChanged(Box::new(order.clone())));
        }
        order.refund_requested += hold.amount;
        let mut written = read.clone();
        written.refund_requested += hold.amount;
        if let Some(at) = req.next_check_at.filter(|_| req.state.is_open()) {
            t.refunds_due.insert((at, k.0.clone(), k.1.clone()));
        }
        t.refund_requests.insert(k, req.clone());
        record_audit(&mut t, audit);
        Ok(RefundRequestOutcome::Recorded(Box::new(written)))
    }

    async fn refund_request(
        &self,
        order_id: &OrderId,
        out_refund_no: &str,
    ) -> Result<Option<RefundRequest>, StoreError> {
        Ok(self
            .lock()
            .refund_requests
            .get(&(order_id.clone(), out_refund_no.to_owned()))
            .cloned())
    }

    async fn change_refund_request(
        &self,
        req: &RefundRequest,
        change: &RefundRequestChange,
    ) -> Result<Option<RefundRequest>, StoreError> {
        let mut t = self.lock();
        let k = (req.order_id.clone(), req.out_refund_no.clone());
        let Some(stored) = t.refund_requests.get(&k).cloned() else {
            return Ok(None);
        };
        if !stored.state.is_open() {
            return Ok(None);
        }
        let next = stored.changed(change);
        if let Some(at) = stored.next_check_at {
            t.refunds_due.remove(&(at, k.0.clone(), k.1.clone()));
        }
        if let Some(at) = next.next_check_at.filter(|_| next.state.is_open()) {
            t.refunds_due.insert((at, k.0.clone(), k.1.clone()));
        }
        if matches!(change, RefundRequestChange::Finished { .. }) {
            if let Some(o) = t.orders.get_mut(&k.0) {
                o.refund_requested -= stored.amount;
            }
        }
        t.refund_requests.insert(k, next.clone());
        Ok(Some(next))
    }

    async fn due_refund_requests(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueRefund>, StoreError> {
        Ok(self
            .lock()
            .refunds_due
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(limit)
            .map(|(at, order_id, no)| DueRefund {
                order_id: order_id.clone(),
                out_refund_no: no.clone(),
                due_at: *at,
            })
            .collect())
    }

    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock();
        let Some(order) = t.orders.get_mut(id) else {
            return Ok(false);
        };
        if order.state != OrderState::Pending {
            return Ok(false);
        }
        order.sweep_attempts = attempts;
        let snapshot = order.clone();
        enter_due(&mut t, &snapshot, next_at);
        Ok(true)
    }

    async fn mark_requery(
        &self,
        id: &OrderId,
        user_id: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock();
        if t.orders.get(id).is_none_or(|o| o.user_id != user_id) {
            return Ok(false);
        }
        if t.requery_requested_at
            .get(id)
            .is_some_and(|&at| at > now - min_interval)
        {
            return Ok(false);
        }
        t.requery_requested_at.insert(id.clone(), now);
        Ok(true)
    }

    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        if let Some(o) = self.lock().orders.get_mut(id) {
            o.last_error = Some(reason.to_owned());
        }
        Ok(())
    }

    async fn user_items(&self, user_id: &str) -> Result<UserItems, StoreError> {
        let t = self.lock();
        Ok(UserItems {
            grants: t
                .grants
                .get(user_id)
                .map(|g| g.values().cloned().collect())
                .unwrap_or_default(),
            checkpoints: t
                .checkpoints
                .get(user_id)
                .map(|c| c.values().cloned().collect())
                .unwrap_or_default(),
            archived: Vec::new(),
            credits: t.wallets.get(user_id).copied().unwrap_or(0),
            sessions: t.sessions.get(user_id).cloned().unwrap_or_default(),
            bans: t
                .bans
                .get(user_id)
                .map(|b| b.values().cloned().collect())
                .unwrap_or_default(),
        })
    }
    async fn user_history(&self, user_id: &str) -> Result<UserItems, StoreError> {
        let mut items = self.user_items(user_id).await?;
        items.archived = self
            .lock()
            .archived_grants
            .get(user_id)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        Ok(items)
    }

    async fn fold_grants(&self, user_id: &str, step: &FoldStep) -> Result<bool, StoreError> {
        let mut guard = self.lock();
        let t = &mut *guard;
        Ok(checkpoint::apply(
            step,
            t.grants.entry(user_id.to_owned()).or_default(),
            t.archived_grants.entry(user_id.to_owned()).or_default(),
            t.checkpoints.entry(user_id.to_owned()).or_default(),
        ))
    }

    async fn get_purchase(
        &self,
        store: &str,
        purchase_id: &str,
    ) -> Result<Option<StorePurchase>, StoreError> {
        Ok(self
            .lock()
            .purchases
            .get(&(store.to_owned(), purchase_id.to_owned()))
            .cloned())
    }

    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError> {
        let mut t = self.lock();
        let k = (p.store.clone(), p.purchase_id.clone());
        if let Some(old) = t.purchases.get(&k) {
            if old.user_id != p.user_id {
                return Ok(PurchaseOutcome::OwnedByOther(Box::new(old.clone())));
            }
            if old.last_event_at >= p.last_event_at {
                return Ok(PurchaseOutcome::Stale(Box::new(old.clone())));
            }
        }
        let user = t.grants.entry(p.user_id.clone()).or_default();
        for g in &p.grants {
            user.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        t.purchases.insert(k, p.clone());
        Ok(PurchaseOutcome::Applied)
    }

    async fn put_purchase_change(
        &self,
        p: &StorePurchase,
        change: &crate::domain::subscription::PurchaseChange,
    ) -> Result<PurchaseOutcome, StoreError> {
        let mut t = self.lock();
        let k = (p.store.clone(), p.purchase_id.clone());
        match (t.purchases.get(&k), change.read) {
            (None, None) => {}
            (Some(old), _) if old.user_id != p.user_id => {
                return Ok(PurchaseOutcome::OwnedByOther(Box::new(old.clone())))
            }
            (Some(old), Some(read)) if old.last_event_at == read => {}
            (Some(old), _) => return Ok(PurchaseOutcome::Stale(Box::new(old.clone()))),
            (None, Some(_)) => return Err(StoreError::Unavailable("purchase vanished".into())),
        }
        events_absent(&t, &change.events)?;
        let user = t.grants.entry(p.user_id.clone()).or_default();
        for g in &p.grants {
            user.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        t.purchases.insert(k, p.clone());
        add_counts(&mut t, &self.stats_zone, change.counted_at, &change.counts);
        record_events(&mut t, change.events.clone());
        Ok(PurchaseOutcome::Applied)
    }

    async fn put_events(&self, events: &[Event]) -> Result<bool, StoreError> {
        let mut t = self.lock();
        if events.iter().any(|e| t.event_keys.contains_key(&e.id)) {
            return Ok(false);
        }
        record_events(&mut t, events.to_vec());
        Ok(true)
    }

    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .notes
            .get(&(source.to_owned(), id.to_owned()))
            .is_some_and(|&until| until > now))
    }

    async fn record_note(
        &self,
        source: &str,
        id: &str,
        _kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock();
        t.prune(now);
        let k = (source.to_owned(), id.to_owned());
        if t.notes.get(&k).is_some_and(|&until| until > now) {
            return Ok(false);
        }
        t.expiring
            .insert((now + NOTE_TTL, Expiring::Note(k.0.clone(), k.1.clone())));
        t.notes.insert(k, now + NOTE_TTL);
        Ok(true)
    }

    async fn put_sessions(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        let mut t = self.lock();
        let stored = t.sessions.get(user_id).cloned().unwrap_or_default();
        if stored.version != expected_version {
            return Ok(PutSessions::Stale(stored));
        }
        let mut next = sessions.clone();
        next.version = expected_version + 1;
        t.sessions.insert(user_id.to_owned(), next);
        Ok(PutSessions::Written)
    }

    async fn claim_marker(&self, key: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let mut t = self.lock();
        if t.markers.get(key).is_some_and(|&at| at > now) {
            return Ok(false);
        }
        t.markers.insert(key.to_owned(), until);
        Ok(true)
    }

    async fn release_marker(&self, key: &str, until: i64) -> Result<(), StoreError> {
        let mut t = self.lock();
        if t.markers.get(key) == Some(&until) {
            t.markers.remove(key);
        }
        Ok(())
    }

    async fn put_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        replaces: Option<&Ban>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError> {
        let mut t = self.lock();
        let bans = t.bans.entry(user_id.to_owned()).or_default();
        let stored = bans.get(&ban.scope);
        if stored != replaces {
            return Ok(Guarded::Changed(stored.cloned()));
        }
        bans.insert(ban.scope.clone(), ban.clone());
        record_audit(&mut t, audit);
        Ok(Guarded::Written)
    }

    async fn lift_ban(
        &self,
        user_id: &str,
        ban: &Ban,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<Ban>>, StoreError> {
        let mut t = self.lock();
        let bans = t.bans.entry(user_id.to_owned()).or_default();
        let stored = bans.get(&ban.scope);
        if stored != Some(ban) {
            return Ok(Guarded::Changed(stored.cloned()));
        }
        bans.remove(&ban.scope);
        record_audit(&mut t, audit);
        Ok(Guarded::Written)
    }

    async fn publish_key(&self, stream_id: &str) -> Result<Option<PublishKey>, StoreError> {
        Ok(self.lock().publish_keys.get(stream_id).cloned())
    }

    async fn rotate_publish_key(
        &self,
        stream_id: &str,
        key: &PublishKey,
        replaces: Option<&PublishKey>,
        audit: &AuditRecord,
    ) -> Result<Guarded<Option<PublishKey>>, StoreError> {
        let mut t = self.lock();
        let stored = t.publish_keys.get(stream_id);
        if stored.map(|k| k.version) != replaces.map(|k| k.version) {
            return Ok(Guarded::Changed(stored.cloned()));
        }
        t.publish_keys.insert(stream_id.to_owned(), key.clone());
        record_audit(&mut t, audit);
        Ok(Guarded::Written)
    }

    async fn grant(
        &self,
        user_id: &str,
        grants: &[Grant],
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<KeyedOutcome, StoreError> {
        let mut t = self.lock();
        let k = (key.user_id.clone(), key.key.clone());
        if let Some(used) = t.admin_keys.get(&k) {
            return Ok(KeyedOutcome::KeyUsed(used.clone()));
        }
        let events = granted_events(user_id, grants, audit);
        events_absent(&t, &events)?;
        let user_grants = t.grants.entry(user_id.to_owned()).or_default();
        if grants
            .iter()
            .any(|g| user_grants.contains_key(&(g.scope.clone(), g.source_id.clone())))
        {
            return Err(StoreError::Corrupt(format!(
                "grant of user {user_id:?} exists before its key was used"
            )));
        }
        for g in grants {
            user_grants.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        t.admin_keys.insert(k, key.clone());
        record_audit(&mut t, audit);
        record_events(&mut t, events);
        Ok(KeyedOutcome::Written)
    }

    async fn revoke_grants(
        &self,
        user_id: &str,
        revoked: &[Grant],
        audit: &AuditRecord,
    ) -> Result<Guarded<()>, StoreError> {
        let mut t = self.lock();
        let events = revoked_events(user_id, revoked, audit);
        let user_grants = t.grants.entry(user_id.to_owned()).or_default();
        let as_read = revoked.iter().all(|g| {
            user_grants
                .get(&(g.scope.clone(), g.source_id.clone()))
                .is_some_and(|s| s.revoked_at.is_none() && s.paid_at == g.paid_at)
        });
        if !as_read {
            return Ok(Guarded::Changed(()));
        }
        events_absent(&t, &events)?;
        let user_grants = t.grants.entry(user_id.to_owned()).or_default();
        for g in revoked {
            user_grants.insert((g.scope.clone(), g.source_id.clone()), g.clone());
        }
        record_audit(&mut t, audit);
        record_events(&mut t, events);
        Ok(Guarded::Written)
    }

    async fn adjust_wallet(
        &self,
        user_id: &str,
        before: i64,
        after: i64,
        key: &AdminKey,
        audit: &AuditRecord,
    ) -> Result<WalletOutcome, StoreError> {
        let mut t = self.lock();
        let k = (key.user_id.clone(), key.key.clone());
        if let Some(used) = t.admin_keys.get(&k) {
            return Ok(WalletOutcome::KeyUsed(used.clone()));
        }
        let stored = t.wallets.get(user_id).copied().unwrap_or(0);
        if stored != before {
            return Ok(WalletOutcome::BalanceMoved(stored));
        }
        let events = wallet_events(user_id, before, after, audit);
        events_absent(&t, &events)?;
        let entry = LedgerEntry {
            id: audit.id.clone(),
            at_ms: audit.at.saturating_mul(1000),
            amount: after - before,
            source: LedgerSource::Admin,
            reason: audit
                .reason
                .clone()
                .unwrap_or_else(|| "changed by an operator".into()),
            reference: Some(audit.id.clone()),
        };
        post(&mut t, user_id, entry);
        t.admin_keys.insert(k, key.clone());
        record_audit(&mut t, audit);
        record_events(&mut t, events);
        Ok(WalletOutcome::Written)
    }

    async fn admin_key(&self, user_id: &str, key: &str) -> Result<Option<AdminKey>, StoreError> {
        Ok(self
            .lock()
            .admin_keys
            .get(&(user_id.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn user_audit(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<&str>,
        since: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        let t = self.lock();
        let from = since.map(crate::domain::audit::sort_key_from);
        let mut records: Vec<AuditRecord> = t
            .audit_by_user
            .get(user_id)
            .map(|m| {
                m.iter()
                    .rev()
                    .filter(|(sk, _)| before.is_none_or(|b| sk.as_str() < b))
                    .take_while(|(sk, _)| from.as_ref().is_none_or(|f| *sk >= f))
                    .take(limit.saturating_add(1))
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default();
        let more = records.len() > limit;
        records.truncate(limit);
        Ok(AuditPage { records, more })
    }

    async fn audit_since(
        &self,
        since: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        let t = self.lock();
        let from = crate::domain::audit::sort_key_from(since);
        let mut records: Vec<AuditRecord> = t
            .audit_log
            .range(from..)
            .filter(|(sk, _)| after.is_none_or(|a| sk.as_str() > a))
            .take(limit.saturating_add(1))
            .map(|(_, r)| r.clone())
            .collect();
        let more = records.len() > limit;
        records.truncate(limit);
        Ok(AuditPage { records, more })
    }

    async fn wallet_ledger(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&LedgerCursor>,
    ) -> Result<LedgerPage, StoreError> {
        let t = self.lock();
        let from = after.map(|c| crate::domain::ledger::position(c.at_ms, &c.id));
        let mut entries: Vec<LedgerEntry> = match t.ledgers.get(user_id) {
            None => Vec::new(),
            Some(ledger) => ledger
                .iter()
                .filter(|(pos, _)| from.as_ref().is_none_or(|f| pos.as_str() > f.as_str()))
                .take(limit.saturating_add(1))
                .map(|(_, e)| e.clone())
                .collect(),
        };
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(LedgerPage {
            balance: after
                .is_none()
                .then(|| t.wallets.get(user_id).copied().unwrap_or(0)),
            entries,
            more,
        })
    }

    async fn debit_wallet(&self, rec: &DebitRecord) -> Result<DebitOutcome, StoreError> {
        let mut t = self.lock();
        let k = (rec.user_id.clone(), rec.key.clone());
        if let Some(used) = t.debit_keys.get(&k) {
            return Ok(DebitOutcome::KeyUsed(used.clone()));
        }
        let balance = t.wallets.get(&rec.user_id).copied().unwrap_or(0);
        if balance < -rec.entry.amount {
            return Ok(DebitOutcome::Insufficient { balance });
        }
        let events = super::debit_events(rec);
        events_absent(&t, &events)?;
        post(&mut t, &rec.user_id, rec.entry.clone());
        t.debit_keys.insert(k, rec.clone());
        record_events(&mut t, events);
        Ok(DebitOutcome::Debited)
    }

    async fn pay_with_coins(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        entry: &LedgerEntry,
        now: i64,
    ) -> Result<CoinPayment, StoreError> {
        let mut t = self.lock();
        t.prune(now);
        if let Some(existing) = t.new_order_key(order, idem, now)? {
            return Ok(CoinPayment::KeyExists(existing));
        }
        let claim = claims_lifetime(order);
        if claim {
            if let Some(held) = t.live_claim(order, now) {
                return Ok(CoinPayment::Claimed(held));
            }
        }
        let balance = t.wallets.get(&order.user_id).copied().unwrap_or(0);
        if balance < -entry.amount {
            return Ok(CoinPayment::Insufficient { balance });
        }
        let paid_at = order.paid_at.ok_or_else(|| {
            StoreError::Corrupt(format!("coin order {} has no payment time", order.order_id))
        })?;
        let events = super::coin_payment_events(order, entry, now);
        events_absent(&t, &events)?;
        let user_grants = t.grants.entry(order.user_id.clone()).or_default();
        for g in order.grants_at(paid_at) {
            user_grants.insert((g.scope.clone(), g.source_id.clone()), g);
        }
        post(&mut t, &order.user_id, entry.clone());
        if let Some(rec) = idem {
            t.idempotency
                .insert((rec.user_id.clone(), rec.key.clone()), rec.clone());
            t.expiring.insert((
                rec.expires_at,
                Expiring::Idempotency(rec.user_id.clone(), rec.key.clone()),
            ));
        }
        t.orders.insert(order.order_id.clone(), order.clone());
        if claim {
            t.lifetime_claims.insert(
                (order.user_id.clone(), order.product_id.clone()),
                LifetimeClaim::of(order),
            );
        }
        let st = Settlement::of_coin_order(order, paid_at, now);
        count_paid(&mut t, &self.stats_zone, &st, false, true);
        record_events(&mut t, events);
        Ok(CoinPayment::Paid)
    }

    async fn events_since(
        &self,
        since: i64,
        until: i64,
        limit: usize,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        let t = self.lock();
        let from = format!("{:012}#", since.max(0));
        let upto = format!("{:012}#~", until.max(0));
        let mut records: Vec<EventRecord> = t
            .events
            .range(from..upto)
            .filter(|(sk, _)| after.is_none_or(|a| sk.as_str() > a))
            .take(limit.saturating_add(1))
            .map(|(_, r)| r.clone())
            .collect();
        let more = records.len() > limit;
        records.truncate(limit);
        Ok(EventPage { records, more })
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let t = self.lock();
        Ok(t.event_keys
            .get(id)
            .and_then(|sk| t.events.get(sk))
            .cloned())
    }

    async fn put_event_deliveries(
        &self,
        record: &EventRecord,
        expires_at: Option<i64>,
    ) -> Result<Guarded<Option<EventRecord>>, StoreError> {
        let mut t = self.lock();
        let Some(sk) = t.event_keys.get(&record.event.id).cloned() else {
            return Ok(Guarded::Changed(None));
        };
        let Some(stored) = t.events.get_mut(&sk) else {
            return Ok(Guarded::Changed(None));
        };
        if stored.version.checked_add(1) != Some(record.version) {
            return Ok(Guarded::Changed(Some(stored.clone())));
        }
        stored.deliveries = record.deliveries.clone();
        stored.version = record.version;
        // The embedded store keeps delivered records until the process ends: `expires_at`
        // is DynamoDB's garbage collection, which nothing reads.
        let _ = expires_at;
        Ok(Guarded::Written)
    }

    async fn disable_endpoint(&self, url: &str, at: i64) -> Result<(), StoreError> {
        self.lock()
            .disabled_endpoints
            .entry(url.to_owned())
            .or_insert(at);
        Ok(())
    }

    async fn enable_endpoint(&self, url: &str, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut t = self.lock();
        if t.disabled_endpoints.remove(url).is_none() {
            return Ok(false);
        }
        record_audit(&mut t, audit);
        Ok(true)
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .lock()
            .disabled_endpoints
            .iter()
            .map(|(u, at)| (u.clone(), *at))
            .collect())
    }

    async fn put_sessions_counted(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
        at: i64,
        counts: &[(String, i64)],
    ) -> Result<PutSessions, StoreError> {
        let mut t = self.lock();
        let stored = t.sessions.get(user_id).cloned().unwrap_or_default();
        if stored.version != expected_version {
            return Ok(PutSessions::Stale(stored));
        }
        let mut next = sessions.clone();
        next.version = expected_version + 1;
        t.sessions.insert(user_id.to_owned(), next);
        add_counts(&mut t, &self.stats_zone, at, counts);
        Ok(PutSessions::Written)
    }

    async fn count_rejection(
        &self,
        provider: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut t = self.lock();
        let d = self.stats_zone.day_of(at);
        *t.days
            .entry(d.clone())
            .or_insert_with(|| DayRecord::new(&d))
            .rejections
            .entry(provider.to_owned())
            .or_default()
            .entry(reason.to_owned())
            .or_default() += 1;
        Ok(())
    }
}

//! DynamoDB single-table store (DESIGN.md section 3).
//!
//! Every state change is one conditional write or one `TransactWriteItems`; a failed
//! condition comes back with the stored item (`ReturnValuesOnConditionCheckFailure=ALL_OLD`),
//! so a duplicate learns what happened without a second read.

use super::*;
use crate::domain::session::{DeviceSession, Sessions};
use crate::domain::Currency;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

pub const GSI1: &str = "gsi1";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

fn user_pk(user: &str) -> String {
    format!("USER#{user}")
}

fn grant_sk(scope: &str, source: &str) -> String {
    format!("GRANT#{scope}#{source}")
}

fn due_sk(expires_at: i64, id: &OrderId) -> String {
    format!("{expires_at:012}#{id}")
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn unavailable<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("{op}: {}", DisplayErrorContext(&e)))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "missing string attribute {name}"
        ))),
    }
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_n(item, name)?
        .ok_or_else(|| StoreError::Corrupt(format!("missing number attribute {name}")))
}

fn opt_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Ok(None),
    }
}

fn json_attr<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, StoreError> {
    opt_s(item, name)
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("attribute {name}: {e}")))
        })
        .transpose()
}

fn order_item(o: &Order) -> Item {
    let mut item = key(order_pk(&o.order_id), "ORDER");
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put("order_id", s(o.order_id.as_str()));
    put("user_id", s(&o.user_id));
    put("product_id", s(&o.product_id));
    if let Some(p) = &o.plan_id {
        put("plan_id", s(p));
    }
    put("amount", n(o.amount.amount));
    put("currency", s(o.amount.currency.as_str()));
    put("provider", s(&o.provider));
    if let Some(c) = &o.channel {
        put("channel", s(c));
    }
    put(
        "grants",
        AttributeValue::L(o.grants.iter().map(s).collect()),
    );
    if let Some(t) = &o.term {
        put("term", s(serde_json::to_string(t).unwrap_or_default()));
    }
    put("credits", n(o.credits));
    put("state", s(o.state.as_str()));
    put("created_at", n(o.created_at));
    put("expires_at", n(o.expires_at));
    if let Some(v) = o.paid_at {
        put("paid_at", n(v));
    }
    put("late", AttributeValue::Bool(o.late));
    if let Some(v) = &o.provider_txn_id {
        put("provider_txn_id", s(v));
    }
    if let Some(v) = o.closed_at {
        put("closed_at", n(v));
    }
    if let Some(v) = o.refunded_at {
        put("refunded_at", n(v));
    }
    if let Some(p) = &o.payment {
        put("payment", s(p.to_string()));
    }
    put("sweep_attempts", n(i64::from(o.sweep_attempts)));
    if let Some(e) = &o.last_error {
        put("last_error", s(e));
    }
    if o.state == OrderState::Pending {
        put("gsi1pk", s(format!("DUE#{}", o.due_shard())));
        put("gsi1sk", s(due_sk(o.expires_at, &o.order_id)));
    }
    item
}

fn order_from_item(item: &Item) -> Result<Order, StoreError> {
    let currency = Currency::parse(get_s(item, "currency")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let grants = match item.get("grants") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => Ok(s.clone()),
                _ => Err(StoreError::Corrupt("grants holds a non-string".into())),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(Order {
        order_id: OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        user_id: get_s(item, "user_id")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        plan_id: opt_s(item, "plan_id"),
        amount: Money::new(get_n(item, "amount")?, currency)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        provider: get_s(item, "provider")?.to_owned(),
        channel: opt_s(item, "channel"),
        grants,
        term: json_attr(item, "term")?,
        credits: opt_n(item, "credits")?.unwrap_or(0),
        state: OrderState::parse(get_s(item, "state")?)
            .ok_or_else(|| StoreError::Corrupt("unknown order state".into()))?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        paid_at: opt_n(item, "paid_at")?,
        late: matches!(item.get("late"), Some(AttributeValue::Bool(true))),
        provider_txn_id: opt_s(item, "provider_txn_id"),
        closed_at: opt_n(item, "closed_at")?,
        refunded_at: opt_n(item, "refunded_at")?,
        payment: json_attr(item, "payment")?,
        sweep_attempts: opt_n(item, "sweep_attempts")?
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        last_error: opt_s(item, "last_error"),
    })
}

fn idem_pk(user: &str, key: &str) -> String {
    format!("IDEM#{user}#{key}")
}

fn idem_item(r: &IdempotencyRecord) -> Item {
    let mut item = key(idem_pk(&r.user_id, &r.key), "IDEM");
    item.insert("user_id".into(), s(&r.user_id));
    item.insert("idempotency_key".into(), s(&r.key));
    item.insert("request_hash".into(), s(&r.request_hash));
    item.insert("order_id".into(), s(r.order_id.as_str()));
    item.insert("expires_at".into(), n(r.expires_at));
    // TTL is garbage collection only (it deletes days late); logic reads expires_at.
    item.insert("ttl".into(), n(r.expires_at));
    item
}

fn idem_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    Ok(IdempotencyRecord {
        user_id: get_s(item, "user_id")?.to_owned(),
        key: get_s(item, "idempotency_key")?.to_owned(),
        request_hash: get_s(item, "request_hash")?.to_owned(),
        order_id: OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        expires_at: get_n(item, "expires_at")?,
    })
}

fn grant_item(user: &str, g: &Grant) -> Item {
    let mut item = key(user_pk(user), &grant_sk(&g.scope, &g.source_id));
    item.insert("scope".into(), s(&g.scope));
    item.insert("product_id".into(), s(&g.product_id));
    item.insert("source_id".into(), s(&g.source_id));
    item.insert("paid_at".into(), n(g.paid_at));
    item.insert(
        "term".into(),
        s(serde_json::to_string(&g.term).unwrap_or_default()),
    );
    if let Some(r) = g.revoked_at {
        item.insert("revoked_at".into(), n(r));
    }
    item
}

/// The `SESSIONS` item: real DynamoDB maps, so an operator can read it in the console.
fn sessions_item(user: &str, s: &Sessions, version: u64) -> Item {
    let mut item = key(user_pk(user), "SESSIONS");
    let devices = s
        .devices
        .iter()
        .map(|(device, d)| {
            (
                device.clone(),
                AttributeValue::M(HashMap::from([
                    ("session_id".to_owned(), self::s(&d.session_id)),
                    ("last_seen".to_owned(), n(d.last_seen)),
                ])),
            )
        })
        .collect();
    let previews = s
        .previews
        .iter()
        .map(|(stream, at)| (stream.clone(), n(*at)))
        .collect();
    item.insert("devices".into(), AttributeValue::M(devices));
    item.insert("previews".into(), AttributeValue::M(previews));
    item.insert(
        "version".into(),
        n(i64::try_from(version).unwrap_or(i64::MAX)),
    );
    item
}

fn sessions_from_item(item: &Item) -> Result<Sessions, StoreError> {
    let mut out = Sessions {
        version: u64::try_from(get_n(item, "version")?)
            .map_err(|_| StoreError::Corrupt("negative sessions version".into()))?,
        ..Sessions::default()
    };
    if let Some(AttributeValue::M(devices)) = item.get("devices") {
        for (device, v) in devices {
            let AttributeValue::M(d) = v else {
                return Err(StoreError::Corrupt("sessions device is not a map".into()));
            };
            out.devices.insert(
                device.clone(),
                DeviceSession {
                    session_id: get_s(d, "session_id")?.to_owned(),
                    last_seen: get_n(d, "last_seen")?,
                },
            );
        }
    }
    if let Some(AttributeValue::M(previews)) = item.get("previews") {
        for (stream, v) in previews {
            let AttributeValue::N(at) = v else {
                return Err(StoreError::Corrupt("preview start is not a number".into()));
            };
            let at = at
                .parse()
                .map_err(|_| StoreError::Corrupt("preview start is not an integer".into()))?;
            out.previews.insert(stream.clone(), at);
        }
    }
    Ok(out)
}

fn grant_from_item(item: &Item) -> Result<Grant, StoreError> {
    Ok(Grant {
        scope: get_s(item, "scope")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        source_id: get_s(item, "source_id")?.to_owned(),
        paid_at: get_n(item, "paid_at")?,
        term: json_attr(item, "term")?
            .ok_or_else(|| StoreError::Corrupt("grant without term".into()))?,
        revoked_at: opt_n(item, "revoked_at")?,
    })
}

/// What a cancelled transaction says about each of its items.
enum TxnFailure {
    /// Per item: `Some(old item or None)` where its condition failed, `None` where it did not.
    Conditions(Vec<Option<Option<Item>>>),
    /// Another transaction touched the same items: retry.
    Conflict,
}

fn classify(reasons: &[CancellationReason]) -> TxnFailure {
    if reasons
        .iter()
        .any(|r| matches!(r.code(), Some("TransactionConflict")))
    {
        return TxnFailure::Conflict;
    }
    TxnFailure::Conditions(
        reasons
            .iter()
            .map(|r| match r.code() {
                Some("ConditionalCheckFailed") => Some(r.item().cloned()),
                _ => None,
            })
            .collect(),
    )
}

/// The provider transaction was already claimed (item 1 of a payment transaction): by
/// which order, from the failed condition's `ALL_OLD`.
fn txn_already_recorded(
    failed: &[Option<Option<Item>>],
    this_order: &OrderId,
) -> Result<Option<SettleOutcome>, StoreError> {
    let Some(Some(old)) = failed.get(1) else {
        return Ok(None);
    };
    let order_id = match old {
        Some(item) => OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => this_order.clone(),
    };
    Ok(Some(SettleOutcome::TxnAlreadyRecorded { order_id }))
}

const TXN_ATTEMPTS: u32 = 5;

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with the same schema as `template.yaml` (for tests and local runs
    /// against a DynamoDB emulator).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key_el = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(build(key_el("gsi1pk", KeyType::Hash))?)
            .key_schema(build(key_el("gsi1sk", KeyType::Range))?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build();
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(build(attr("pk"))?)
            .attribute_definitions(build(attr("sk"))?)
            .attribute_definitions(build(attr("gsi1pk"))?)
            .attribute_definitions(build(attr("gsi1sk"))?)
            .key_schema(build(key_el("pk", KeyType::Hash))?)
            .key_schema(build(key_el("sk", KeyType::Range))?)
            .global_secondary_indexes(build(gsi)?)
            .send()
            .await
            .map_err(|e| unavailable("create table", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(build(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| unavailable("enable ttl", e))?;
        Ok(())
    }

    fn put(&self, item: Item, condition: &str) -> Put {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set")
    }

    /// Runs a transaction, retrying only on conflicts with other transactions.
    async fn transact(
        &self,
        op: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<Option<Option<Item>>>>, StoreError> {
        for attempt in 1..=TXN_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            if let SdkError::ServiceError(service) = &err {
                if let TransactWriteItemsError::TransactionCanceledException(c) = service.err() {
                    match classify(c.cancellation_reasons()) {
                        TxnFailure::Conditions(per_item) => return Ok(Some(per_item)),
                        TxnFailure::Conflict if attempt < TXN_ATTEMPTS => {
                            let pause = 10 * u64::from(attempt) + u64::from(jitter_ms());
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                            continue;
                        }
                        TxnFailure::Conflict => {}
                    }
                }
            }
            return Err(unavailable(op, err));
        }
        Err(StoreError::Unavailable(format!(
            "{op}: transaction conflicts persisted"
        )))
    }
}

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("create table: {e}")))
}

/// A few milliseconds of jitter for conflict retries; not security relevant.
fn jitter_ms() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        % 16) as u8
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_order(
        &self,
        order: &Order,
        idem: Option<&IdempotencyRecord>,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        let created = self.count(
            order.created_at,
            stats_shard(&order.order_id),
            &[("orders_created", 1)],
        );
        let Some(rec) = idem else {
            let items = vec![
                TransactWriteItem::builder()
                    .put(self.put(order_item(order), "attribute_not_exists(pk)"))
                    .build(),
                created,
            ];
            return match self.transact("create order", items).await? {
                None => Ok(CreateOutcome::Created),
                Some(_) => Err(StoreError::Corrupt(format!(
                    "order id {} generated twice",
                    order.order_id
                ))),
            };
        };
        let order_put = self.put(order_item(order), "attribute_not_exists(pk)");
        let idem_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(idem_item(rec)))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set");
        let items = vec![
            TransactWriteItem::builder().put(order_put).build(),
            TransactWriteItem::builder().put(idem_put).build(),
            created,
        ];
        match self.transact("create order", items).await? {
            None => Ok(CreateOutcome::Created),
            Some(failed) => match failed.get(1) {
                Some(Some(old)) => {
                    let old = match old {
                        Some(item) => item.clone(),
                        // Emulators may omit ALL_OLD: read the key instead.
                        None => self
                            .get(idem_pk(&rec.user_id, &rec.key), "IDEM")
                            .await?
                            .ok_or_else(|| {
                                StoreError::Unavailable("idempotency key vanished".into())
                            })?,
                    };
                    Ok(CreateOutcome::KeyExists(idem_from_item(&old)?))
                }
                _ => Err(StoreError::Corrupt(format!(
                    "order id {} generated twice",
                    order.order_id
                ))),
            },
        }
    }

    async fn get_idempotency(
        &self,
        user_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.get(idem_pk(user_id, key), "IDEM").await? {
            Some(item) => Ok(Some(idem_from_item(&item)?).filter(|r| r.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.get(order_pk(id), "ORDER")
            .await?
            .map(|item| order_from_item(&item))
            .transpose()
    }

    async fn settle(&self, st: &Settlement) -> Result<SettleOutcome, StoreError> {
        let order_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(&st.order_id), "ORDER")))
            .update_expression(
                "SET #state = :paid, paid_at = :paid_at, late = :late, provider_txn_id = :txn \
                 REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression(
                "#state = :expected AND amount = :amount AND currency = :currency",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":paid", s(OrderState::Paid.as_str()))
            .expression_attribute_values(":paid_at", n(st.paid_at))
            .expression_attribute_values(
                ":late",
                AttributeValue::Bool(st.expected_state != OrderState::Pending),
            )
            .expression_attribute_values(":txn", s(&st.provider_txn_id))
            .expression_attribute_values(":expected", s(st.expected_state.as_str()))
            .expression_attribute_values(":amount", n(st.amount.amount))
            .expression_attribute_values(":currency", s(st.amount.currency.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("key, expression and table are set");
        let mut items = vec![TransactWriteItem::builder().update(order_update).build()];
        items.extend(self.payment_items(st, st.expected_state != OrderState::Pending, false));
        let Some(failed) = self.transact("settle", items).await? else {
            return Ok(SettleOutcome::Settled);
        };
        if let Some(recorded) = txn_already_recorded(&failed, &st.order_id)? {
            return Ok(recorded);
        }
        match failed.first() {
            Some(Some(Some(old))) => {
                Ok(SettleOutcome::OrderChanged(Box::new(order_from_item(old)?)))
            }
            Some(Some(None)) => match self.get_order(&st.order_id).await? {
                Some(order) => Ok(SettleOutcome::OrderChanged(Box::new(order))),
                None => Ok(SettleOutcome::UnknownOrder),
            },
            _ => Err(StoreError::Corrupt(format!(
                "settle of {} failed on a grant that should not exist",
                st.order_id
            ))),
        }
    }

    async fn settle_new_order(
        &self,
        order: &Order,
        st: &Settlement,
    ) -> Result<SettleOutcome, StoreError> {
        let mut items = vec![TransactWriteItem::builder()
            .put(self.put(order_item(order), "attribute_not_exists(pk)"))
            .build()];
        // Sold and paid in one: both counters go in the one update of the day's shard (a
        // transaction may touch an item only once).
        items.extend(self.payment_items(st, false, true));
        let Some(failed) = self.transact("settle new order", items).await? else {
            return Ok(SettleOutcome::Settled);
        };
        if let Some(recorded) = txn_already_recorded(&failed, &order.order_id)? {
            return Ok(recorded);
        }
        match failed.first() {
            Some(Some(Some(old))) => {
                Ok(SettleOutcome::OrderChanged(Box::new(order_from_item(old)?)))
            }
            Some(Some(None)) => match self.get_order(&order.order_id).await? {
                Some(o) => Ok(SettleOutcome::OrderChanged(Box::new(o))),
                None => Err(StoreError::Unavailable(
                    "settle new order: condition failed on an order that is absent".into(),
                )),
            },
            _ => Err(StoreError::Corrupt(format!(
                "new order {} failed on a grant that should not exist",
                order.order_id
            ))),
        }
    }

    async fn close_order(
        &self,
        id: &OrderId,
        to: OrderState,
        at: i64,
    ) -> Result<TransitionOutcome, StoreError> {
        if !matches!(to, OrderState::Expired | OrderState::Cancelled) {
            return match self.get_order(id).await? {
                Some(o) => Ok(TransitionOutcome::Conflict(Box::new(o))),
                None => Ok(TransitionOutcome::UnknownOrder),
            };
        }
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(id), "ORDER")))
            .update_expression("SET #state = :to, closed_at = :at REMOVE gsi1pk, gsi1sk")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":pending", s(OrderState::Pending.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => Ok(TransitionOutcome::Done(Box::new(order_from_item(
                out.attributes().ok_or_else(|| StoreError::Corrupt("no attributes returned".into()))?,
            )?))),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(old) => Ok(TransitionOutcome::Conflict(Box::new(order_from_item(old)?))),
                        None => match self.get_order(id).await? {
                            Some(o) => Ok(TransitionOutcome::Conflict(Box::new(o))),
                            None => Ok(TransitionOutcome::UnknownOrder),
                        },
                    }
                }
                _ => Err(unavailable("close order", e)),
            },
        }
    }

    async fn refund(&self, order: &Order, at: i64) -> Result<TransitionOutcome, StoreError> {
        let order_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(&order.order_id), "ORDER")))
            .update_expression("SET #state = :refunded, refunded_at = :at")
            .condition_expression("#state = :paid")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":refunded", s(OrderState::Refunded.as_str()))
            .expression_attribute_values(":paid", s(OrderState::Paid.as_str()))
            .expression_attribute_values(":at", n(at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("key, expression and table are set");
        let mut items = vec![TransactWriteItem::builder().update(order_update).build()];
        let source = order.order_id.to_string();
        for scope in &order.grants {
            let revoke = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    user_pk(&order.user_id),
                    &grant_sk(scope, &source),
                )))
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":at", n(at))
                .build()
                .expect("key, expression and table are set");
            items.push(TransactWriteItem::builder().update(revoke).build());
        }
        if order.credits != 0 {
            items.push(self.wallet_add(&order.user_id, -order.credits));
        }
        items.push(self.count(at, stats_shard(&order.order_id), &[("refunds", 1)]));
        let Some(failed) = self.transact("refund", items).await? else {
            let mut done = order.clone();
            done.state = OrderState::Refunded;
            done.refunded_at = Some(at);
            return Ok(TransitionOutcome::Done(Box::new(done)));
        };
        match failed.first() {
            Some(Some(Some(old))) => {
                Ok(TransitionOutcome::Conflict(Box::new(order_from_item(old)?)))
            }
            Some(Some(None)) => match self.get_order(&order.order_id).await? {
                Some(o) => Ok(TransitionOutcome::Conflict(Box::new(o))),
                None => Ok(TransitionOutcome::UnknownOrder),
            },
            _ => Err(StoreError::Corrupt(format!(
                "refund of {}: a grant the order made is missing",
                order.order_id
            ))),
        }
    }

    async fn day_records(&self, days: &[String]) -> Result<Vec<DayRecord>, StoreError> {
        let mut records: Vec<DayRecord> = days
            .iter()
            .map(|d| DayRecord {
                day: d.clone(),
                ..Default::default()
            })
            .collect();
        let keys = days
            .iter()
            .flat_map(|d| (0..STATS_SHARDS).map(move |sh| key(format!("STATS#{d}#{sh}"), "STATS")))
            .collect();
        for item in self.batch_get(keys).await? {
            let pk = get_s(&item, "pk")?;
            let Some(rec) = records
                .iter_mut()
                .find(|r| pk.starts_with(&format!("STATS#{}#", r.day)))
            else {
                continue;
            };
            rec.orders_created += opt_n(&item, "orders_created")?.unwrap_or(0);
            rec.orders_paid += opt_n(&item, "orders_paid")?.unwrap_or(0);
            rec.late_payments += opt_n(&item, "late_payments")?.unwrap_or(0);
            rec.refunds += opt_n(&item, "refunds")?.unwrap_or(0);
            for (name, value) in &item {
                if let (Some(cur), AttributeValue::N(v)) = (name.strip_prefix("revenue_"), value) {
                    *rec.revenue.entry(cur.to_owned()).or_default() +=
                        v.parse::<i64>().unwrap_or(0);
                }
            }
        }
        let mut users = std::collections::BTreeSet::new();
        for rec in &mut records {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(format!("PAID#{}", rec.day)))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| unavailable("day payments", e))?;
                for item in out.items() {
                    let user = get_s(item, "user_id")?.to_owned();
                    let at = get_n(item, "paid_at")?;
                    let e = rec.payers.entry(user.clone()).or_insert((0, at));
                    e.0 += 1;
                    users.insert(user);
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
        }
        let first: HashMap<String, i64> = self
            .batch_get(users.iter().map(|u| key(user_pk(u), "PAYER")).collect())
            .await?
            .iter()
            .filter_map(|item| {
                let user = get_s(item, "pk").ok()?.strip_prefix("USER#")?.to_owned();
                Some((user, opt_n(item, "first_paid_at").ok()??))
            })
            .collect();
        for rec in &mut records {
            for (user, entry) in rec.payers.iter_mut() {
                if let Some(t) = first.get(user) {
                    entry.1 = *t;
                }
            }
        }
        Ok(records)
    }

    async fn due_orders(
        &self,
        shard: u32,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :upto")
            .expression_attribute_values(":pk", s(format!("DUE#{shard}")))
            // '~' sorts after every id character, so orders due exactly at `now` are included.
            .expression_attribute_values(":upto", s(format!("{now:012}#~")))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| unavailable("due orders", e))?;
        out.items()
            .iter()
            .map(|item| {
                let sk = get_s(item, "gsi1sk")?;
                let (exp, id) = sk
                    .split_once('#')
                    .ok_or_else(|| StoreError::Corrupt("bad due index key".into()))?;
                Ok(DueEntry {
                    order_id: OrderId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    due_at: exp
                        .parse()
                        .map_err(|_| StoreError::Corrupt("bad due index time".into()))?,
                })
            })
            .collect()
    }

    async fn defer_due(
        &self,
        id: &OrderId,
        attempts: u32,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(id), "ORDER")))
            .update_expression("SET sweep_attempts = :a, gsi1sk = :sk")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":a", n(i64::from(attempts)))
            .expression_attribute_values(":sk", s(due_sk(next_at, id)))
            .expression_attribute_values(":pending", s(OrderState::Pending.as_str()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("defer due", e)),
        }
    }

    async fn mark_requery(
        &self,
        id: &OrderId,
        user_id: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(id), "ORDER")))
            .update_expression("SET requery_requested_at = :now")
            .condition_expression(
                "user_id = :user AND (attribute_not_exists(requery_requested_at) OR requery_requested_at <= :cutoff)",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":cutoff", n(now - min_interval))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("mark requery", e)),
        }
    }

    async fn record_error(&self, id: &OrderId, reason: &str) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(id), "ORDER")))
            .update_expression("SET last_error = :e")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":e", s(reason.chars().take(500).collect::<String>()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("record error", e)),
        }
    }

    async fn user_items(&self, user_id: &str) -> Result<UserItems, StoreError> {
        let mut result = UserItems::default();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(user_pk(user_id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("user items", e))?;
            for item in out.items() {
                let sk = get_s(item, "sk")?;
                if sk.starts_with("GRANT#") {
                    result.grants.push(grant_from_item(item)?);
                } else if sk == "WALLET" {
                    result.credits = opt_n(item, "balance")?.unwrap_or(0);
                } else if sk == "SESSIONS" {
                    result.sessions = sessions_from_item(item)?;
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(result),
            }
        }
    }

    async fn put_sessions(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        self.put_sessions_item(user_id, sessions, expected_version)
            .await
    }

    async fn get_purchase(
        &self,
        store: &str,
        purchase_id: &str,
    ) -> Result<Option<StorePurchase>, StoreError> {
        self.get(purchase_pk(store, purchase_id), "PURCHASE")
            .await?
            .map(|item| purchase_from_item(&item))
            .transpose()
    }

    async fn put_purchase(&self, p: &StorePurchase) -> Result<PurchaseOutcome, StoreError> {
        let purchase_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(purchase_item(p)))
            .condition_expression(
                "attribute_not_exists(pk) OR (last_event_at < :t AND user_id = :u)",
            )
            .expression_attribute_values(":t", n(p.last_event_at))
            .expression_attribute_values(":u", s(&p.user_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, item and condition are set");
        let mut items = vec![TransactWriteItem::builder().put(purchase_put).build()];
        for g in &p.grants {
            // Grants sourced by a purchase change only together with it (this transaction).
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(grant_item(&p.user_id, g)))
                .build()
                .expect("table and item are set");
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let Some(failed) = self.transact("put purchase", items).await? else {
            return Ok(PurchaseOutcome::Applied);
        };
        let old = match failed.first() {
            Some(Some(Some(item))) => purchase_from_item(item)?,
            Some(Some(None)) => self
                .get_purchase(&p.store, &p.purchase_id)
                .await?
                .ok_or_else(|| StoreError::Unavailable("purchase vanished".into()))?,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "put purchase {} failed on an unconditional item",
                    p.purchase_id
                )))
            }
        };
        if old.user_id != p.user_id {
            Ok(PurchaseOutcome::OwnedByOther(Box::new(old)))
        } else {
            Ok(PurchaseOutcome::Stale(Box::new(old)))
        }
    }

    async fn note_seen(&self, source: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .get(note_pk(source, id), "NOTE")
            .await?
            .map(|item| opt_n(&item, "ttl"))
            .transpose()?
            .flatten()
            .is_some_and(|until| until > now))
    }

    async fn record_note(
        &self,
        source: &str,
        id: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut item = key(note_pk(source, id), "NOTE");
        item.insert("kind".into(), s(kind));
        item.insert("processed_at".into(), n(now));
        item.insert("ttl".into(), n(now + NOTE_TTL));
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("record note", e)),
        }
    }
}

fn purchase_pk(store: &str, id: &str) -> String {
    format!("PURCHASE#{store}#{id}")
}

fn note_pk(source: &str, id: &str) -> String {
    format!("NOTE#{source}#{id}")
}

fn purchase_item(p: &StorePurchase) -> Item {
    let mut item = key(purchase_pk(&p.store, &p.purchase_id), "PURCHASE");
    item.insert("store".into(), s(&p.store));
    item.insert("purchase_id".into(), s(&p.purchase_id));
    item.insert("user_id".into(), s(&p.user_id));
    item.insert("product_id".into(), s(&p.product_id));
    item.insert("state".into(), s(&p.state));
    item.insert("last_event_at".into(), n(p.last_event_at));
    if let Some(e) = p.expires_at {
        item.insert("expires_at".into(), n(e));
    }
    if let Some(t) = &p.last_txn_id {
        item.insert("last_txn_id".into(), s(t));
    }
    if let Some(o) = &p.order_id {
        item.insert("order_id".into(), s(o));
    }
    item.insert(
        "grants".into(),
        s(serde_json::to_string(&p.grants).unwrap_or_default()),
    );
    item
}

fn purchase_from_item(item: &Item) -> Result<StorePurchase, StoreError> {
    Ok(StorePurchase {
        store: get_s(item, "store")?.to_owned(),
        purchase_id: get_s(item, "purchase_id")?.to_owned(),
        user_id: get_s(item, "user_id")?.to_owned(),
        product_id: get_s(item, "product_id")?.to_owned(),
        state: get_s(item, "state")?.to_owned(),
        expires_at: opt_n(item, "expires_at")?,
        last_event_at: get_n(item, "last_event_at")?,
        last_txn_id: opt_s(item, "last_txn_id"),
        order_id: opt_s(item, "order_id"),
        grants: json_attr(item, "grants")?.unwrap_or_default(),
    })
}

impl DynamoStore {
    async fn put_sessions_item(
        &self,
        user_id: &str,
        sessions: &Sessions,
        expected_version: u64,
    ) -> Result<PutSessions, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(sessions_item(user_id, sessions, expected_version + 1)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = if expected_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(
                    ":v",
                    n(i64::try_from(expected_version).unwrap_or(i64::MAX)),
                )
        };
        match put.send().await {
            Ok(_) => Ok(PutSessions::Written),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Ok(PutSessions::Stale(match c.item() {
                        Some(item) => sessions_from_item(item)?,
                        // Emulators may omit ALL_OLD: read the item instead.
                        None => match self.get(user_pk(user_id), "SESSIONS").await? {
                            Some(item) => sessions_from_item(&item)?,
                            None => Sessions::default(),
                        },
                    }))
                }
                _ => Err(unavailable("put sessions", e)),
            },
        }
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get item", e))?;
        Ok(out.item().cloned())
    }

    /// `ADD` to one day's counter shard; no condition, so it never fails its transaction.
    fn count(&self, at: i64, shard: u32, adds: &[(&str, i64)]) -> TransactWriteItem {
        let day = crate::domain::stats::day_of(at);
        let mut expr = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("STATS#{day}#{shard}"), "STATS")));
        for (i, (name, value)) in adds.iter().enumerate() {
            expr.push(format!("#c{i} :v{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), n(*value));
        }
        let update = update
            .update_expression(format!("ADD {}", expr.join(", ")))
            .build()
            .expect("key, expression and table are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// The items a payment adds for the daily figures: counters, the day's payment record
    /// and the payer's first-payment time.
    fn count_paid(&self, st: &Settlement, late: bool, created: bool) -> Vec<TransactWriteItem> {
        let shard = stats_shard(&st.order_id);
        let revenue = format!("revenue_{}", st.amount.currency.as_str());
        let day = crate::domain::stats::day_of(st.paid_at);
        // One item per payment (distinct items never conflict), in the day's partition.
        let mut paid = key(format!("PAID#{day}"), st.order_id.as_str());
        paid.insert("user_id".into(), s(&st.user_id));
        paid.insert("amount".into(), n(st.amount.amount));
        paid.insert("currency".into(), s(st.amount.currency.as_str()));
        paid.insert("paid_at".into(), n(st.paid_at));
        let payer = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(&st.user_id), "PAYER")))
            .update_expression("SET first_paid_at = if_not_exists(first_paid_at, :t)")
            .expression_attribute_values(":t", n(st.paid_at))
            .build()
            .expect("key, expression and table are set");
        vec![
            self.count(
                st.paid_at,
                shard,
                &[
                    ("orders_paid", 1),
                    ("late_payments", i64::from(late)),
                    (&revenue, st.amount.amount),
                    ("orders_created", i64::from(created)),
                ],
            ),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(paid))
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
            TransactWriteItem::builder().update(payer).build(),
        ]
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

    /// What every payment writes besides the order itself, always right after it (index 1
    /// is the provider-transaction claim, see [`txn_already_recorded`]): the claim, the
    /// grants, the coins and the day's figures.
    fn payment_items(&self, st: &Settlement, late: bool, created: bool) -> Vec<TransactWriteItem> {
        let mut txn = key(format!("TXN#{}#{}", st.provider, st.provider_txn_id), "TXN");
        txn.insert("order_id".into(), s(st.order_id.as_str()));
        txn.insert("user_id".into(), s(&st.user_id));
        txn.insert("amount".into(), n(st.amount.amount));
        txn.insert("currency".into(), s(st.amount.currency.as_str()));
        txn.insert("recorded_at".into(), n(st.paid_at));
        let mut items = vec![TransactWriteItem::builder()
            .put(self.put(txn, "attribute_not_exists(pk)"))
            .build()];
        for g in &st.grants {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put(grant_item(&st.user_id, g), "attribute_not_exists(pk)"))
                    .build(),
            );
        }
        if st.credits != 0 {
            items.push(self.wallet_add(&st.user_id, st.credits));
        }
        items.extend(self.count_paid(st, late, created));
        items
    }

    fn wallet_add(&self, user: &str, delta: i64) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), "WALLET")))
            .update_expression("ADD balance :delta")
            .expression_attribute_values(":delta", n(delta))
            .build()
            .expect("key, expression and table are set");
        TransactWriteItem::builder().update(update).build()
    }
}

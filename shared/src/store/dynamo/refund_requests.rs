//! Refund requests Tollgate starts: the `REFUND#<out_refund_no>` item under its order, the
//! amount it holds on the order (`refund_requested`), and the refund index the sweeper
//! reads (`gsi1pk = REFUNDS_DUE`, present only while the request is open).

use super::attrs::{get_n, get_s, n, opt_n, opt_s, s, Item};
use super::errors::{condition_held, unavailable};
use super::keys::{key, order_pk, refund_sk, refunds_due_pk, refunds_due_sk};
use super::orders::order_as_stored;
use super::table::GSI1;
use super::DynamoStore;
use crate::domain::audit::AuditRecord;
use crate::domain::refund_request::{
    RefundHold, RefundRequest, RefundRequestChange, RefundRequestState,
};
use crate::domain::{Order, OrderId, OrderState};
use crate::store::{DueRefund, RefundRequestOutcome, StoreError};
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

fn request_item(r: &RefundRequest) -> Item {
    let mut item = key(order_pk(&r.order_id), &refund_sk(&r.out_refund_no));
    item.insert("order_id".into(), s(r.order_id.as_str()));
    item.insert("out_refund_no".into(), s(&r.out_refund_no));
    item.insert("amount".into(), n(r.amount));
    item.insert("reason".into(), s(&r.reason));
    item.insert("requested_by".into(), s(&r.requested_by));
    item.insert("requested_at".into(), n(r.requested_at));
    item.insert("request_hash".into(), s(&r.request_hash));
    item.insert("state".into(), s(r.state.as_str()));
    if let Some(id) = &r.provider_refund_id {
        item.insert("provider_refund_id".into(), s(id));
    }
    if let Some(f) = &r.failure {
        item.insert("failure".into(), s(f));
    }
    item.insert("updated_at".into(), n(r.updated_at));
    item.insert("attempts".into(), n(i64::from(r.attempts)));
    if let Some(at) = r.next_check_at.filter(|_| r.state.is_open()) {
        item.insert("next_check_at".into(), n(at));
        item.insert("gsi1pk".into(), s(refunds_due_pk()));
        item.insert(
            "gsi1sk".into(),
            s(refunds_due_sk(at, &r.order_id, &r.out_refund_no)),
        );
    }
    item
}

fn request_from_item(item: &Item) -> Result<RefundRequest, StoreError> {
    Ok(RefundRequest {
        order_id: OrderId::parse(get_s(item, "order_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        out_refund_no: get_s(item, "out_refund_no")?.to_owned(),
        amount: get_n(item, "amount")?,
        reason: get_s(item, "reason")?.to_owned(),
        requested_by: get_s(item, "requested_by")?.to_owned(),
        requested_at: get_n(item, "requested_at")?,
        request_hash: get_s(item, "request_hash")?.to_owned(),
        state: RefundRequestState::parse(get_s(item, "state")?)
            .ok_or_else(|| StoreError::Corrupt("unknown refund request state".into()))?,
        provider_refund_id: opt_s(item, "provider_refund_id"),
        failure: opt_s(item, "failure"),
        updated_at: get_n(item, "updated_at")?,
        next_check_at: opt_n(item, "next_check_at")?,
        attempts: opt_n(item, "attempts")?
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
    })
}

/// One transaction: the request (condition: absent), the hold on the order (condition:
/// PAID, the refunds counted as read, at most `held_max` held already) and the operator's
/// audit record.
pub(super) async fn request_refund(
    db: &DynamoStore,
    order: &Order,
    req: &RefundRequest,
    hold: &RefundHold,
    audit: &AuditRecord,
) -> Result<RefundRequestOutcome, StoreError> {
    let put = db.put(request_item(req), "attribute_not_exists(pk)");
    let refunded = if hold.refunded == 0 {
        "(attribute_not_exists(refunded_amount) OR refunded_amount = :refunded)"
    } else {
        "refunded_amount = :refunded"
    };
    let order_update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(&req.order_id), "ORDER")))
        .update_expression("ADD refund_requested :amount")
        .condition_expression(format!(
            "#state = :paid AND {refunded} AND \
             (attribute_not_exists(refund_requested) OR refund_requested <= :held_max)"
        ))
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":paid", s(OrderState::Paid.as_str()))
        .expression_attribute_values(":amount", n(hold.amount))
        .expression_attribute_values(":refunded", n(hold.refunded))
        .expression_attribute_values(":held_max", n(hold.held_max))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("key, expression and table are set");
    let items = vec![
        TransactWriteItem::builder().put(put).build(),
        TransactWriteItem::builder().update(order_update).build(),
        db.audit_put(audit),
    ];
    let Some(failed) = db.transact("request refund", items).await? else {
        let mut held = order.clone();
        held.refund_requested += hold.amount;
        return Ok(RefundRequestOutcome::Recorded(Box::new(held)));
    };
    if let Some(Some(old)) = failed.first() {
        let stored = match old {
            Some(item) => request_from_item(item)?,
            None => refund_request(db, &req.order_id, &req.out_refund_no)
                .await?
                .ok_or_else(|| StoreError::Unavailable("refund request vanished".into()))?,
        };
        return Ok(RefundRequestOutcome::Exists(Box::new(stored)));
    }
    match failed.get(1) {
        Some(Some(old)) => Ok(
            match order_as_stored(db, old.as_ref(), &req.order_id).await? {
                Some(o) => RefundRequestOutcome::OrderChanged(Box::new(o)),
                None => RefundRequestOutcome::UnknownOrder,
            },
        ),
        _ => Err(StoreError::Unavailable(
            "request refund: the transaction failed without a reason".into(),
        )),
    }
}

pub(super) async fn refund_request(
    db: &DynamoStore,
    order_id: &OrderId,
    out_refund_no: &str,
) -> Result<Option<RefundRequest>, StoreError> {
    db.get(order_pk(order_id), &refund_sk(out_refund_no))
        .await?
        .map(|item| request_from_item(&item))
        .transpose()
}

/// The update expression and values that write `next` over the open request: its state,
/// times, ids and failure, and its refund-index entry (kept while open, removed otherwise).
fn request_change(req: &RefundRequest, next: &RefundRequest) -> (String, Item) {
    let mut set = vec![
        "#state = :state",
        "updated_at = :updated_at",
        "attempts = :attempts",
    ];
    let mut remove = vec![];
    let mut values: Item = Item::from([
        (":state".to_owned(), s(next.state.as_str())),
        (":updated_at".to_owned(), n(next.updated_at)),
        (":attempts".to_owned(), n(i64::from(next.attempts))),
        (
            ":requested".to_owned(),
            s(RefundRequestState::Requested.as_str()),
        ),
        (
            ":pending".to_owned(),
            s(RefundRequestState::Pending.as_str()),
        ),
    ]);
    if let Some(id) = &next.provider_refund_id {
        set.push("provider_refund_id = :pid");
        values.insert(":pid".to_owned(), s(id));
    }
    match &next.failure {
        Some(f) => {
            set.push("failure = :failure");
            values.insert(
                ":failure".to_owned(),
                s(f.chars().take(500).collect::<String>()),
            );
        }
        None => remove.push("failure"),
    }
    match next.next_check_at.filter(|_| next.state.is_open()) {
        Some(at) => {
            set.push("next_check_at = :next, gsi1pk = :due_pk, gsi1sk = :due_sk");
            values.insert(":next".to_owned(), n(at));
            values.insert(":due_pk".to_owned(), s(refunds_due_pk()));
            values.insert(
                ":due_sk".to_owned(),
                s(refunds_due_sk(at, &req.order_id, &req.out_refund_no)),
            );
        }
        None => remove.extend(["next_check_at", "gsi1pk", "gsi1sk"]),
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    (expression, values)
}

/// Only an open request changes.
const OPEN: &str = "#state IN (:requested, :pending)";

pub(super) async fn change_refund_request(
    db: &DynamoStore,
    req: &RefundRequest,
    change: &RefundRequestChange,
) -> Result<Option<RefundRequest>, StoreError> {
    let next = req.changed(change);
    let (expression, values) = request_change(req, &next);
    let request_key = key(order_pk(&req.order_id), &refund_sk(&req.out_refund_no));
    if !matches!(change, RefundRequestChange::Finished { .. }) {
        let r = db
            .client
            .update_item()
            .table_name(&db.table)
            .set_key(Some(request_key))
            .update_expression(expression)
            .condition_expression(OPEN)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        return Ok(condition_held("change refund request", r)?.then_some(next));
    }
    // Finished: the request leaves the index and the order releases what it held.
    let update = Update::builder()
        .table_name(&db.table)
        .set_key(Some(request_key))
        .update_expression(expression)
        .condition_expression(OPEN)
        .expression_attribute_names("#state", "state")
        .set_expression_attribute_values(Some(values))
        .build()
        .expect("key, expression and table are set");
    let release = Update::builder()
        .table_name(&db.table)
        .set_key(Some(key(order_pk(&req.order_id), "ORDER")))
        .update_expression("ADD refund_requested :release")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":release", n(-req.amount))
        .build()
        .expect("key, expression and table are set");
    let items = vec![
        TransactWriteItem::builder().update(update).build(),
        TransactWriteItem::builder().update(release).build(),
    ];
    match db.transact("finish refund request", items).await? {
        None => Ok(Some(next)),
        Some(_) => Ok(None),
    }
}

pub(super) async fn due_refund_requests(
    db: &DynamoStore,
    now: i64,
    limit: usize,
) -> Result<Vec<DueRefund>, StoreError> {
    let out = db
        .client
        .query()
        .table_name(&db.table)
        .index_name(GSI1)
        .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :upto")
        .expression_attribute_values(":pk", s(refunds_due_pk()))
        // '~' sorts after every id character: requests due exactly at `now` are included.
        .expression_attribute_values(":upto", s(format!("{now:012}#~")))
        .limit(i32::try_from(limit).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| unavailable("due refund requests", e))?;
    out.items()
        .iter()
        .map(|item| {
            let sk = get_s(item, "gsi1sk")?;
            let bad = || StoreError::Corrupt(format!("bad refund index key {sk:?}"));
            let mut parts = sk.splitn(3, '#');
            let (Some(at), Some(order), Some(no)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            Ok(DueRefund {
                order_id: OrderId::parse(order).map_err(|_| bad())?,
                out_refund_no: no.to_owned(),
                due_at: at.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

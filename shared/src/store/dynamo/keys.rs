//! The single table's key layout: which `pk`/`sk` each kind of item lives under. Items that
//! must be read together share a partition (everything a user may watch is under `USER#`).

use super::attrs::{s, Item};
use crate::domain::audit::AuditSubject;
use crate::domain::OrderId;
use std::collections::HashMap;

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

/// Partition key in the order-history index: every order of one user.
pub(super) fn user_orders_pk(user: &str) -> String {
    format!("ORDERS#{user}")
}

pub(super) fn user_pk(user: &str) -> String {
    format!("USER#{user}")
}

/// A grant's live key: the only key any call writes a grant at (see `Store::user_items`).
pub(super) fn grant_sk(scope: &str, source: &str) -> String {
    format!("GRANT#{scope}#{source}")
}

/// Where a fold keeps an archived grant: before every other item of the user's partition,
/// so the check's query (`sk > ARCHIVE_END`) never reads the archive.
pub(super) fn archived_grant_sk(scope: &str, source: &str) -> String {
    format!("ARCHIVE#GRANT#{scope}#{source}")
}

/// Every archived key sorts before this (`#` < `$`) and every other key of a user's
/// partition after it (`BAN#`, `CHECKPOINT#`, `GRANT#`, `PAYER`, `SESSIONS`, `WALLET`). A new
/// kind of user item a check reads must sort after it too, and not after `WALLET`: the
/// check's query ends there, before the ledger (`WALLET#…`).
pub(super) const ARCHIVE_END: &str = "ARCHIVE$";

/// What the archived grants of one scope add up to.
pub(super) fn checkpoint_sk(scope: &str) -> String {
    format!("CHECKPOINT#{scope}")
}

/// A user's ban of one stream (or of `*`, every stream), beside their grants and sessions.
pub(super) fn ban_sk(scope: &str) -> String {
    format!("BAN#{scope}")
}

/// Items about one catalog stream (its `PUBLISH_KEY`).
pub(super) fn stream_pk(stream_id: &str) -> String {
    format!("STREAM#{stream_id}")
}

/// Partition key in the due index: one of the due shards a PENDING order is filed under.
pub(super) fn due_pk(shard: u32) -> String {
    format!("DUE#{shard}")
}

/// Sort key in the due index: zero-padded so that string order is time order.
pub(super) fn due_sk(expires_at: i64, id: &OrderId) -> String {
    format!("{expires_at:012}#{id}")
}

/// The counters of the orders one user created, one item per window
/// ([`crate::domain::order_quota`]); not under `USER#`, whose partition every entitlement
/// check reads whole.
pub(super) fn order_window_pk(user: &str) -> String {
    format!("ORDERS#{user}")
}

/// A user's claim on one lifetime product, beside their order windows (`ORDERS#<user>`).
pub(super) fn lifetime_claim_sk(product: &str) -> String {
    format!("LIFETIME#{product}")
}

/// Zero-padded window start, so that string order is time order.
pub(super) fn order_window_sk(start: i64) -> String {
    format!("WINDOW#{start:012}")
}

pub(super) fn idem_pk(user: &str, key: &str) -> String {
    format!("IDEM#{user}#{key}")
}

/// The claim on one provider transaction: its existence is what makes a payment count once.
pub(super) fn txn_pk(provider: &str, txn_id: &str) -> String {
    format!("TXN#{provider}#{txn_id}")
}

/// One of a day's [`crate::store::STATS_SHARDS`] counter items.
pub(super) fn stats_pk(day: &str, shard: u32) -> String {
    format!("STATS#{day}#{shard}")
}

/// The partition holding one item per payment of the day.
pub(super) fn paid_pk(day: &str) -> String {
    format!("PAID#{day}")
}

pub(super) fn purchase_pk(store: &str, id: &str) -> String {
    format!("PURCHASE#{store}#{id}")
}

pub(super) fn note_pk(source: &str, id: &str) -> String {
    format!("NOTE#{source}#{id}")
}

/// A short-lived marker that one piece of work was started (see `Store::claim_marker`).
pub(super) fn marker_pk(marker: &str) -> String {
    format!("MARK#{marker}")
}

/// The history of one subject (a user, or a stream for its publish key): audit records,
/// apart from `USER#`, which every entitlement check reads whole.
pub(super) fn audit_pk(subject: AuditSubject<'_>) -> String {
    match subject {
        AuditSubject::User(u) => format!("AUDIT#USER#{u}"),
        AuditSubject::Stream(s) => format!("AUDIT#STREAM#{s}"),
        AuditSubject::Operator(a) => format!("AUDIT#OPERATOR#{a}"),
    }
}

/// The one partition of the audit index (`gsi3`): every record by time.
pub(super) const AUDIT_LOG_PK: &str = "AUDIT";

/// An operator's Idempotency-Keys for changes to one user (sort key: the key itself).
pub(super) fn admin_key_pk(user: &str) -> String {
    format!("OPKEY#{user}")
}

/// A refund request under its order's partition.
pub(super) fn refund_sk(out_refund_no: &str) -> String {
    format!("REFUND#{out_refund_no}")
}

/// Partition key of the refund index in `gsi1`: open refund requests. One partition: refunds
/// are operator actions, a handful a day, and the sweeper reads them with one query.
pub(super) fn refunds_due_pk() -> String {
    "REFUNDS_DUE".to_owned()
}

/// Sort key in the refund index: due time zero-padded (string order is time order), then
/// which request.
pub(super) fn refunds_due_sk(at: i64, order: &OrderId, out_refund_no: &str) -> String {
    format!("{at:012}#{order}#{out_refund_no}")
}

/// The wallet item's sort key; its ledger entries follow it (`WALLET#<position>`), so one
/// query from here reads the balance and then the newest entries.
pub(super) const WALLET_SK: &str = "WALLET";

/// A ledger entry under the user's partition, right after the wallet item and after every
/// other item a check reads: the check's query stops at [`WALLET_SK`] and never reads the
/// ledger. The position puts the newest entry first ([`crate::domain::ledger::position`]).
pub(super) fn ledger_sk(position: &str) -> String {
    format!("WALLET#{position}")
}

/// A spend's Idempotency-Key (sort key: the key itself), kept for good.
pub(super) fn debit_key_pk(user: &str) -> String {
    format!("DEBIT#{user}")
}

//! The sweeper: finds unpaid orders past their expiry through the sharded due index (never a
//! scan), asks the provider before expiring, and settles what was paid after all.
//!
//! | provider says | action |
//! |---|---|
//! | paid | settle through the same exactly-once path as a callback |
//! | not paid | close at the provider, then `PENDING → EXPIRED` (conditional) |
//! | closed / no query API | `PENDING → EXPIRED` |
//! | unreachable | leave it PENDING, retry with backoff; after 5 tries hand it to the queue |
//!
//! Before the orders, it looks at the open refund requests whose check is due, through their
//! own index ([`super::refund_requests::sweep`]).

use super::payments;
use crate::app::App;
use crate::domain::{Order, OrderState};
use crate::providers::{ProviderError, QueryResult};
use crate::queue::Job;
use crate::store::{DueEntry, StoreError, TransitionOutcome};
use serde::Serialize;

/// Orders read per shard and page.
pub const PAGE: usize = 100;
/// Failed provider queries before the order is handed to the verifier queue.
pub const HANDOFF_AFTER: u32 = 5;
/// Time kept in reserve before the deadline: no new order is started inside it.
pub const DEADLINE_MARGIN_MS: i64 = 2_000;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Due-index entries read.
    pub examined: u32,
    pub settled: u32,
    pub expired: u32,
    /// Provider unreachable: left PENDING for a later run.
    pub deferred: u32,
    /// Handed to the verifier queue after repeated failures.
    pub handed_off: u32,
    /// Index entries whose order had already moved on (the index lags the table).
    pub skipped: u32,
    pub errors: u32,
    /// Open refund requests looked at (see [`super::refund_requests::sweep`]).
    pub refunds: super::refund_requests::RefundSweep,
    /// Stopped before the deadline with work left; the next run resumes.
    pub stopped_early: bool,
}

/// One sweep, starting no new order after `deadline_ms` (unix ms) minus the margin.
pub async fn sweep(app: &App, deadline_ms: i64) -> SweepReport {
    let mut report = SweepReport::default();
    let now = app.clock.now();
    // Refunds first: there are few, and each one left open may be access that should end.
    let (refunds, stopped) =
        super::refund_requests::sweep(app, now, deadline_ms, DEADLINE_MARGIN_MS).await;
    report.refunds = refunds;
    if stopped {
        report.stopped_early = true;
        return report;
    }
    for shard in 0..Order::DUE_SHARDS {
        loop {
            if app.clock.now_ms() + DEADLINE_MARGIN_MS > deadline_ms {
                report.stopped_early = true;
                return report;
            }
            let page = match app.store.due_orders(shard, now, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(shard, error = %e, "due index unavailable");
                    report.errors += 1;
                    break;
                }
            };
            let mut progressed = 0;
            for entry in &page {
                if app.clock.now_ms() + DEADLINE_MARGIN_MS > deadline_ms {
                    report.stopped_early = true;
                    return report;
                }
                report.examined += 1;
                if sweep_one(app, entry, now, &mut report).await {
                    progressed += 1;
                }
            }
            // A full page that all left the index means more may be waiting behind it;
            // anything that stayed (errors) is left for the next run, never looped on.
            if page.len() < PAGE || progressed < page.len() {
                break;
            }
        }
    }
    report
}

/// Returns whether the entry left the due index (or moved later).
async fn sweep_one(app: &App, entry: &DueEntry, now: i64, report: &mut SweepReport) -> bool {
    // The index is eventually consistent: the order itself decides.
    let order = match app.store.get_order(&entry.order_id).await {
        Ok(Some(o)) if o.state == OrderState::Pending => o,
        Ok(_) => {
            report.skipped += 1;
            return true;
        }
        Err(e) => {
            tracing::error!(order_id = %entry.order_id, error = %e, "store unavailable");
            report.errors += 1;
            return false;
        }
    };
    match resolve(app, &order, now).await {
        Ok(Resolution::Settled) => {
            report.settled += 1;
            true
        }
        Ok(Resolution::Expired) => {
            report.expired += 1;
            true
        }
        Ok(Resolution::AlreadyMoved) => {
            report.skipped += 1;
            true
        }
        Err(Failure::Provider(reason) | Failure::Refused(reason)) => {
            defer(app, &order, now, &reason, report).await
        }
        Err(Failure::Store(e)) => {
            tracing::error!(order_id = %order.order_id, error = %e, "store unavailable");
            report.errors += 1;
            false
        }
    }
}

async fn defer(app: &App, order: &Order, now: i64, reason: &str, report: &mut SweepReport) -> bool {
    let attempts = order.sweep_attempts + 1;
    tracing::warn!(order_id = %order.order_id, provider = %order.provider, attempts, reason, "provider unreachable, order left pending");
    let handoff = attempts >= HANDOFF_AFTER;
    let next_at = if handoff {
        now + 3_600
    } else {
        now + (60i64 << (attempts - 1)).min(1_800)
    };
    if handoff {
        if let Some(q) = &app.queue {
            let job = Job::RequeryOrder {
                order_id: order.order_id.to_string(),
            };
            if let Err(e) = q.jobs().send(&job, 0).await {
                tracing::error!(order_id = %order.order_id, error = %e, "could not hand off to the queue");
                report.errors += 1;
                return false;
            }
            report.handed_off += 1;
        }
    }
    match app
        .store
        .defer_due(&order.order_id, attempts, next_at)
        .await
    {
        Ok(_) => {
            if !handoff {
                report.deferred += 1;
            }
            true
        }
        Err(e) => {
            tracing::error!(order_id = %order.order_id, error = %e, "store unavailable");
            report.errors += 1;
            false
        }
    }
}

pub(crate) enum Resolution {
    Settled,
    Expired,
    /// Someone else (a callback) moved the order first.
    AlreadyMoved,
}

pub(crate) enum Failure {
    /// The provider could not answer; try again later.
    Provider(String),
    /// The provider's answer can't be acted on (refused query, a payment we refuse):
    /// recorded on the order for an operator; retrying soon won't change it.
    Refused(String),
    Store(StoreError),
}

/// Asks the provider about an unpaid, expired order and acts on the answer. Shared by the
/// sweeper and the verifier's re-query jobs.
pub(crate) async fn resolve(app: &App, order: &Order, now: i64) -> Result<Resolution, Failure> {
    let Some(provider) = app.providers.query(&order.provider).cloned() else {
        if !app.providers.is_enabled(&order.provider) {
            tracing::warn!(order_id = %order.order_id, provider = %order.provider, "provider not enabled; expiring without asking");
        }
        // Nothing to ask (sandbox, Huya, the stores' own flows): the order simply expires.
        if order.expires_at <= now {
            return expire(app, order, now).await;
        }
        return Ok(Resolution::AlreadyMoved);
    };
    match provider.query(order).await {
        Ok(QueryResult::Paid(event)) => match payments::apply(app, &order.provider, event).await {
            Ok(_) => Ok(Resolution::Settled),
            Err(payments::ApplyError::Store(e)) => Err(Failure::Store(e)),
            Err(payments::ApplyError::Rejected(r)) => {
                // The provider's own record disagrees with ours (amount, transaction): keep
                // the order for an operator rather than expiring money.
                let reason = format!("provider reports payment we refuse: {r}");
                tracing::error!(order_id = %order.order_id, %reason);
                let _ = app.store.record_error(&order.order_id, &reason).await;
                Err(Failure::Refused(reason))
            }
        },
        Ok(QueryResult::NotPaid) if order.expires_at > now => Ok(Resolution::AlreadyMoved),
        Ok(QueryResult::NotPaid) => match provider.close(order).await {
            Ok(()) => expire(app, order, now).await,
            Err(e) => Err(Failure::Provider(format!("close failed: {e}"))),
        },
        Ok(QueryResult::Closed) if order.expires_at <= now => expire(app, order, now).await,
        Ok(QueryResult::Closed) => Ok(Resolution::AlreadyMoved),
        Err(ProviderError::Unavailable(e)) => Err(Failure::Provider(e)),
        Err(ProviderError::Refused(e)) => {
            let reason = format!("provider refused the query: {e}");
            tracing::error!(order_id = %order.order_id, %reason);
            let _ = app.store.record_error(&order.order_id, &reason).await;
            Err(Failure::Refused(reason))
        }
    }
}

async fn expire(app: &App, order: &Order, now: i64) -> Result<Resolution, Failure> {
    match app
        .store
        .close_order(
            order,
            OrderState::Expired,
            now,
            app.config.order_retained_until(now),
        )
        .await
        .map_err(Failure::Store)?
    {
        TransitionOutcome::Done(_) => {
            tracing::info!(order_id = %order.order_id, provider = %order.provider, "order expired");
            Ok(Resolution::Expired)
        }
        TransitionOutcome::Conflict(_) | TransitionOutcome::UnknownOrder => {
            Ok(Resolution::AlreadyMoved)
        }
    }
}

//! Writing a store subscription's new state together with what it changed: the events and
//! the day's figures of `domain::subscription`, decided on the record as read and written
//! under the condition that it is still that record. When another message got there first
//! (a newer read is returned by the failed write), the change is decided again on it, a
//! few times; a message no newer than what is stored writes nothing.
//!
//! Purchases nobody could be bound to, or that a second account claims, change nothing
//! stored: their events (`purchase.unattributed`, `purchase.conflict`) are written alone,
//! once per purchase, transaction and account.

use super::ServiceError;
use crate::app::App;
use crate::domain::event::EventType;
use crate::domain::subscription::{self, Facts, Version};
use crate::domain::Money;
use crate::store::{PurchaseOutcome, StorePurchase};

/// How often a write decided on a record that changed meanwhile is decided again.
const ATTEMPTS: usize = 4;

/// What the store said beside the record (for the figures and events).
#[derive(Debug, Clone, Default)]
pub(super) struct Reported {
    pub price: Option<Money>,
    pub auto_renew_off: bool,
}

fn version(p: &StorePurchase) -> Version<'_> {
    Version {
        state: p.state,
        last_txn_id: p.last_txn_id.as_deref(),
        last_event_at: p.last_event_at,
        expires_at: p.expires_at,
    }
}

/// Writes `build(record read)` with its change, starting from `existing` (the caller's
/// read). Answers the outcome and the record it tried to write last.
pub(super) async fn write(
    app: &App,
    mut existing: Option<StorePurchase>,
    source_id: &str,
    reported: &Reported,
    build: impl Fn(Option<&StorePurchase>) -> StorePurchase,
) -> Result<(PurchaseOutcome, StorePurchase), ServiceError> {
    for _ in 0..ATTEMPTS {
        let p = build(existing.as_ref());
        if let Some(old) = existing {
            if old.user_id != p.user_id {
                return Ok((PurchaseOutcome::OwnedByOther(Box::new(old)), p));
            }
            if old.last_event_at >= p.last_event_at {
                return Ok((PurchaseOutcome::Stale(Box::new(old)), p));
            }
            existing = Some(old);
        }
        let facts = Facts {
            store: &p.store,
            source_id,
            user_id: &p.user_id,
            product_id: &p.product_id,
            price: reported.price,
            auto_renew_off: reported.auto_renew_off,
            at: app.clock.now(),
        };
        let before = existing.as_ref().map(version);
        let change = subscription::change(before.as_ref(), &version(&p), &facts);
        match app.store.put_purchase_change(&p, &change).await? {
            PurchaseOutcome::Stale(old) if old.last_event_at < p.last_event_at => {
                existing = Some(*old);
            }
            other => return Ok((other, p)),
        }
    }
    Err(ServiceError::Unavailable(
        "the purchase kept changing while it was written".into(),
    ))
}

/// A purchase's `purchase.unattributed` or `purchase.conflict` event, written once.
#[allow(clippy::too_many_arguments)]
pub(super) async fn tell(
    app: &App,
    kind: EventType,
    store: &str,
    source_id: &str,
    user_id: &str,
    product_id: &str,
    store_product_id: &str,
    transaction_id: Option<&str>,
    owner: Option<&str>,
    reason: &str,
) -> Result<(), ServiceError> {
    let facts = Facts {
        store,
        source_id,
        user_id,
        product_id,
        price: None,
        auto_renew_off: false,
        at: app.clock.now(),
    };
    let event = subscription::purchase_event(
        kind,
        &facts,
        store_product_id,
        transaction_id,
        owner,
        reason,
    );
    if !app.store.put_events(&[event]).await? {
        tracing::info!(
            event = kind.as_str(),
            "store purchase event recorded already"
        );
    }
    Ok(())
}

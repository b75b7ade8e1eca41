//! Running queued jobs (the verifier). Each outcome maps to the queue's retry policy:
//! done → deleted; transient failure → visible again after backoff; malformed → dead letter.

use super::sweep::{resolve, Failure};
use crate::app::App;
use crate::domain::retry::{full_jitter, VERIFY_BASE_S, VERIFY_CAP_S};
use crate::domain::{OrderId, OrderState};
use crate::queue::{Job, JobOutcome};

pub async fn run(app: &App, body: &str, receive_count: u32) -> JobOutcome {
    let job: Job = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(e) => {
            return JobOutcome::DeadLetter {
                reason: format!("malformed job: {e}"),
            }
        }
    };
    let retry = |reason: String| JobOutcome::Retry {
        delay_s: full_jitter(
            receive_count,
            VERIFY_BASE_S,
            VERIFY_CAP_S,
            u32::from_le_bytes(crate::crypto::random_bytes()),
        ),
        reason,
    };
    let store_outcome = |r: Result<(), super::google_purchases::Failure>| match r {
        Ok(()) => JobOutcome::Done,
        Err(super::google_purchases::Failure::Retry(reason)) => retry(reason),
        Err(super::google_purchases::Failure::Permanent(reason)) => {
            tracing::warn!(reason, "store purchase job failed for good");
            JobOutcome::Done
        }
    };
    match job {
        Job::VerifyGooglePurchase {
            purchase_token,
            product_id,
            user_id,
            order_id,
        } => {
            let r = super::google_purchases::verify(
                app,
                &purchase_token,
                &product_id,
                user_id.as_deref(),
                order_id.as_deref(),
            )
            .await;
            if let Ok(status) = &r {
                tracing::info!(status = status.as_str(), "Play purchase verified");
            }
            store_outcome(r.map(|_| ()))
        }
        Job::AcknowledgeGooglePurchase {
            purchase_token,
            product_id,
            subscription,
            consume,
        } => store_outcome(
            super::google_purchases::acknowledge(
                app,
                &purchase_token,
                &product_id,
                subscription,
                consume,
            )
            .await,
        ),
        Job::RequeryOrder { order_id } => {
            let Ok(id) = OrderId::parse(&order_id) else {
                return JobOutcome::DeadLetter {
                    reason: "malformed job: bad order id".into(),
                };
            };
            let order = match app.store.get_order(&id).await {
                Ok(Some(o)) => o,
                Ok(None) => {
                    tracing::warn!(order_id, "re-query for an unknown order dropped");
                    return JobOutcome::Done;
                }
                Err(e) => return retry(e.to_string()),
            };
            if !OrderState::PAYABLE.contains(&order.state) {
                return JobOutcome::Done;
            }
            // An EXPIRED or CANCELLED order can still be found paid (a late payment); only a
            // PENDING one past its expiry is expired here.
            let now = app.clock.now();
            let mut view = order.clone();
            if view.state != OrderState::Pending {
                view.expires_at = i64::MAX;
            }
            match resolve(app, &view, now).await {
                Ok(_) => JobOutcome::Done,
                // Recorded on the order by `resolve`; the message is done.
                Err(Failure::Refused(_)) => JobOutcome::Done,
                Err(Failure::Provider(reason)) => retry(reason),
                Err(Failure::Store(e)) => retry(e.to_string()),
            }
        }
    }
}

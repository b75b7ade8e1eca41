//! Delivering one event record to its line's endpoints, and writing how it went back on
//! the record. The same code serves every runner (the local server's in-process loop, a
//! function fed by the table's stream): what a runner adds is only when it calls.
//!
//! At least once: the delivery state is written after the POST, so a crash between the two
//! sends the event again, under the same `webhook-id`, which receivers dedupe on.

use super::secrets::WebhookSecrets;
use super::sign::sign;
use crate::config::{err, ConfigError};
use crate::domain::event::{Delivery, DeliveryState, EventRecord};
use crate::domain::line::{Line, Lines};
use crate::domain::retry::full_jitter;
use crate::providers::outbound::HttpClient;
use crate::store::{Guarded, Store, StoreError};
use bytes::Bytes;
use http::Method;
use std::collections::BTreeSet;
use std::sync::Arc;

/// When failed deliveries are tried again and when they are given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay ceiling (`WEBHOOK_RETRY_BASE_SECONDS`, default 30): each
    /// attempt doubles it, with full jitter.
    pub base_s: u32,
    /// The longest delay (`WEBHOOK_RETRY_MAX_SECONDS`, default 3600).
    pub cap_s: u32,
    /// How long after the event a delivery is still tried (`WEBHOOK_GIVE_UP_SECONDS`,
    /// default 3 days); then it is failed for good (dead-lettered, logged as an error).
    pub give_up_after_s: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_s: 30,
            cap_s: 3_600,
            give_up_after_s: 3 * 86_400,
        }
    }
}

impl RetryPolicy {
    /// Reads the policy's variables; a malformed one is an error naming it.
    pub fn from_lookup(get: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = RetryPolicy::default();
        let num = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(err(
                        name,
                        format!("must be a whole number of seconds, 1 to {max}"),
                    )),
                },
            }
        };
        let base_s = num("WEBHOOK_RETRY_BASE_SECONDS", d.base_s.into(), 86_400)?;
        let cap_s = num("WEBHOOK_RETRY_MAX_SECONDS", d.cap_s.into(), 86_400)?;
        let give_up = num(
            "WEBHOOK_GIVE_UP_SECONDS",
            d.give_up_after_s.unsigned_abs(),
            30 * 86_400,
        )?;
        if cap_s < base_s {
            return Err(err(
                "WEBHOOK_RETRY_MAX_SECONDS",
                "must be at least WEBHOOK_RETRY_BASE_SECONDS",
            ));
        }
        Ok(RetryPolicy {
            base_s: u32::try_from(base_s).unwrap_or(u32::MAX),
            cap_s: u32::try_from(cap_s).unwrap_or(u32::MAX),
            give_up_after_s: i64::try_from(give_up).unwrap_or(i64::MAX),
        })
    }

    /// When attempt `attempts` (1 for the first failure) is followed by the next: at least a
    /// second later, within the doubling ceiling.
    pub fn next_try(&self, now: i64, attempts: u32, random: u32) -> i64 {
        now + 1 + i64::from(full_jitter(attempts, self.base_s, self.cap_s, random))
    }
}

/// How long a record is kept once every delivery is certain (its `ttl`), for operators.
pub const KEEP_DELIVERED_S: i64 = 7 * 86_400;

/// What one pass over a record did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// POSTs sent.
    pub sent: u32,
    /// The earliest retry due, when a delivery is still pending.
    pub next_try: Option<i64>,
    /// Deliveries of the record given up for good (`Failed`), after this pass.
    pub failed: u32,
}

/// The earliest retry due among `record`'s pending deliveries, and how many it gave up.
fn outlook(record: &EventRecord) -> (Option<i64>, u32) {
    let next = record
        .deliveries
        .values()
        .filter(|d| d.state == DeliveryState::Pending)
        .filter_map(|d| d.next_try)
        .min();
    let failed = record
        .deliveries
        .values()
        .filter(|d| d.state == DeliveryState::Failed)
        .count();
    (next, u32::try_from(failed).unwrap_or(u32::MAX))
}

/// The delivery body: the event and the line it was routed to.
pub fn body(record: &EventRecord, line: &Line) -> Result<Vec<u8>, serde_json::Error> {
    let e = &record.event;
    serde_json::to_vec(&serde_json::json!({
        "id": e.id,
        "type": e.kind,
        "occurred_at": e.occurred_at,
        "user_id": e.user_id,
        "product_id": e.product_id,
        "line": line.id,
        "data": e.data,
    }))
}

pub struct Dispatcher {
    http: HttpClient,
    pub policy: RetryPolicy,
    secrets: Arc<WebhookSecrets>,
}

impl Dispatcher {
    /// A dispatcher with its own cache of referenced keys.
    pub fn new(http: HttpClient, policy: RetryPolicy) -> Self {
        let secrets = Arc::new(WebhookSecrets::new(Default::default()));
        Dispatcher {
            http,
            policy,
            secrets,
        }
    }

    /// Reads referenced keys through `secrets` (the app's, kept for the process).
    pub fn with_secrets(mut self, secrets: Arc<WebhookSecrets>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Sends `record` to each endpoint of its line that wants its type and has no final
    /// answer yet, when due (or at once with `force`: an operator's redelivery, which also
    /// sends again what was delivered), then writes the new state conditioned on the
    /// version read. `disabled` are the endpoints a 410 disabled. A lost race (another
    /// dispatcher wrote first) is not an error: that one's state stands.
    pub async fn deliver(
        &self,
        store: &dyn Store,
        lines: &Lines,
        mut record: EventRecord,
        disabled: &BTreeSet<String>,
        now: i64,
        force: bool,
    ) -> Result<Pass, StoreError> {
        let line = lines.line_of(record.event.product_id.as_deref());
        let mut pass = Pass::default();
        let mut changed = false;
        let payload = body(&record, line)
            .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", record.event.id)))?;
        let (event_id, kind, occurred_at) = (
            record.event.id.clone(),
            record.event.kind,
            record.event.occurred_at,
        );
        for hook in line.webhooks.iter().filter(|w| w.wants(kind)) {
            let d = record
                .deliveries
                .entry(hook.url.clone())
                .or_insert(Delivery {
                    state: DeliveryState::Pending,
                    attempts: 0,
                    last_status: None,
                    last_attempt_at: None,
                    next_try: Some(now),
                });
            if disabled.contains(&hook.url) {
                if d.state != DeliveryState::Disabled {
                    d.state = DeliveryState::Disabled;
                    d.next_try = None;
                    changed = true;
                }
                continue;
            }
            let due = d.state == DeliveryState::Pending && d.next_try.is_none_or(|t| t <= now);
            if !(due || force) {
                continue;
            }
            // A key that cannot be had (a reference unreadable now) is an attempt that got
            // no answer: logged, and tried again like one, never skipped.
            let status = match self.secrets.keys(&hook.secrets).await {
                Err(e) => {
                    tracing::error!(event_id = %event_id, line = %line.id, url = %hook.url, error = %e, "webhook signing key unavailable: not sent, tried again");
                    None
                }
                Ok(keys) => {
                    let headers = sign(&event_id, now, &payload, &keys);
                    let mut all: Vec<(&str, &str)> = headers.pairs().to_vec();
                    all.push(("content-type", "application/json"));
                    all.push(("user-agent", "tollgate-webhooks"));
                    pass.sent += 1;
                    match self
                        .http
                        .call(
                            "webhook",
                            Method::POST,
                            &hook.url,
                            &all,
                            Bytes::from(payload.clone()),
                        )
                        .await
                    {
                        Ok((status, _)) => Some(status.as_u16()),
                        Err(e) => {
                            tracing::warn!(event_id = %event_id, url = %hook.url, error = %e, "webhook not answered");
                            None
                        }
                    }
                }
            };
            changed = true;
            d.attempts = d.attempts.saturating_add(1);
            d.last_status = status;
            d.last_attempt_at = Some(now);
            match status {
                Some(s) if (200..300).contains(&s) => {
                    d.state = DeliveryState::Delivered;
                    d.next_try = None;
                }
                Some(410) => {
                    d.state = DeliveryState::Disabled;
                    d.next_try = None;
                    tracing::warn!(line = %line.id, url = %hook.url, "webhook endpoint answered 410 Gone: disabled");
                    store.disable_endpoint(&hook.url, now).await?;
                }
                _ if now - occurred_at >= self.policy.give_up_after_s => {
                    d.state = DeliveryState::Failed;
                    d.next_try = None;
                    tracing::error!(event_id = %event_id, kind = kind.as_str(), url = %hook.url, attempts = d.attempts, "webhook given up: dead-lettered");
                    crate::metrics::count("WebhooksDeadLettered", 1, &[("Line", &line.id)]);
                }
                _ => {
                    let random = u32::from_be_bytes(crate::crypto::random_bytes::<4>());
                    d.next_try = Some(self.policy.next_try(now, d.attempts, random));
                }
            }
        }
        (pass.next_try, pass.failed) = outlook(&record);
        if !changed {
            return Ok(pass);
        }
        let expires = pass.next_try.is_none().then_some(now + KEEP_DELIVERED_S);
        record.version += 1;
        match store.put_event_deliveries(&record, expires).await? {
            Guarded::Written => Ok(pass),
            Guarded::Changed(stored) => {
                tracing::info!(event_id = %record.event.id, "delivery state written by another dispatcher");
                (pass.next_try, pass.failed) = stored.as_ref().map(outlook).unwrap_or((None, 0));
                Ok(pass)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_reads_its_variables() {
        let p = RetryPolicy::from_lookup(|n| match n {
            "WEBHOOK_RETRY_BASE_SECONDS" => Some("1".into()),
            "WEBHOOK_RETRY_MAX_SECONDS" => Some("4".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((p.base_s, p.cap_s, p.give_up_after_s), (1, 4, 3 * 86_400));
        for attempts in 1..20 {
            for r in [0, 3, u32::MAX] {
                let t = p.next_try(100, attempts, r);
                assert!((101..=105).contains(&t), "{t}");
            }
        }
        assert_eq!(
            RetryPolicy::from_lookup(|_| None).unwrap(),
            RetryPolicy::default()
        );
        for bad in ["0", "x", "-1", "99999999"] {
            let e = RetryPolicy::from_lookup(|n| {
                (n == "WEBHOOK_RETRY_BASE_SECONDS").then(|| bad.to_owned())
            })
            .unwrap_err();
            assert_eq!(e.name, "WEBHOOK_RETRY_BASE_SECONDS", "{e}");
        }
        assert!(RetryPolicy::from_lookup(|n| match n {
            "WEBHOOK_RETRY_BASE_SECONDS" => Some("10".into()),
            "WEBHOOK_RETRY_MAX_SECONDS" => Some("5".into()),
            _ => None,
        })
        .is_err());
    }
}

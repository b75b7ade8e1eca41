//! Operators' view of the outbox: the events recorded, with how their delivery went, and
//! sending one again. The records are written by each change itself (`store`), delivered by
//! `webhook::deliver`.

use super::ServiceError;
use crate::app::App;
use crate::domain::event::{is_event_id, sort_key, EventRecord, EventType};
use crate::webhook::deliver::Dispatcher;
use std::collections::BTreeSet;

/// Records per page when the caller does not say, and the most one page may hold.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;
/// Without `since`, the last day.
pub const DEFAULT_WINDOW_S: i64 = 86_400;

pub struct Query<'a> {
    pub since: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub line: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub cursor: Option<&'a str>,
}

pub struct Page {
    /// Each record with the line it belongs to now.
    pub records: Vec<(EventRecord, String)>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

fn valid_cursor(c: &str) -> bool {
    c.len() == 49
        && c.as_bytes()[..12].iter().all(u8::is_ascii_digit)
        && c.as_bytes()[12] == b'#'
        && is_event_id(&c[13..])
}

/// One page of events, oldest first, from `since` (unix seconds or RFC 3339; default a day
/// ago) to now, of one `type` and one `line` when given. Filtering happens after the read,
/// so a page may hold fewer than `limit` while more follow.
pub async fn list(app: &App, q: &Query<'_>) -> Result<Page, ServiceError> {
    let bad = |m: &str| ServiceError::BadRequest(m.to_owned());
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| bad("limit must be 1-100"))?,
    };
    let now = app.clock.now();
    let since = match q.since {
        None => now - DEFAULT_WINDOW_S,
        Some(s) => super::audit::parse_since(s)
            .ok_or_else(|| bad("since must be unix seconds or an RFC 3339 time"))?,
    };
    let kind = q
        .kind
        .map(|k| EventType::parse(k).ok_or_else(|| bad("type is not an event type")))
        .transpose()?;
    let catalog = app.catalog.current();
    let lines = catalog.lines();
    if let Some(l) = q.line {
        if lines.get(l).is_none() {
            return Err(bad("line is not a line of the catalog"));
        }
    }
    if let Some(c) = q.cursor {
        if !valid_cursor(c) {
            return Err(bad("cursor is not one this API handed out"));
        }
    }
    let page = app.store.events_since(since, now, limit, q.cursor).await?;
    let next_cursor = if page.more {
        page.records.last().map(|r| sort_key(&r.event))
    } else {
        None
    };
    let records = page
        .records
        .into_iter()
        .filter(|r| kind.is_none_or(|k| r.event.kind == k))
        .map(|r| {
            let line = lines.line_of(r.event.product_id.as_deref()).id.clone();
            (r, line)
        })
        .filter(|(_, line)| q.line.is_none_or(|l| l == line))
        .collect();
    Ok(Page {
        records,
        next_cursor,
    })
}

/// Sends event `id` again to every endpoint of its line that wants it, delivered or not
/// (a disabled endpoint stays disabled), and answers the record as written.
pub async fn redeliver(app: &App, id: &str) -> Result<(EventRecord, String), ServiceError> {
    if !is_event_id(id) {
        return Err(ServiceError::BadRequest("not an event id".into()));
    }
    let Some(record) = app.store.get_event(id).await? else {
        return Err(ServiceError::NotFound(format!("no event {id}")));
    };
    let catalog = app.catalog.current();
    let lines = catalog.lines();
    let disabled: BTreeSet<String> = app
        .store
        .disabled_endpoints()
        .await?
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    let http = app.http.client().map_err(ServiceError::Unavailable)?;
    let dispatcher =
        Dispatcher::new(http, app.config.webhook_retry).with_secrets(app.webhook_secrets.clone());
    dispatcher
        .deliver(&*app.store, lines, record, &disabled, app.clock.now(), true)
        .await?;
    let written = app
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no event {id}")))?;
    let line = lines
        .line_of(written.event.product_id.as_deref())
        .id
        .clone();
    Ok((written, line))
}

/// The endpoints a 410 Gone disabled, with when (unix seconds): one query.
pub async fn disabled(app: &App) -> Result<Vec<(String, i64)>, ServiceError> {
    Ok(app.store.disabled_endpoints().await?)
}

/// Enables endpoint `url` again (its owner fixed it): new events are sent to it again;
/// events recorded while it was disabled are sent by a redelivery each (their deliveries
/// say `disabled`). Recorded in the audit trail under the operator. Not disabled: NotFound.
pub async fn enable(
    app: &App,
    url: &str,
    reason: Option<&str>,
    op: &super::operator::Operator,
) -> Result<(), ServiceError> {
    let reason = super::moderation::optional_reason(reason)?;
    let not_disabled = || ServiceError::NotFound(format!("endpoint {url:?} is not disabled"));
    let Some((_, since)) = app
        .store
        .disabled_endpoints()
        .await?
        .into_iter()
        .find(|(u, _)| u == url)
    else {
        return Err(not_disabled());
    };
    let audit = crate::domain::audit::AuditRecord {
        before: serde_json::json!({"url": url, "disabled_at": crate::domain::time::rfc3339(since)}),
        after: serde_json::Value::Null,
        reason,
        ..op.record(
            crate::domain::audit::AuditAction::EnableWebhook,
            app.clock.now_ms(),
        )
    };
    if !app.store.enable_endpoint(url, &audit).await? {
        return Err(not_disabled());
    }
    tracing::info!(url = %url, actor = %op.actor, "webhook endpoint enabled again");
    Ok(())
}

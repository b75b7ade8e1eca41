//! Reading the audit trail back a page at a time, by user (newest first) or by time (oldest
//! first): one store query per page. The records are written by each change itself (see
//! [`super::operator`]).

use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::audit::{cursor_of, parse_cursor, AuditRecord};
use crate::domain::time::parse_rfc3339;

/// Records per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 50;
/// The most a caller may ask for in one page.
pub const MAX_LIMIT: usize = 100;

pub struct Page {
    pub records: Vec<AuditRecord>,
    /// Where the next page starts; `None` on the last page. Opaque to callers.
    pub next_cursor: Option<String>,
}

/// `since` as callers write it: unix seconds or RFC 3339.
pub fn parse_since(text: &str) -> Option<i64> {
    match text.parse::<i64>() {
        Ok(s) if s >= 0 => Some(s),
        Ok(_) => None,
        Err(_) => parse_rfc3339(text).filter(|s| *s >= 0),
    }
}

/// One page of the trail: `user_id`'s records newest first (from `since` when given), or
/// with `since` alone everyone's oldest first. Parameters as the caller sent them.
pub async fn list(
    app: &App,
    user_id: Option<&str>,
    since: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<Page, ServiceError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ServiceError::BadRequest(format!("limit must be 1-{MAX_LIMIT}")))?,
    };
    let since = since
        .map(|s| {
            parse_since(s).ok_or_else(|| {
                ServiceError::BadRequest("since must be unix seconds or an RFC 3339 time".into())
            })
        })
        .transpose()?;
    let cursor = cursor
        .map(|c| {
            parse_cursor(c).ok_or_else(|| {
                ServiceError::BadRequest("cursor is not one this API handed out".into())
            })
        })
        .transpose()?;
    let page = match (user_id, since) {
        (Some(u), since) => {
            if !valid_user_id(u) {
                return Err(ServiceError::BadRequest("invalid user id".into()));
            }
            app.store
                .user_audit(u, limit, cursor.as_deref(), since)
                .await?
        }
        (None, Some(since)) => {
            app.store
                .audit_since(since, limit, cursor.as_deref())
                .await?
        }
        (None, None) => {
            return Err(ServiceError::BadRequest(
                "user_id or since is required".into(),
            ))
        }
    };
    let next_cursor = if page.more {
        page.records.last().map(|r| cursor_of(&r.sort_key()))
    } else {
        None
    };
    Ok(Page {
        records: page.records,
        next_cursor,
    })
}

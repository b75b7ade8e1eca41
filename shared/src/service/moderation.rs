//! Operators against abuse: rotating a stream's publish key, banning a user from a stream
//! or from all of them, lifting a ban. Each reads what it replaces, then writes the change
//! and its audit record in one transaction conditioned on that read (read again and retried
//! when another change got there first), so the record's `before` is exact.

use super::operator::Operator;
use super::ServiceError;
use crate::app::App;
use crate::domain::audit::{AuditAction, AuditRecord};
use crate::domain::ban::{self, Ban, ALL_STREAMS};
use crate::domain::publish_key::{self, PublishKey};
use crate::domain::time::rfc3339;
use crate::store::Guarded;
use serde_json::{json, Value};

/// How many times a change is tried again after another change of the same item won.
pub(crate) const ATTEMPTS: usize = 8;

fn busy(what: &str) -> ServiceError {
    ServiceError::Busy(format!("{what} kept changing under this request; retry"))
}

/// A ban as the audit trail shows it.
pub fn ban_json(b: &Ban) -> Value {
    json!({
        "stream_id": b.scope,
        "until": b.until.map(rfc3339),
        "reason": b.reason,
        "created_at": rfc3339(b.created_at),
        "created_by": b.created_by,
    })
}

/// A publish key as the audit trail shows it: never the key, nor its hash.
fn key_json(k: &PublishKey) -> Value {
    json!({
        "version": k.version,
        "rotated_at": rfc3339(k.rotated_at),
        "rotated_by": k.rotated_by,
    })
}

/// A new publish key, shown once: only its hash is stored.
#[derive(Debug, Clone)]
pub struct RotatedKey {
    pub key: String,
    pub stored: PublishKey,
}

/// Replaces the stream's publish key; the previous one is refused from the moment this
/// returns. The operator is stored with the key and in the audit record.
pub async fn rotate_publish_key(
    app: &App,
    stream_id: &str,
    op: &Operator,
) -> Result<RotatedKey, ServiceError> {
    if app.catalog.current().stream(stream_id).is_none() {
        return Err(ServiceError::NotFound(format!(
            "unknown stream {stream_id:?}"
        )));
    }
    let key = publish_key::generate();
    let mut current = app.store.publish_key(stream_id).await?;
    for _ in 0..ATTEMPTS {
        let now_ms = app.clock.now_ms();
        let stored = PublishKey {
            hash: publish_key::hash(&key),
            version: current.as_ref().map_or(0, |k| k.version) + 1,
            rotated_at: now_ms.div_euclid(1000),
            rotated_by: Some(op.actor.clone()),
        };
        let audit = AuditRecord {
            stream_id: Some(stream_id.to_owned()),
            before: current.as_ref().map_or(Value::Null, key_json),
            after: key_json(&stored),
            ..op.record(AuditAction::RotatePublishKey, now_ms)
        };
        match app
            .store
            .rotate_publish_key(stream_id, &stored, current.as_ref(), &audit)
            .await?
        {
            Guarded::Written => {
                tracing::info!(stream = %stream_id, version = stored.version, actor = %op.actor, "publish key rotated");
                return Ok(RotatedKey { key, stored });
            }
            Guarded::Changed(now) => current = now,
        }
    }
    Err(busy("the publish key"))
}

/// What an operator asks for when banning.
#[derive(Debug, Clone)]
pub struct BanRequest {
    /// `None`: every stream.
    pub stream_id: Option<String>,
    pub until: Option<i64>,
    pub reason: String,
}

/// Longest reason kept (a ban's is shown to the user and stored in their partition).
pub(crate) const MAX_REASON_LEN: usize = 500;

/// An operator's optional reason, trimmed: absent, or 1 to [`MAX_REASON_LEN`] bytes.
pub(crate) fn optional_reason(reason: Option<&str>) -> Result<Option<String>, ServiceError> {
    match reason.map(str::trim) {
        Some(r) if r.is_empty() || r.len() > MAX_REASON_LEN => Err(ServiceError::BadRequest(
            format!("reason must be 1-{MAX_REASON_LEN} bytes"),
        )),
        r => Ok(r.map(str::to_owned)),
    }
}

/// Users are ids from the identity provider: bounded and printable, like device ids.
fn valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Bans `user_id`, replacing a ban of the same scope; the operator is stored with the ban
/// and in the audit record. `(ban, replaced)`.
pub async fn ban(
    app: &App,
    user_id: &str,
    req: BanRequest,
    op: &Operator,
) -> Result<(Ban, bool), ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let scope = scope_of(app, req.stream_id.as_deref())?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(ServiceError::BadRequest(format!(
            "reason must be 1-{MAX_REASON_LEN} bytes"
        )));
    }
    let now = app.clock.now();
    if req.until.is_some_and(|u| u <= now) {
        return Err(ServiceError::BadRequest(
            "until is not in the future".into(),
        ));
    }
    let b = Ban {
        scope,
        until: req.until,
        reason: reason.to_owned(),
        created_at: now,
        created_by: Some(op.actor.clone()),
    };
    let mut current = stored_ban(app, user_id, &b.scope).await?;
    for _ in 0..ATTEMPTS {
        let audit = AuditRecord {
            user_id: Some(user_id.to_owned()),
            stream_id: Some(b.scope.clone()),
            before: current.as_ref().map_or(Value::Null, ban_json),
            after: ban_json(&b),
            reason: Some(b.reason.clone()),
            ..op.record(AuditAction::Ban, app.clock.now_ms())
        };
        match app
            .store
            .put_ban(user_id, &b, current.as_ref(), &audit)
            .await?
        {
            Guarded::Written => {
                let replaced = current.is_some();
                tracing::info!(user = %user_id, scope = %b.scope, until = ?b.until, replaced, actor = %op.actor, "user banned");
                return Ok((b, replaced));
            }
            Guarded::Changed(now) => current = now,
        }
    }
    Err(busy("the ban"))
}

/// The user's ban of `scope` as stored, from one query of their partition.
async fn stored_ban(app: &App, user_id: &str, scope: &str) -> Result<Option<Ban>, ServiceError> {
    Ok(app
        .store
        .user_items(user_id)
        .await?
        .bans
        .into_iter()
        .find(|b| b.scope == scope))
}

/// Lifts the user's ban of `scope` (a stream id or `*`); `NotFound` when there is none.
/// The operator and `reason` (optional) are in the audit record.
pub async fn lift_ban(
    app: &App,
    user_id: &str,
    scope: &str,
    reason: Option<&str>,
    op: &Operator,
) -> Result<(), ServiceError> {
    if !valid_user_id(user_id) || !ban::valid_scope(scope) {
        return Err(ServiceError::NotFound("no such ban".into()));
    }
    let reason = optional_reason(reason)?;
    let not_found = || ServiceError::NotFound(format!("user {user_id:?} has no ban of {scope:?}"));
    let mut current = stored_ban(app, user_id, scope).await?;
    for _ in 0..ATTEMPTS {
        let Some(b) = current else {
            return Err(not_found());
        };
        let audit = AuditRecord {
            user_id: Some(user_id.to_owned()),
            stream_id: Some(scope.to_owned()),
            before: ban_json(&b),
            after: Value::Null,
            reason: reason.clone(),
            ..op.record(AuditAction::LiftBan, app.clock.now_ms())
        };
        match app.store.lift_ban(user_id, &b, &audit).await? {
            Guarded::Written => {
                tracing::info!(user = %user_id, scope = %scope, actor = %op.actor, "ban lifted");
                return Ok(());
            }
            Guarded::Changed(now) => current = now,
        }
    }
    Err(busy("the ban"))
}

/// The scope a ban request names: a catalog stream, or every stream.
fn scope_of(app: &App, stream_id: Option<&str>) -> Result<String, ServiceError> {
    match stream_id {
        None => Ok(ALL_STREAMS.to_owned()),
        Some(ALL_STREAMS) => Ok(ALL_STREAMS.to_owned()),
        Some(id) if app.catalog.current().stream(id).is_some() => Ok(id.to_owned()),
        Some(id) => Err(ServiceError::NotFound(format!("unknown stream {id:?}"))),
    }
}

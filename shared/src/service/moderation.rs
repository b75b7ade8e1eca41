//! Operators against abuse: rotating a stream's publish key, banning a user from a stream
//! or from all of them, lifting a ban. Each is one store write.

use super::ServiceError;
use crate::app::App;
use crate::domain::ban::{self, Ban, ALL_STREAMS};
use crate::domain::publish_key::{self, PublishKey};

/// A new publish key, shown once: only its hash is stored.
#[derive(Debug, Clone)]
pub struct RotatedKey {
    pub key: String,
    pub stored: PublishKey,
}

/// Replaces the stream's publish key; the previous one is refused from the moment this
/// returns. `actor` (the operator) is stored with the key.
pub async fn rotate_publish_key(
    app: &App,
    stream_id: &str,
    actor: &str,
) -> Result<RotatedKey, ServiceError> {
    if app.catalog.current().stream(stream_id).is_none() {
        return Err(ServiceError::NotFound(format!(
            "unknown stream {stream_id:?}"
        )));
    }
    let key = publish_key::generate();
    let stored = app
        .store
        .rotate_publish_key(stream_id, &publish_key::hash(&key), actor, app.clock.now())
        .await?;
    tracing::info!(stream = %stream_id, version = stored.version, actor, "publish key rotated");
    Ok(RotatedKey { key, stored })
}

/// What an operator asks for when banning.
#[derive(Debug, Clone)]
pub struct BanRequest {
    /// `None`: every stream.
    pub stream_id: Option<String>,
    pub until: Option<i64>,
    pub reason: String,
}

/// Longest ban reason kept (it is shown to the user and stored in their partition).
const MAX_REASON_LEN: usize = 500;

/// Users are ids from the identity provider: bounded and printable, like device ids.
fn valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Bans `user_id`, replacing a ban of the same scope; `actor` (the operator) is stored with
/// the ban. `(ban, replaced)`.
pub async fn ban(
    app: &App,
    user_id: &str,
    req: BanRequest,
    actor: &str,
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
        created_by: Some(actor.to_owned()),
    };
    let replaced = app.store.put_ban(user_id, &b).await?.is_some();
    tracing::info!(user = %user_id, scope = %b.scope, until = ?b.until, replaced, actor, "user banned");
    Ok((b, replaced))
}

/// Lifts the user's ban of `scope` (a stream id or `*`); `NotFound` when there is none.
/// `actor` (the operator) is logged.
pub async fn lift_ban(
    app: &App,
    user_id: &str,
    scope: &str,
    actor: &str,
) -> Result<(), ServiceError> {
    if !valid_user_id(user_id) || !ban::valid_scope(scope) {
        return Err(ServiceError::NotFound("no such ban".into()));
    }
    if !app.store.lift_ban(user_id, scope).await? {
        return Err(ServiceError::NotFound(format!(
            "user {user_id:?} has no ban of {scope:?}"
        )));
    }
    tracing::info!(user = %user_id, scope = %scope, actor, "ban lifted");
    Ok(())
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

//! Operators' grants: a promotion (`promo#<id>`, stacking like a purchase) given under an
//! Idempotency-Key, and revoking a grant by hand (a promotion, or an order's grant without
//! refunding it). Each writes its grants and its audit record in one transaction.
//!
//! A store purchase's grants (`apple:`/`google:` sources) cannot be revoked here: the store
//! rewrites them whole with each of its messages, which would undo a revocation silently.
//! Its refund or revocation goes through the store; to keep a user away now, ban them.

use super::moderation::{ATTEMPTS, MAX_REASON_LEN};
use super::operator::Operator;
use super::ServiceError;
use crate::api::auth::valid_user_id;
use crate::app::App;
use crate::domain::audit::{AuditAction, AuditRecord};
use crate::domain::grant::{self, Grant, Term, DAY};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::domain::{OfferError, OrderId};
use crate::store::{AdminKey, Guarded, KeyedOutcome};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The longest promotion, in days, and how far ahead a fixed window may end.
pub const MAX_DAYS: i64 = 3650;
/// The most scopes one promotion names.
pub const MAX_SCOPES: usize = 16;
/// The product id a promotion of bare scopes carries.
pub const PROMO_PRODUCT: &str = "promo";

/// `POST /admin/users/{user}/grants`, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub product_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub days: Option<i64>,
    /// RFC 3339.
    pub until: Option<String>,
    pub reason: String,
}

/// A grant as operators see it (the user view, the audit trail).
pub fn grant_json(g: &Grant) -> Value {
    json!({
        "scope": g.scope,
        "product_id": g.product_id,
        "source_id": g.source_id,
        "paid_at": rfc3339(g.paid_at),
        "term": g.term,
        "revoked_at": g.revoked_at.map(rfc3339),
        "revoked_by": g.revoked_by,
        "revoke_reason": g.revoke_reason,
    })
}

pub(super) fn reason_of(text: &str) -> Result<String, ServiceError> {
    let r = text.trim();
    if r.is_empty() || r.len() > MAX_REASON_LEN {
        return Err(ServiceError::BadRequest(format!(
            "reason must be 1-{MAX_REASON_LEN} bytes"
        )));
    }
    Ok(r.to_owned())
}

pub(super) fn check_key(key: Option<&str>) -> Result<&str, ServiceError> {
    match key {
        None => Err(ServiceError::BadRequest(
            "an Idempotency-Key header is required".into(),
        )),
        // The same rule as an order's key (printable, bounded: it becomes part of a key).
        Some(k) if !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(k)
        }
        Some(_) => Err(ServiceError::BadRequest(
            "Idempotency-Key must be 1-128 printable ASCII characters".into(),
        )),
    }
}

pub(super) fn hash_of(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// The answer to a repeat of `key`: the first answer when the request is the same.
pub(super) fn replay(used: AdminKey, request_hash: &str) -> Result<Value, ServiceError> {
    if used.request_hash != request_hash {
        return Err(ServiceError::IdempotencyMismatch);
    }
    Ok(used.result)
}

/// A promotion's grant, given or replayed.
pub enum Granted {
    New(Value),
    Replayed(Value),
}

/// What a promotion grants, checked against the catalog and the clock.
struct Promo {
    product_id: String,
    scopes: Vec<String>,
    term: Term,
}

fn promo_of(app: &App, req: &GrantRequest, now: i64) -> Result<Promo, ServiceError> {
    let catalog = app.catalog.current();
    let (product_id, scopes) = match (&req.product_id, &req.scopes) {
        (Some(p), None) => {
            let product = catalog
                .product(p)
                .ok_or_else(|| ServiceError::Offer(OfferError::UnknownProduct(p.clone())))?;
            if product.grants.is_empty() {
                return Err(ServiceError::Unprocessable(format!(
                    "product {p:?} grants no access (coins go through the wallet)"
                )));
            }
            (p.clone(), product.grants.clone())
        }
        (None, Some(list)) => {
            let mut scopes = list.clone();
            scopes.sort();
            scopes.dedup();
            if scopes.is_empty() || scopes.len() > MAX_SCOPES {
                return Err(ServiceError::Unprocessable(format!(
                    "scopes must name 1-{MAX_SCOPES} scopes"
                )));
            }
            let known = |s: &String| {
                catalog.products().iter().any(|p| p.grants.contains(s))
                    || catalog
                        .streams()
                        .iter()
                        .any(|st| st.requires_any.contains(s))
            };
            if let Some(unknown) = scopes.iter().find(|s| !known(s)) {
                return Err(ServiceError::Unprocessable(format!(
                    "scope {unknown:?} is not one the catalog grants or a stream requires"
                )));
            }
            (PROMO_PRODUCT.to_owned(), scopes)
        }
        _ => {
            return Err(ServiceError::Unprocessable(
                "give exactly one of product_id and scopes".into(),
            ))
        }
    };
    let term = match (req.days, &req.until) {
        (Some(d), None) if (1..=MAX_DAYS).contains(&d) => Term::Days(u32::try_from(d).unwrap_or(1)),
        (Some(_), None) => {
            return Err(ServiceError::Unprocessable(format!(
                "days must be 1-{MAX_DAYS}"
            )))
        }
        (None, Some(u)) => {
            let until = parse_rfc3339(u)
                .ok_or_else(|| ServiceError::BadRequest("until must be an RFC 3339 time".into()))?;
            if until <= now || until > now + MAX_DAYS * DAY {
                return Err(ServiceError::Unprocessable(format!(
                    "until must be in the future, at most {MAX_DAYS} days ahead"
                )));
            }
            Term::Window { from: now, until }
        }
        _ => {
            return Err(ServiceError::Unprocessable(
                "give exactly one of days and until".into(),
            ))
        }
    };
    Ok(Promo {
        product_id,
        scopes,
        term,
    })
}

/// The source id of the promotion made under `key` for `user_id`: the same key always
/// names the same promotion, so a repeat can never add a second one.
pub fn promo_source(user_id: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{user_id}\n{key}").as_bytes());
    format!("promo#{}", &hex::encode(digest)[..24])
}

/// Gives `user_id` a promotion under the operator's Idempotency-Key `key`: its grants, the
/// key and the audit record in one transaction, then the user's partition is read for the
/// promotion's stacked windows. A repeat with the same request answers the same, without
/// writing; with another request, [`ServiceError::IdempotencyMismatch`].
pub async fn grant(
    app: &App,
    user_id: &str,
    req: GrantRequest,
    key: Option<&str>,
    op: &Operator,
) -> Result<Granted, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let key = check_key(key)?;
    let reason = reason_of(&req.reason)?;
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let mut scopes_asked = req.scopes.clone();
    if let Some(s) = scopes_asked.as_mut() {
        s.sort();
        s.dedup();
    }
    let request_hash = hash_of(&json!([
        "grant",
        req.product_id,
        scopes_asked,
        req.days,
        req.until.as_deref().map(parse_rfc3339),
        reason
    ]));
    let promo = match promo_of(app, &req, now) {
        Ok(p) => p,
        // A repeat of a request that was fine then (its `until` has passed since, or the
        // catalog changed) is still answered as it was.
        Err(e) => {
            return match app.store.admin_key(user_id, key).await? {
                Some(used) => Ok(Granted::Replayed(
                    with_windows(app, user_id, replay(used, &request_hash)?).await?,
                )),
                None => Err(e),
            }
        }
    };
    let source_id = promo_source(user_id, key);
    let grants: Vec<Grant> = promo
        .scopes
        .iter()
        .map(|scope| Grant {
            scope: scope.clone(),
            product_id: promo.product_id.clone(),
            source_id: source_id.clone(),
            paid_at: now,
            term: promo.term,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: None,
        })
        .collect();
    let result = json!({
        "user_id": user_id,
        "source_id": source_id,
        "product_id": promo.product_id,
        "scopes": promo.scopes,
        "term": promo.term,
        "reason": reason,
        "granted_at": rfc3339(now),
        "granted_by": op.actor,
    });
    let admin_key = AdminKey {
        user_id: user_id.to_owned(),
        key: key.to_owned(),
        request_hash: request_hash.clone(),
        result: result.clone(),
        at: now,
    };
    let audit = AuditRecord {
        user_id: Some(user_id.to_owned()),
        before: Value::Null,
        after: json!(grants.iter().map(grant_json).collect::<Vec<_>>()),
        reason: Some(reason),
        ..op.record(AuditAction::Grant, now_ms)
    };
    match app
        .store
        .grant(user_id, &grants, &admin_key, &audit)
        .await?
    {
        KeyedOutcome::Written => {
            tracing::info!(user = %user_id, source = %source_id, actor = %op.actor, "promotion granted");
            Ok(Granted::New(with_windows(app, user_id, result).await?))
        }
        KeyedOutcome::KeyUsed(used) => Ok(Granted::Replayed(
            with_windows(app, user_id, replay(used, &request_hash)?).await?,
        )),
    }
}

/// The promotion's answer with its windows as they stack now (one query of the user's
/// partition): empty once revoked or over.
async fn with_windows(app: &App, user_id: &str, mut result: Value) -> Result<Value, ServiceError> {
    let source = result["source_id"].as_str().unwrap_or_default().to_owned();
    let items = app.store.user_items(user_id).await?;
    let windows: Vec<Value> = grant::windows(&items.grants)
        .iter()
        .filter(|w| w.source_id == source)
        .map(|w| {
            json!({
                "scope": w.scope,
                "valid_from": rfc3339(w.valid_from),
                "valid_until": w.valid_until.map(rfc3339),
            })
        })
        .collect();
    if let Some(map) = result.as_object_mut() {
        map.insert("windows".into(), Value::Array(windows));
    }
    Ok(result)
}

/// Whether `source_id` is a store purchase's, whose grants the store rewrites.
pub fn is_store_source(source_id: &str) -> bool {
    source_id.starts_with("apple:") || source_id.starts_with("google:")
}

/// Revokes every unrevoked grant of `source_id` that `user_id` holds, recording who and
/// why, with the audit record, in one transaction conditioned on the grants as read (read
/// again and retried when one changed meanwhile). An order stays PAID and unrefunded.
/// `NotFound` when the user has no grant of that source, `Conflict` when all are revoked.
pub async fn revoke(
    app: &App,
    user_id: &str,
    source_id: &str,
    reason: &str,
    op: &Operator,
) -> Result<Value, ServiceError> {
    if !valid_user_id(user_id) {
        return Err(ServiceError::BadRequest("invalid user id".into()));
    }
    let reason = reason_of(reason)?;
    if source_id.is_empty()
        || source_id.len() > 256
        || !source_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ServiceError::NotFound("no such grant".into()));
    }
    if is_store_source(source_id) {
        return Err(ServiceError::Unprocessable(format!(
            "{source_id:?} is a store purchase: the store's own messages rewrite its grants, \
             so it is refunded or revoked through the store; ban the user to stop access now"
        )));
    }
    for _ in 0..ATTEMPTS {
        let held: Vec<Grant> = app
            .store
            .user_items(user_id)
            .await?
            .grants
            .into_iter()
            .filter(|g| g.source_id == source_id)
            .collect();
        if held.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "user {user_id:?} has no grant of {source_id:?}"
            )));
        }
        let live: Vec<Grant> = held
            .into_iter()
            .filter(|g| g.revoked_at.is_none())
            .collect();
        if live.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "the grants of {source_id:?} are revoked already"
            )));
        }
        let now_ms = app.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let revoked: Vec<Grant> = live
            .iter()
            .map(|g| Grant {
                revoked_at: Some(now),
                revoked_by: Some(op.actor.clone()),
                revoke_reason: Some(reason.clone()),
                ..g.clone()
            })
            .collect();
        let audit = AuditRecord {
            user_id: Some(user_id.to_owned()),
            order_id: OrderId::parse(source_id)
                .ok()
                .map(|id| id.as_str().to_owned()),
            before: json!(live.iter().map(grant_json).collect::<Vec<_>>()),
            after: json!(revoked.iter().map(grant_json).collect::<Vec<_>>()),
            reason: Some(reason.clone()),
            ..op.record(AuditAction::RevokeGrant, now_ms)
        };
        if let Guarded::Written = app.store.revoke_grants(user_id, &revoked, &audit).await? {
            tracing::info!(user = %user_id, source = %source_id, actor = %op.actor, "grants revoked");
            return Ok(json!({
                "user_id": user_id,
                "source_id": source_id,
                "revoked_at": rfc3339(now),
                "revoked_by": op.actor,
                "reason": reason,
                "grants": revoked.iter().map(grant_json).collect::<Vec<_>>(),
            }));
        }
    }
    Err(ServiceError::Busy(format!(
        "the grants of {source_id:?} kept changing under this request; retry"
    )))
}

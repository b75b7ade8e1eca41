//! Issuing stream tokens and verifying them for media servers.
//!
//! Issue costs two store round trips: one query of the user's partition (live grants,
//! checkpoints, bans and the `SESSIONS` item together) and one conditional write of
//! `SESSIONS`; a renewal within half a token's life of the device's last write costs only the
//! query. Verifying a play costs one query (the same partition), verifying a publish one read
//! (the stream's publish key). While a checkpoint is stale the user's reads take one more
//! query (the history); an issue that finds enough ended grants folds them, one more write
//! (see `entitlements`).

use super::ServiceError;
use crate::app::App;
use crate::crypto::random_bytes;
use crate::domain::first_access;
use crate::domain::session::{self, Access, Refusal};
use crate::domain::stats::{first_access_counts, preview_counts};
use crate::domain::{ban, grant};
use crate::store::PutSessions;
use crate::stream::names::{naming, Naming};
use crate::stream::native::{self, Claims, TokenError};
use crate::stream::{names_stream, Asked, Format, Signer};
use std::net::IpAddr;

/// How many times a token request retries after another request changed the
/// user's sessions between our read and our write. Each loss means another request won, so
/// only a burst of simultaneous requests from one account can exhaust it.
const SESSION_RETRIES: u32 = 40;

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub url: String,
    pub token: String,
    pub expires_at: i64,
    pub session_id: String,
    pub preview: bool,
}

/// Device ids become map keys in the user's sessions item: printable, bounded.
fn valid_device_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn issue_token(
    app: &App,
    user_id: &str,
    stream_id: &str,
    device_id: &str,
    format: Option<&str>,
    client: Option<IpAddr>,
) -> Result<IssuedToken, ServiceError> {
    let catalog = app.catalog.current();
    let stream = catalog
        .stream(stream_id)
        .ok_or_else(|| ServiceError::NotFound(format!("unknown stream {stream_id:?}")))?;
    if !valid_device_id(device_id) {
        return Err(ServiceError::BadRequest(
            "device_id must be 1-128 printable ASCII characters".into(),
        ));
    }
    let format = match format {
        None => Format::Native,
        Some(name) => {
            Format::parse(name).ok_or_else(|| ServiceError::UnknownFormat(name.to_owned()))?
        }
    };
    let signer = Signer::for_format(&app.config.stream_keys, format)
        .ok_or(ServiceError::FormatNotConfigured(format))?;
    let bound_ip = match (app.config.stream_bind_ip, client) {
        (false, _) => None,
        (true, Some(ip)) => Some(ip.to_string()),
        // Issuing an unbound token would quietly undo what the operator asked for.
        (true, None) => {
            return Err(ServiceError::Internal(
                "STREAM_BIND_IP is set but the request carries no client address".into(),
            ))
        }
    };
    let new_session_id = hex::encode(random_bytes::<16>());
    let cfg = &app.config;
    // One read of the user's partition; a lost race hands back the sessions as stored, so
    // each retry costs one conditional write and no re-read.
    let reading = super::entitlements::read(app, user_id).await?;
    let items = &reading.items;
    if let Some(b) = ban::active(&items.bans, stream_id, app.clock.now()) {
        crate::metrics::count("TokensDenied", 1, &[("Reason", "banned")]);
        return Err(ServiceError::Banned(b.clone()));
    }
    let mut sessions = items.sessions.clone();
    // Entitled by a grant without a view limit, or only by grants with `max_views`: those
    // (source id, limit) in the order their views are taken.
    let (entitled, counted) = {
        let (grants, checkpoints) = reading.ledger();
        grant::entitlement_with(&grants, checkpoints, &stream.requires_any, app.clock.now())
    };
    for attempt in 0..=SESSION_RETRIES {
        let now = app.clock.now();
        let access = if entitled {
            Access::Entitled
        } else if !counted.is_empty() {
            Access::Counted
        } else {
            match stream.preview_seconds {
                Some(s) if s > 0 => Access::PreviewOffered(s),
                _ => Access::None,
            }
        };
        let req = session::Request {
            stream_id,
            device_id,
            new_session_id: &new_session_id,
            access,
            now,
            ttl: cfg.stream_token_ttl_seconds,
            max_devices: cfg.max_devices,
            policy: cfg.device_policy,
            counted: &counted,
        };
        let admission = match session::admit(&sessions, &req) {
            Ok(a) => a,
            Err(Refusal::NotEntitled) => {
                crate::metrics::count("TokensDenied", 1, &[("Reason", "not_entitled")]);
                return Err(ServiceError::PaymentRequired {
                    stream_id: stream_id.to_owned(),
                    products: catalog
                        .products_unlocking(stream)
                        .iter()
                        .map(|p| (p.id.clone(), p.title.clone()))
                        .collect(),
                });
            }
            Err(Refusal::ViewsUsed) => {
                crate::metrics::count("TokensDenied", 1, &[("Reason", "views_used")]);
                return Err(ServiceError::ViewsUsed {
                    stream_id: stream_id.to_owned(),
                    products: catalog
                        .products_unlocking(stream)
                        .iter()
                        .map(|p| (p.id.clone(), p.title.clone()))
                        .collect(),
                });
            }
            Err(Refusal::DeviceLimit) => {
                crate::metrics::count("TokensDenied", 1, &[("Reason", "device_limit")]);
                return Err(ServiceError::DeviceLimit(cfg.max_devices));
            }
        };
        // The first token for a paid grant marks it accessed and counts it, in the same
        // write (a transaction instead of the plain put): rare, once per order.
        let firsts = if admission.preview {
            Vec::new()
        } else {
            let (grants, checkpoints) = reading.ledger();
            first_access::first_accesses(&grants, checkpoints, &stream.requires_any, now, &sessions)
        };
        let written = if admission.preview_started {
            // A preview's start is recorded by this write: it counts the preview too.
            app.store
                .put_sessions_counted(
                    user_id,
                    &admission.sessions,
                    sessions.version,
                    now,
                    &preview_counts(stream_id),
                )
                .await?
        } else if !firsts.is_empty() {
            let mut next = admission.sessions.clone();
            first_access::mark(&mut next, &firsts, &reading.items.grants);
            let counts: Vec<(String, i64)> = firsts
                .iter()
                .flat_map(|f| first_access_counts(&f.product_id, &f.provider))
                .collect();
            let written = app
                .store
                .put_sessions_counted(user_id, &next, sessions.version, now, &counts)
                .await?;
            if written.written() {
                crate::metrics::count("FirstAccesses", firsts.len() as i64, &[]);
            }
            written
        } else if admission.write {
            app.store
                .put_sessions(user_id, &admission.sessions, sessions.version)
                .await?
        } else {
            PutSessions::Written
        };
        if let PutSessions::Stale(current) = written {
            sessions = current;
            if attempt < SESSION_RETRIES {
                // Spread simultaneous retries so they do not collide again in lockstep.
                let jitter =
                    (u64::from(random_bytes::<1>()[0] % 8) * (1 + u64::from(attempt))).min(50);
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            continue;
        }
        crate::metrics::count("TokensIssued", 1, &[("Format", format.as_str())]);
        if !admission.evicted.is_empty() {
            crate::metrics::count("DevicesEvicted", admission.evicted.len() as i64, &[]);
            tracing::info!(user = %user_id, evicted = admission.evicted.len(), "device sessions evicted");
        }
        let claims = Claims {
            stream: stream_id.to_owned(),
            sub: user_id.to_owned(),
            sid: admission.session_id.clone(),
            exp: admission.expires_at,
            ip: bound_ip.clone(),
            preview: admission.preview,
        };
        let rand = hex::encode(random_bytes::<8>());
        let (url, token) = signer
            .sign(&stream.origin, &claims, &rand)
            .map_err(|e| ServiceError::Internal(format!("stream {stream_id} origin: {e}")))?;
        // Ended grants are folded here, where the grants were read anyway: one more write,
        // once per a few ended grants (verify and the entitlement routes never write).
        super::entitlements::fold_if_due(app, user_id, &reading).await;
        return Ok(IssuedToken {
            url,
            token,
            expires_at: admission.expires_at,
            session_id: admission.session_id,
            preview: admission.preview,
        });
    }
    Err(ServiceError::Busy(
        "device sessions kept changing concurrently, retry".into(),
    ))
}

/// What a media server asked about: a native token and, when it says so, which stream.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub token: Option<String>,
    /// The stream name or path the media server is about to serve.
    pub stream: Option<Asked>,
    pub client_ip: Option<String>,
}

/// Why a play request is refused (logged; the media server only sees "no").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no token")]
    NoToken,
    #[error("native tokens are not configured")]
    NotConfigured,
    #[error("{0}")]
    Token(TokenError),
    #[error("token is for another stream")]
    WrongStream,
    #[error("session ended (evicted by another device)")]
    SessionEnded,
    #[error("not entitled any more")]
    NotEntitled,
    #[error("banned: {0}")]
    Banned(String),
    #[error("no catalog stream has this name")]
    UnknownStream,
    #[error("no publish key given")]
    NoPublishKey,
    #[error("the stream has no publish key (an operator sets one)")]
    PublishKeyNotSet,
    #[error("wrong publish key")]
    WrongPublishKey,
    /// The media server's request itself could not be understood.
    #[error("{0}")]
    Request(&'static str),
}

pub async fn verify(
    app: &App,
    req: &VerifyRequest,
) -> Result<Result<Claims, Denied>, ServiceError> {
    let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Err(Denied::NoToken));
    };
    let Some(keys) = app.config.stream_keys.native.as_ref() else {
        return Ok(Err(Denied::NotConfigured));
    };
    let now = app.clock.now();
    let claims = match native::verify(keys, token, now, req.client_ip.as_deref()) {
        Ok(c) => c,
        Err(e) => return Ok(Err(Denied::Token(e))),
    };
    let catalog = app.catalog.current();
    let Some(stream) = catalog.stream(&claims.stream) else {
        return Ok(Err(Denied::NotEntitled));
    };
    if let Some(asked) = &req.stream {
        let others = catalog
            .streams()
            .iter()
            .filter(|s| s.id != stream.id)
            .map(|s| s.origin.as_str());
        if !names_stream(asked, &stream.origin, others) {
            return Ok(Err(Denied::WrongStream));
        }
    }
    let reading = super::entitlements::read(app, &claims.sub).await?;
    let items = &reading.items;
    if let Some(b) = ban::active(&items.bans, &stream.id, now) {
        return Ok(Err(Denied::Banned(b.reason.clone())));
    }
    if !items.sessions.holds(&claims.sid) {
        return Ok(Err(Denied::SessionEnded));
    }
    let allowed = if claims.preview {
        session::preview_open(
            &items.sessions,
            &stream.id,
            stream.preview_seconds.unwrap_or(0),
            now,
        )
    } else {
        let (grants, checkpoints) = reading.ledger();
        grant::entitled_with(&grants, checkpoints, &stream.requires_any, now)
    };
    if !allowed {
        return Ok(Err(Denied::NotEntitled));
    }
    Ok(Ok(claims))
}

/// What a media server asks before it accepts a stream pushed to it.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The stream name or path being published.
    pub stream: Asked,
    /// The key the encoder presented.
    pub key: Option<String>,
}

/// Allows a publish only with the named stream's current publish key: one read (the key).
/// Returns the catalog id of the stream.
pub async fn verify_publish(
    app: &App,
    req: &PublishRequest,
) -> Result<Result<String, Denied>, ServiceError> {
    // Only the stream itself is published, never one of its fragments.
    let catalog = app.catalog.current();
    let Some(stream) = catalog
        .streams()
        .iter()
        .find(|s| naming(&req.stream, &s.origin) == Some(Naming::Stream))
    else {
        return Ok(Err(Denied::UnknownStream));
    };
    let Some(presented) = req.key.as_deref().filter(|k| !k.is_empty()) else {
        return Ok(Err(Denied::NoPublishKey));
    };
    let Some(stored) = app.store.publish_key(&stream.id).await? else {
        return Ok(Err(Denied::PublishKeyNotSet));
    };
    if !stored.matches(presented) {
        return Ok(Err(Denied::WrongPublishKey));
    }
    Ok(Ok(stream.id.clone()))
}

//! `POST /streams/{stream_id}/tokens` and `POST /streams/verify`.
//!
//! Verify speaks the request shapes of the media servers that call it, so each can be
//! pointed at Tollgate with configuration only. Plays carry a stream token (`token`) and the
//! client's address as the media server sees it (checked when the token is bound to one);
//! publishes carry the stream's publish key (`key`).
//! - SRS `on_play` / `on_publish`: JSON with `action`, `ip`, `app`, `stream`,
//!   `param: "?token=..."` (or `"?key=..."`); SRS allows on HTTP 200 with body `0` and denies
//!   on any other status or code.
//! - nginx-rtmp `on_play` / `on_publish`: form POST with `call=play|publish`, `addr`, `name`,
//!   and the arguments (`token=`/`key=` as their own field, or inside `args`); 2xx allows.
//! - MediaMTX HTTP auth: JSON with `action` (`read`, `playback`, `publish`), `ip`, `path`,
//!   `query` (and `token`/`password`); 2xx allows.
//! - nginx `auth_request`: the request as sent (`$request_uri`) in `X-Original-URI`, the
//!   client's address in `X-Real-IP`; 2xx allows. Its path must be the one nginx serves: see
//!   [`crate::stream::names`].
//! - anything else: `{"token": "...", "ip": "..."}` or `?token=` on the verify URL itself.

use super::problem::{json_response, problem_with};
use super::{parse_json, ClientAddr};
use crate::app::App;
use crate::domain::time::rfc3339;
use crate::service::streams::{self, Denied, PublishRequest, VerifyRequest};
use crate::stream::native::Claims;
use crate::stream::Asked;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    device_id: String,
    format: Option<String>,
}

pub(crate) async fn issue(
    app: &App,
    user: &str,
    stream_id: &str,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, crate::service::ServiceError> {
    let body: TokenBody = match parse_json(req) {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let t = crate::metrics::timed(
        "TokenIssueMs",
        &[],
        streams::issue_token(
            app,
            user,
            stream_id,
            &body.device_id,
            body.format.as_deref(),
            client,
        ),
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "url": t.url,
            "token": t.token,
            "expires_at": rfc3339(t.expires_at),
            "session_id": t.session_id,
            "preview": t.preview,
        }),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Srs,
    NginxRtmp,
    MediaMtx,
    AuthRequest,
    Plain,
}

/// Parameter `name` of a query string (leading `?` allowed), percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn token_in_query(query: &str) -> Option<String> {
    query_param(query, "token")
}

/// Publish keys travel as `?key=` in the stream URL (or the media server's params).
fn key_in_query(query: &str) -> Option<String> {
    query_param(query, "key")
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// What a media server asks: may a viewer play, or may an encoder publish.
enum Asks {
    Play(VerifyRequest),
    Publish(PublishRequest),
}

/// What the caller asks and who it is; `Err` names why the request itself is refused.
fn read_request(req: &Request<Bytes>) -> (Caller, Result<Asks, &'static str>) {
    let header_str = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(uri) = req.headers().get("x-original-uri") {
        // nginx sends `$request_uri` as the client sent it: visible ASCII, percent-encoded.
        let Ok(uri) = uri.to_str() else {
            return (
                Caller::AuthRequest,
                Err("X-Original-URI is not visible ASCII"),
            );
        };
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        return (
            Caller::AuthRequest,
            Ok(Asks::Play(VerifyRequest {
                token: token_in_query(query),
                stream: Some(Asked::RequestPath(path.to_owned())),
                // nginx's `$remote_addr`, as the README's block sends it.
                client_ip: header_str("x-real-ip").map(str::to_owned),
            })),
        );
    }
    let content_type = header_str(header::CONTENT_TYPE.as_str()).unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: Vec<(String, String)> = form_urlencoded::parse(req.body())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let name = field("name").map(|n| Asked::Name(n.to_owned()));
        return match field("call") {
            Some("publish") => (
                Caller::NginxRtmp,
                match name {
                    Some(stream) => Ok(Asks::Publish(PublishRequest {
                        stream,
                        key: field("key")
                            .map(str::to_owned)
                            .or_else(|| field("args").and_then(key_in_query)),
                    })),
                    None => Err("publish without a stream name"),
                },
            ),
            None | Some("play") => (
                Caller::NginxRtmp,
                Ok(Asks::Play(VerifyRequest {
                    token: field("token")
                        .map(str::to_owned)
                        .or_else(|| field("args").and_then(token_in_query)),
                    stream: name,
                    client_ip: field("addr").map(str::to_owned),
                })),
            ),
            Some(_) => (
                Caller::NginxRtmp,
                Err("only play and publish are verified here"),
            ),
        };
    }
    let query_token = req.uri().query().and_then(token_in_query);
    if req.body().is_empty() {
        return (
            Caller::Plain,
            Ok(Asks::Play(VerifyRequest {
                token: query_token,
                client_ip: header_str("x-real-ip").map(str::to_owned),
                ..VerifyRequest::default()
            })),
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(req.body()) else {
        return (Caller::Plain, Err("body is neither JSON nor a form"));
    };
    let action = str_field(&v, "action");
    let ip = str_field(&v, "ip").map(str::to_owned);
    if matches!(action, Some("on_play" | "on_publish")) || v.get("param").is_some() {
        let stream = str_field(&v, "stream").map(|n| Asked::Name(n.to_owned()));
        let param = str_field(&v, "param");
        return match action {
            Some("on_play") | None => (
                Caller::Srs,
                Ok(Asks::Play(VerifyRequest {
                    token: param.and_then(token_in_query),
                    stream,
                    client_ip: ip,
                })),
            ),
            Some("on_publish") => (
                Caller::Srs,
                match stream {
                    Some(stream) => Ok(Asks::Publish(PublishRequest {
                        stream,
                        key: param.and_then(key_in_query),
                    })),
                    None => Err("on_publish without a stream"),
                },
            ),
            Some(_) => (
                Caller::Srs,
                Err("only on_play and on_publish are verified here"),
            ),
        };
    }
    if v.get("query").is_some() || v.get("path").is_some() {
        let nonempty = |name: &str| str_field(&v, name).filter(|t| !t.is_empty());
        let query = str_field(&v, "query");
        let path = str_field(&v, "path").map(|p| Asked::Path(p.to_owned()));
        return match action {
            Some("read" | "playback") => (
                Caller::MediaMtx,
                Ok(Asks::Play(VerifyRequest {
                    token: nonempty("token")
                        .map(str::to_owned)
                        .or_else(|| query.and_then(token_in_query))
                        .or_else(|| nonempty("password").map(str::to_owned)),
                    stream: path,
                    client_ip: ip,
                })),
            ),
            Some("publish") => (
                Caller::MediaMtx,
                match path {
                    Some(stream) => Ok(Asks::Publish(PublishRequest {
                        stream,
                        key: query
                            .and_then(key_in_query)
                            .or_else(|| nonempty("password").map(str::to_owned)),
                    })),
                    None => Err("publish without a path"),
                },
            ),
            _ => (
                Caller::MediaMtx,
                Err("only read, playback and publish are verified here"),
            ),
        };
    }
    (
        Caller::Plain,
        Ok(Asks::Play(VerifyRequest {
            token: str_field(&v, "token").map(str::to_owned).or(query_token),
            client_ip: ip.or_else(|| header_str("x-real-ip").map(str::to_owned)),
            ..VerifyRequest::default()
        })),
    )
}

pub(crate) async fn verify(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    let (caller, parsed) = read_request(req);
    let (action, outcome) = match parsed {
        Ok(Asks::Play(v)) => (
            "play",
            match streams::verify(app, &v).await {
                Ok(result) => result.map(|c| allowed_play(&c)),
                Err(e) => return super::problem::service_problem(&e),
            },
        ),
        Ok(Asks::Publish(p)) => (
            "publish",
            match streams::verify_publish(app, &p).await {
                Ok(result) => result.map(|id| json!({"allow": true, "stream_id": id})),
                Err(e) => return super::problem::service_problem(&e),
            },
        ),
        Err(reason) => ("request", Err(Denied::Request(reason))),
    };
    match outcome {
        Ok(_) if caller == Caller::Srs => {
            let mut r = Response::new(Bytes::from_static(b"0"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            r
        }
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(reason) => {
            tracing::info!(?caller, action, %reason, "stream access denied");
            let mut extra = serde_json::Map::new();
            // SRS reads `code` from the body: non-zero means deny.
            extra.insert("code".into(), json!(403));
            problem_with(
                StatusCode::FORBIDDEN,
                "stream-access-denied",
                reason.to_string(),
                extra,
            )
        }
    }
}

fn allowed_play(claims: &Claims) -> Value {
    json!({
        "allow": true,
        "stream_id": claims.stream,
        "session_id": claims.sid,
        "preview": claims.preview,
        "expires_at": rfc3339(claims.exp),
    })
}

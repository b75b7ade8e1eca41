//! `POST /streams/{stream_id}/tokens` and `POST /streams/verify`.
//!
//! Verify speaks the request shapes of the media servers that call it, so each can be
//! pointed at Tollgate with configuration only:
//! - SRS `on_play`: JSON with `action: "on_play"`, `app`, `stream`, `param: "?token=..."`;
//!   SRS allows on HTTP 200 with body `0` and denies on any other status or code.
//! - nginx-rtmp `on_play`: form POST with `call=play`, `name`, and the play arguments
//!   (`token=...` as its own field, or inside `args`); any 2xx allows.
//! - MediaMTX HTTP auth: JSON with `action`, `path`, `query` (and `token`/`password`);
//!   2xx allows.
//! - nginx `auth_request`: the request as sent (`$request_uri`) in `X-Original-URI`; 2xx
//!   allows. Its path must be the one nginx serves: see [`crate::stream::names`].
//! - anything else: `{"token": "..."}` or `?token=` on the verify URL itself.

use super::parse_json;
use super::problem::{json_response, problem_with};
use crate::app::App;
use crate::domain::time::rfc3339;
use crate::service::streams::{self, VerifyRequest};
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
    let t = streams::issue_token(
        app,
        user,
        stream_id,
        &body.device_id,
        body.format.as_deref(),
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

/// The `token` parameter of a query string (leading `?` allowed), percent-decoded.
fn token_in_query(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// What the caller asks and who it is; `Err` names why the request itself is refused.
fn read_request(req: &Request<Bytes>) -> (Caller, Result<VerifyRequest, &'static str>) {
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
            Ok(VerifyRequest {
                token: token_in_query(query),
                stream: Some(Asked::RequestPath(path.to_owned())),
                client_ip: None,
            }),
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
        if field("call").is_some_and(|c| c != "play") {
            return (Caller::NginxRtmp, Err("only play is verified here"));
        }
        let token = field("token")
            .map(str::to_owned)
            .or_else(|| field("args").and_then(token_in_query));
        return (
            Caller::NginxRtmp,
            Ok(VerifyRequest {
                token,
                stream: field("name").map(|n| Asked::Name(n.to_owned())),
                client_ip: None,
            }),
        );
    }
    let query_token = req.uri().query().and_then(token_in_query);
    if req.body().is_empty() {
        return (
            Caller::Plain,
            Ok(VerifyRequest {
                token: query_token,
                ..VerifyRequest::default()
            }),
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(req.body()) else {
        return (Caller::Plain, Err("body is neither JSON nor a form"));
    };
    let action = str_field(&v, "action");
    if action == Some("on_play") || v.get("param").is_some() {
        if action.is_some_and(|a| a != "on_play") {
            return (Caller::Srs, Err("only on_play is verified here"));
        }
        return (
            Caller::Srs,
            Ok(VerifyRequest {
                token: str_field(&v, "param").and_then(token_in_query),
                stream: str_field(&v, "stream").map(|n| Asked::Name(n.to_owned())),
                client_ip: None,
            }),
        );
    }
    if v.get("query").is_some() || v.get("path").is_some() {
        if !matches!(action, Some("read" | "playback")) {
            return (
                Caller::MediaMtx,
                Err("only read and playback are verified here"),
            );
        }
        let nonempty = |name: &str| str_field(&v, name).filter(|t| !t.is_empty());
        let token = nonempty("token")
            .map(str::to_owned)
            .or_else(|| str_field(&v, "query").and_then(token_in_query))
            .or_else(|| nonempty("password").map(str::to_owned));
        return (
            Caller::MediaMtx,
            Ok(VerifyRequest {
                token,
                stream: str_field(&v, "path").map(|p| Asked::Path(p.to_owned())),
                client_ip: None,
            }),
        );
    }
    (
        Caller::Plain,
        Ok(VerifyRequest {
            token: str_field(&v, "token").map(str::to_owned).or(query_token),
            ..VerifyRequest::default()
        }),
    )
}

pub(crate) async fn verify(app: &App, req: &Request<Bytes>) -> Response<Bytes> {
    let (caller, parsed) = read_request(req);
    let outcome = match parsed {
        Ok(v) => match streams::verify(app, &v).await {
            Ok(result) => result.map_err(|d| d.to_string()),
            Err(e) => return super::problem::service_problem(&e),
        },
        Err(reason) => Err(reason.to_owned()),
    };
    match outcome {
        Ok(_) if caller == Caller::Srs => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Bytes::from_static(b"0"))
            .unwrap_or_default(),
        Ok(claims) => json_response(
            StatusCode::OK,
            &json!({
                "allow": true,
                "stream_id": claims.stream,
                "session_id": claims.sid,
                "preview": claims.preview,
                "expires_at": rfc3339(claims.exp),
            }),
        ),
        Err(reason) => {
            tracing::info!(?caller, %reason, "stream play denied");
            let mut extra = serde_json::Map::new();
            // SRS reads `code` from the body: non-zero means deny.
            extra.insert("code".into(), json!(403));
            problem_with(StatusCode::FORBIDDEN, "stream-access-denied", reason, extra)
        }
    }
}

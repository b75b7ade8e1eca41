//! A stand-in for an API Gateway HTTP API on loopback, for what a browser does in AWS. It
//! serves the routes `template.yaml` gives one API (method, and path with `{param}` segments),
//! each to the handler of the function the template names, the way API Gateway and the Lambda
//! runtime hand a request over:
//!
//! - the API's JWT authorizer on routes without `Authorizer: NONE`: no bearer token, a bad
//!   signature or an expired token is answered 401 `{"message":"Unauthorized"}` before any
//!   function runs; a good one's claims go to the function as the authorizer's context, each
//!   a string, arrays written `[a b]` (HS256 with the tests' secret stands in for the issuer's
//!   keys);
//! - the request as a payload-2.0 event (JSON, read by `lambda_http` as in Lambda), the
//!   function's answer through `lambda_http`'s own adapter into the JSON the runtime returns,
//!   and that JSON back into an HTTP answer (headers, cookies, base64 bodies);
//! - anything else: 404 `{"message":"Not Found"}`. IAM routes are not served (a browser cannot
//!   sign them).

use crate::fake::{Answer, FakeServer, Seen};
use crate::template_routes::{RouteAuth, TemplateRoute};
use base64::Engine;
use lambda_http::Service;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate::api::Routes;
use tollgate::app::App;

/// The stand-in; stopped when dropped.
pub struct ApiGateway {
    pub base: String,
    _server: FakeServer,
}

/// Which handler each function binary runs.
pub fn routes_of(function: &str) -> Routes {
    match function {
        "create-order" => Routes::Orders,
        "provider-callback" => Routes::Callbacks,
        "stream-token" => Routes::Streams,
        "store-notifications" => Routes::StoreNotifications,
        other => panic!("{other} serves no HTTP routes"),
    }
}

impl ApiGateway {
    /// Serves `routes` (one API's, from the template) with `app` behind every function, and
    /// `jwt_secret` as the JWT authorizer's key.
    pub async fn start(routes: Vec<TemplateRoute>, app: Arc<App>, jwt_secret: &str) -> Self {
        let routes = Arc::new(routes);
        let secret = jwt_secret.to_owned();
        let server = FakeServer::start_async(Arc::new(move |seen: Seen| {
            let routes = routes.clone();
            let app = app.clone();
            let secret = secret.clone();
            Box::pin(async move { answer(&routes, &app, &secret, seen).await })
        }))
        .await;
        ApiGateway {
            base: server.base.clone(),
            _server: server,
        }
    }
}

fn gateway_message(status: u16, message: &str) -> Answer {
    Answer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({ "message": message }).to_string().into_bytes(),
    }
}

/// The route matching `method` and `path`, with its path parameters.
fn matching<'a>(
    routes: &'a [TemplateRoute],
    method: &str,
    path: &str,
) -> Option<(&'a TemplateRoute, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.split('/').collect();
    routes.iter().find_map(|r| {
        if r.method != method {
            return None;
        }
        let pattern: Vec<&str> = r.path.split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (p, s) in pattern.iter().zip(&segments) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !s.is_empty() => {
                    params.insert(name.to_owned(), (*s).to_owned());
                }
                Some(_) => return None,
                None if p == s => {}
                None => return None,
            }
        }
        Some((r, params))
    })
}

/// The claims of a valid bearer token, as the authorizer hands them on; `None`: 401.
fn authorize(seen: &Seen, secret: &str) -> Option<Map<String, Value>> {
    let token = seen.header("authorization").strip_prefix("Bearer ")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()?;
    Some(
        data.claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => format!(
                        "[{}]",
                        items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => other.to_string(),
                };
                (k, Value::String(text))
            })
            .collect(),
    )
}

/// The payload-2.0 event API Gateway sends for `seen` on `route`.
fn event(
    seen: &Seen,
    route: &TemplateRoute,
    params: BTreeMap<String, String>,
    claims: Option<Map<String, Value>>,
) -> Value {
    let (path, query) = seen
        .target
        .split_once('?')
        .unwrap_or((seen.target.as_str(), ""));
    let mut query_params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        query_params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (k, v) in &seen.headers {
        let v = v.to_str().unwrap_or_default().to_owned();
        if k == http::header::COOKIE {
            cookies.extend(v.split("; ").map(str::to_owned));
        } else {
            headers.entry(k.as_str().to_owned()).or_default().push(v);
        }
    }
    let route_key = format!("{} {}", route.method, route.path);
    let mut context = json!({
        "accountId": "123456789012", "apiId": "standin", "domainName": "standin.example.com",
        "domainPrefix": "standin",
        "http": {"method": seen.method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": seen.header("user-agent")},
        "requestId": format!("standin-{}", crate::unique()), "routeKey": route_key,
        "stage": "$default", "time": "15/Jan/2027:08:00:00 +0000", "timeEpoch": 0
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let (body, base64) = match std::str::from_utf8(&seen.body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&seen.body),
            true,
        ),
    };
    let join = |m: BTreeMap<String, Vec<String>>| -> Map<String, Value> {
        m.into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect()
    };
    let mut e = json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": query,
        "headers": join(headers), "requestContext": context, "isBase64Encoded": base64,
    });
    if !cookies.is_empty() {
        e["cookies"] = json!(cookies);
    }
    if !query_params.is_empty() {
        e["queryStringParameters"] = Value::Object(join(query_params));
    }
    if !params.is_empty() {
        e["pathParameters"] = json!(params);
    }
    if !seen.body.is_empty() {
        e["body"] = Value::String(body);
    }
    e
}

async fn answer(routes: &[TemplateRoute], app: &Arc<App>, secret: &str, seen: Seen) -> Answer {
    let path = seen.target.split('?').next().unwrap_or_default().to_owned();
    let Some((route, params)) = matching(routes, &seen.method, &path) else {
        return gateway_message(404, "Not Found");
    };
    let claims = match route.auth {
        RouteAuth::Open => None,
        RouteAuth::Default => match authorize(&seen, secret) {
            Some(claims) => Some(claims),
            None => return gateway_message(401, "Unauthorized"),
        },
        RouteAuth::Iam => return gateway_message(403, "Forbidden"),
    };
    let event = event(&seen, route, params, claims);
    // What the runtime does with the event: lambda_http's request type, its adapter around
    // the function's handler, and the JSON it returns.
    let request: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).expect("a payload-2.0 event lambda_http reads");
    let handler_app = app.clone();
    let which = routes_of(&route.function);
    let mut adapter =
        lambda_http::Adapter::from(lambda_http::service_fn(move |req: lambda_http::Request| {
            let app = handler_app.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    tollgate::lambda::handle_event(&app, which, req).await,
                )
            }
        }));
    let response = adapter
        .call(lambda_http::LambdaEvent::new(
            request,
            lambda_http::Context::default(),
        ))
        .await
        .expect("the handler answers");
    let response = serde_json::to_value(&response).expect("a response the runtime can send");
    from_function(&response)
}

/// The HTTP answer API Gateway makes of a function's payload-2.0 response.
fn from_function(r: &Value) -> Answer {
    let status = r["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .expect("a statusCode");
    let mut headers: Vec<(String, String)> = r["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a header's text").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    for c in r["cookies"].as_array().into_iter().flatten() {
        headers.push((
            "set-cookie".into(),
            c.as_str().expect("a cookie").to_owned(),
        ));
    }
    let body = r["body"].as_str().unwrap_or_default();
    let body = if r["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("a base64 body")
    } else {
        body.as_bytes().to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

//! The one outbound HTTP client the providers share (WeChat Pay, Alipay, the App Store Server
//! API, the Play Developer API and Google's OAuth/JWKS endpoints): hyper 1 through hyper-rustls
//! on aws-lc-rs, the stack the AWS SDK already pulls in, so no second TLS or crypto library is
//! linked. Plain `http://` is allowed because tests point base URLs at loopback fakes. Every
//! exchange is bounded by the client's timeout (`PROVIDER_HTTP_TIMEOUT_SECONDS`).

use super::ProviderError;
use crate::tls_roots::TlsRoots;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Provider answers are small JSON or form documents; anything bigger is garbage.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Default for `PROVIDER_HTTP_TIMEOUT_SECONDS`: a create-order request waits on a prepay, so
/// a slow provider must fail the request well inside API Gateway's 30 s limit.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 8;

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// A provider's answer, read in full (bounded).
#[derive(Debug)]
pub struct HttpReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl HttpClient {
    /// Built once per cold start, trusting `roots`. Fails only when there are no usable root
    /// certificates.
    pub fn new(timeout: Duration, roots: TlsRoots) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(3))));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(
                roots
                    .rustls_config()
                    .map_err(|e| format!("provider HTTPS client: {e}"))?,
            )
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .build(https);
        Ok(HttpClient { client, timeout })
    }

    /// Sends `req` and reads the whole answer. Network errors and timeouts are
    /// `Unavailable`; interpreting the status is the caller's business.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpReply, ProviderError> {
        let what = format!("{} {}", req.method(), req.uri().path());
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ProviderError::Unavailable(format!("{what}: {e}")))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ProviderError::Unavailable(format!("{what}: reading answer: {e}")))?
                .to_bytes();
            Ok(HttpReply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::Unavailable(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

impl HttpClient {
    /// One request from parts, for callers that only need the status and the body (the
    /// store APIs); `who` names the remote in errors.
    pub async fn call(
        &self,
        who: &str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ProviderError> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| ProviderError::Refused(format!("bad request to {who}: {e}")))?;
        match self.send(req).await {
            Ok(r) => Ok((r.status, r.body)),
            Err(ProviderError::Unavailable(m)) => {
                Err(ProviderError::Unavailable(format!("{who}: {m}")))
            }
            Err(e) => Err(e),
        }
    }
}

/// A base URL from configuration: http(s), no query, no trailing slash.
pub fn base_url(
    vars: &crate::config::ProviderVars,
    name: &'static str,
    default: &str,
) -> Result<String, crate::config::ConfigError> {
    let v = vars.get(name).unwrap_or(default);
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.parse::<http::Uri>().is_ok()
        && !v.contains(['?', '#', ' ']);
    if !ok {
        return Err(crate::config::err(name, "must be an http(s) URL"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// 32 random alphanumerics, the nonce form WeChat Pay accepts.
pub fn nonce() -> String {
    hex::encode_upper(crate::crypto::random_bytes::<16>())
}

/// The process's one outbound client (providers, webhooks), built at its first use: a
/// function that never calls out (stream-token) does not pay for reading the root
/// certificates at its cold start. Its timeout and roots are checked when the app is built,
/// so a bad variable still stops start-up.
pub struct SharedHttpClient {
    timeout: Duration,
    roots: TlsRoots,
    client: std::sync::OnceLock<HttpClient>,
}

impl SharedHttpClient {
    pub fn new(timeout: Duration, roots: TlsRoots) -> Self {
        SharedHttpClient {
            timeout,
            roots,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The client (a clone shares its connection pool). Fails only when there are no usable
    /// root certificates; a failure is not remembered, so the next use tries again.
    pub fn client(&self) -> Result<HttpClient, String> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let built = HttpClient::new(self.timeout, self.roots)?;
        Ok(self.client.get_or_init(|| built).clone())
    }
}

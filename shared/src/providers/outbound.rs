//! Outbound HTTPS for the store APIs: the hyper-util legacy client over hyper-rustls (both
//! already in the tree through the AWS SDK; aws-lc-rs, native roots). Plain `http://` is
//! allowed so tests can point base URLs at loopback fakes. Every call is bounded.

use super::ProviderError;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

pub fn client() -> Result<HttpsClient, String> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// One request; `who` names the remote in errors.
pub async fn send(
    client: &HttpsClient,
    who: &str,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(StatusCode, Bytes), ProviderError> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(body))
        .map_err(|e| ProviderError::Refused(format!("bad request: {e}")))?;
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| ProviderError::Unavailable(format!("{who} timed out")))?
        .map_err(|e| ProviderError::Unavailable(format!("{who} unreachable: {e}")))?;
    let status = resp.status();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| ProviderError::Unavailable(format!("{who} timed out")))?
        .map_err(|e| ProviderError::Unavailable(format!("{who} body: {e}")))?
        .to_bytes();
    Ok((status, body))
}

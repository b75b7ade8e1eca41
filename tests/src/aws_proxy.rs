//! A loopback HTTP proxy in front of moto that records every AWS request passing through it,
//! whichever SDK client sent it, so suites count the real requests of code they do not
//! instrument (start-up, the catalog refresh). It can also hold requests until a number of
//! them are in flight together: that proves they were sent concurrently, not one after the
//! other, without timing anything.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What the proxy saw, shared with its connections.
#[derive(Default)]
struct Seen {
    /// One label per request: the JSON protocols' `x-amz-target` (`AmazonSSM.GetParameters`),
    /// else `S3 <METHOD>`, suffixed ` (conditional)` when it carries `If-None-Match`.
    requests: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
    /// Requests that arrived since [`AwsProxy::expect_concurrent`].
    arrivals: usize,
    /// Where each expected group ends, counted in arrivals: a request waits until the whole
    /// of its group has arrived (or a generous timeout).
    group_ends: Vec<usize>,
    /// Requests whose group did not all arrive in time: they were not sent together.
    gate_timeouts: usize,
}

pub struct AwsProxy {
    pub endpoint: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl AwsProxy {
    /// Listens on a free loopback port and forwards to `upstream` (moto's endpoint).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let arrived = Arc::new(Notify::new());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (seen2, arrived2) = (seen.clone(), arrived);
        let task = tokio::spawn(async move {
            let client = tollgate::api::server::http_client();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, seen, arrived, upstream) = (
                    client.clone(),
                    seen2.clone(),
                    arrived2.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(
                            req,
                            client.clone(),
                            seen.clone(),
                            arrived.clone(),
                            upstream.clone(),
                        )
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        AwsProxy {
            endpoint,
            seen,
            task,
        }
    }

    /// The requests seen since the last call, sorted, and the most that were in flight at
    /// once.
    pub fn take(&self) -> (Vec<String>, usize) {
        let mut seen = self.seen.lock().expect("proxy state");
        let mut requests = std::mem::take(&mut seen.requests);
        requests.sort();
        let max = std::mem::take(&mut seen.max_in_flight);
        (requests, max)
    }

    /// From now on, hold requests until the first `groups[0]` of them are in flight
    /// together, then the next `groups[1]`, and so on. Requests sent one after the other
    /// would each wait out the timeout alone, and `take` would show it.
    /// How many requests waited in vain for the rest of their group.
    pub fn gate_timeouts(&self) -> usize {
        self.seen.lock().expect("proxy state").gate_timeouts
    }

    pub fn expect_concurrent(&self, groups: &[usize]) {
        let mut seen = self.seen.lock().expect("proxy state");
        seen.arrivals = 0;
        seen.group_ends = groups
            .iter()
            .scan(0, |end, n| {
                *end += n;
                Some(*end)
            })
            .collect();
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    req: http::Request<hyper::body::Incoming>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    seen: Arc<Mutex<Seen>>,
    arrived: Arc<Notify>,
    upstream: String,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let label = match parts.headers.get("x-amz-target") {
        Some(target) => target.to_str().unwrap_or("?").to_owned(),
        None if parts.headers.contains_key("if-none-match") => {
            format!("S3 {} (conditional)", parts.method)
        }
        None => format!("S3 {}", parts.method),
    };
    let group_end = {
        let mut s = seen.lock().expect("proxy state");
        s.requests.push(label);
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let k = s.arrivals;
        s.arrivals += 1;
        s.group_ends.iter().copied().find(|&end| end > k)
    };
    arrived.notify_waiters();
    // The gate: wait (bounded) for the others that should be in flight with this one.
    let wait = async {
        loop {
            let notified = arrived.notified();
            {
                let s = seen.lock().expect("proxy state");
                match group_end {
                    Some(end) if s.arrivals < end => {}
                    _ => break,
                }
            }
            notified.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        seen.lock().expect("proxy state").gate_timeouts += 1;
    }
    let uri = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = http::Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        out = out.header(name, value);
    }
    let answer = match client
        .request(out.body(Full::new(body)).expect("request"))
        .await
    {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            http::Response::from_parts(parts, Full::new(body))
        }
        Err(e) => http::Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(e.to_string())))
            .expect("response"),
    };
    seen.lock().expect("proxy state").in_flight -= 1;
    Ok(answer)
}

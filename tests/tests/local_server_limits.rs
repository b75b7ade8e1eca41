//! The local server under slow and greedy clients, over real TCP on loopback: a head or a
//! body that never completes is cut off after its timeout, an idle kept-alive connection is
//! closed, an oversized head is refused, connections beyond the cap wait for a free slot, and
//! `/healthz` answers while slow clients hold connections. Every wait is bounded; none of
//! these tests sleeps to let something happen.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::clock::ManualClock;
use tollgate_tests::*;

/// The longest any test waits for something that must happen.
const PATIENCE: Duration = Duration::from_secs(10);

/// The start of a request head that never ends.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\nX-Slow: ";

async fn server(limits: &[(&str, &str)]) -> TestServer {
    let store = store_for(Backend::Memory).await.expect("memory store");
    TestServer::start(test_app_with(store, ManualClock::at(T0), limits)).await
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// What the server sent until it closed the connection (a reset counts as closed), or
/// `None` when it was still open after `within`.
async fn read_until_closed(c: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(within, async {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
}

/// Reads one response (head and `Content-Length` body) and leaves the connection open.
async fn read_response(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let done = tokio::time::timeout(PATIENCE, async {
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if out.len() >= end + 4 + length {
                    return;
                }
            }
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(done.is_ok(), "no complete response within {PATIENCE:?}");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_head_that_never_completes_is_cut_off_after_the_header_timeout() {
    let s = server(&[("LOCAL_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut slow = connect(&s).await;
    slow.write_all(HALF_HEAD).await.unwrap();
    let mut silent = connect(&s).await;
    let started = Instant::now();
    assert!(
        read_until_closed(&mut slow, PATIENCE).await.is_some(),
        "a half-sent head kept its connection open for {PATIENCE:?}"
    );
    assert!(
        read_until_closed(&mut silent, PATIENCE).await.is_some(),
        "a connection that sent nothing stayed open for {PATIENCE:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    // The server itself is fine.
    assert_eq!(s.request("GET", "/healthz", &[], "").await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_never_completes_is_answered_408() {
    let s = server(&[("LOCAL_BODY_TIMEOUT_SECONDS", "1")]).await;
    let mut c = connect(&s).await;
    c.write_all(
        b"POST /callbacks/sandbox HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"order_id\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut c, PATIENCE)
        .await
        .expect("a body that never completes kept its connection open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let s = server(&[("LOCAL_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut c = connect(&s).await;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut c).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        read_until_closed(&mut c, PATIENCE).await.is_some(),
        "an idle kept-alive connection stayed open for {PATIENCE:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_oversized_head_is_refused() {
    let s = server(&[("LOCAL_MAX_HEADER_BYTES", "8192")]).await;
    let mut c = connect(&s).await;
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 32 * 1024));
    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    // The server may stop reading (and reset) before all of it is written.
    let _ = c.write_all(&head).await;
    let answer = read_until_closed(&mut c, PATIENCE)
        .await
        .expect("the server neither answered nor closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    s.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let s = server(&[
        ("LOCAL_MAX_CONNECTIONS", "2"),
        ("LOCAL_HEADER_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect(&s).await;
        c.write_all(HALF_HEAD).await.unwrap();
        held.push(c);
    }
    let mut third = connect(&s).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut third, Duration::from_millis(1500)).await,
        None,
        "a third connection was served while two held the cap of 2"
    );
    // One held connection goes away: the waiting one is served.
    drop(held.remove(0));
    let answer = read_until_closed(&mut third, PATIENCE)
        .await
        .expect("the waiting connection was not served after a slot freed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    s.stop().await;
}

#[tokio::test]
async fn healthz_answers_during_a_slowloris() {
    let s = server(&[("LOCAL_HEADER_TIMEOUT_SECONDS", "60")]).await;
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut c = connect(&s).await;
        c.write_all(HALF_HEAD).await.unwrap();
        slow.push(c);
    }
    let started = Instant::now();
    let health = tokio::time::timeout(PATIENCE, s.request("GET", "/healthz", &[], ""))
        .await
        .expect("/healthz did not answer during the slowloris");
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(slow);
    s.stop().await;
}

/// A flood of forged Alipay notifications, 40 at a time: half of them 64 KB forms of
/// thousands of fields (refused by Alipay's caps before they are read), half forged forms
/// within the caps (whose RSA check runs on the CPU pool, off the async workers). While it
/// is in flight `/healthz` keeps answering, counted; the deadline on each probe only
/// detects a hang. Every forged notification gets Alipay's failure answer and the order
/// stays unpaid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_during_a_flood_of_forged_callbacks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tollgate_tests::alipay::{self as ali, FakeAlipay};

    const FLOODERS: usize = 40;
    const EACH: usize = 20;
    let fake = FakeAlipay::start().await;
    let gateway = format!("{}/gateway.do", fake.server.base);
    let store = store_for(Backend::Memory).await.expect("memory store");
    let s = Arc::new(
        TestServer::start(app_with(store, ManualClock::at(T0), &ali::env(&gateway))).await,
    );
    let order = s
        .call(
            "u1",
            "POST",
            "/orders",
            Some(serde_json::json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"})),
        )
        .await
        .json();
    let id = order["order_id"].as_str().expect("order id").to_owned();

    let mut big = String::with_capacity(tollgate::api::MAX_BODY_BYTES);
    let mut i = 0;
    while big.len() + 16 < tollgate::api::MAX_BODY_BYTES {
        big.push_str(&format!("f{i:06}=v{i:05}&"));
        i += 1;
    }
    big.push_str("sign=forged");
    let big = Arc::new(big);
    let mut fields = ali::fields(&id, "TRADE_SUCCESS", "9.00");
    for i in 0..60 {
        fields.insert(format!("extra_{i:02}"), "x".repeat(100));
    }
    let forged = Arc::new(ali::notification(&fields, &ali::forger()));
    assert!(forged.len() < tollgate::api::callback_limits::ALIPAY.max_body_bytes);

    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut answered_during_flood = 0u32;
            while !done.load(Ordering::SeqCst) {
                let r = tokio::time::timeout(PATIENCE, s.request("GET", "/healthz", &[], ""))
                    .await
                    .expect("/healthz did not answer during the flood");
                assert_eq!(r.status, 200);
                if !done.load(Ordering::SeqCst) {
                    answered_during_flood += 1;
                }
            }
            answered_during_flood
        })
    };
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|n| {
            let (s, big, forged) = (s.clone(), big.clone(), forged.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for k in 0..EACH {
                    let body = if (n + k) % 2 == 0 { &big } else { &forged };
                    let r = s
                        .request(
                            "POST",
                            "/callbacks/alipay",
                            &[("content-type", "application/x-www-form-urlencoded")],
                            body.as_bytes().to_vec(),
                        )
                        .await;
                    assert_eq!(&r.body[..], b"failure", "status {}", r.status);
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for f in flooders {
        statuses.extend(f.await.expect("flooder"));
    }
    done.store(true, Ordering::SeqCst);
    let answered = prober.await.expect("prober");
    eprintln!("/healthz answered {answered} times during the flood");
    assert_eq!(statuses.len(), FLOODERS * EACH);
    let too_large = statuses.iter().filter(|s| **s == 413).count();
    assert_eq!(too_large, FLOODERS * EACH / 2, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 413 || *s == 401),
        "{statuses:?}"
    );
    assert!(
        answered >= 5,
        "/healthz answered only {answered} times while {} forged callbacks were in flight",
        FLOODERS * EACH
    );
    let state = s
        .call("u1", "GET", &format!("/orders/{id}"), None)
        .await
        .json();
    assert_eq!(state["state"], "PENDING");
}

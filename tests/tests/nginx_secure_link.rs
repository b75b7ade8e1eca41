//! Proves the nginx side against a real nginx: the `secure_link` formatter alone, a
//! `secure_link` URL issued by Tollgate's HTTP API end to end, and native tokens checked by
//! Tollgate's verify hook through the README's `auth_request` block.
//!
//! Skipped (with a message) when nginx is not installed, unless
//! `TOLLGATE_REQUIRE_NGINX=1`, in which case a missing nginx fails the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate::clock::ManualClock;
use tollgate::stream::nginx::{
    nginx_secure_link_hash, nginx_secure_link_url, verify_nginx_secure_link,
};
use tollgate::stream::url::{query_param, LinkError};
use tollgate_tests::nginx::Nginx;
use tollgate_tests::{store_for, test_app_with, Backend, TestServer, DAY, NGINX_SECRET, T0};

const SECRET: &str = "s3cr3t-Tollgate_test";
const BODY: &[u8] = b"#EXTM3U\n#EXT-X-VERSION:3\nsegment body\n";
const CLIENT_IP: &str = "127.0.0.1";

/// Returns false (after printing why) when the test should be skipped.
fn nginx_available() -> bool {
    if Nginx::find_binary().is_some() {
        return true;
    }
    if std::env::var("TOLLGATE_REQUIRE_NGINX").as_deref() == Ok("1") {
        panic!(
            "TOLLGATE_REQUIRE_NGINX=1 but no nginx binary was found \
             (looked at $TOLLGATE_NGINX_BIN if set, else /usr/sbin/nginx and $PATH); \
             install it with `apt-get install -y nginx`"
        );
    }
    eprintln!(
        "SKIPPED: nginx is not installed (set TOLLGATE_REQUIRE_NGINX=1 to make this a failure)"
    );
    false
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Minimal HTTP/1.0 GET; returns (status, body).
fn get(nginx: &Nginx, url: &str) -> (u16, Vec<u8>) {
    let base = nginx.base_url();
    let path = url.strip_prefix(&base).unwrap_or(url);
    let mut s = TcpStream::connect(nginx.addr()).expect("connect to nginx");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, resp[split + 4..].to_vec())
}

fn query_of(url: &str) -> &str {
    url.split_once('?').map(|(_, q)| q).unwrap_or("")
}

#[test]
fn secure_link_bound_to_remote_addr() {
    if !nginx_available() {
        return;
    }
    let nginx = Nginx::start(SECRET, &[("live/index.m3u8", BODY)]).expect("start nginx");
    let base = nginx.base_url();
    let uri = "/s/live/index.m3u8";
    let log = || nginx.error_log();

    // Fresh URL → 200 with the file body.
    let url = nginx_secure_link_url(&base, uri, now() + 300, Some(CLIENT_IP), SECRET).unwrap();
    assert_eq!(
        verify_nginx_secure_link(uri, query_of(&url), Some(CLIENT_IP), SECRET, now()),
        Ok(())
    );
    let (status, body) = get(&nginx, &url);
    assert_eq!(status, 200, "fresh URL {url}\n{}", log());
    assert_eq!(body, BODY);

    // Tampered md5 → 403.
    let md5 = query_param(query_of(&url), "md5").unwrap().unwrap();
    let flipped = if md5.starts_with('A') { "B" } else { "A" };
    let tampered = url.replacen(&format!("md5={}", &md5[..1]), &format!("md5={flipped}"), 1);
    assert_ne!(tampered, url);
    assert_eq!(
        get(&nginx, &tampered).0,
        403,
        "tampered {tampered}\n{}",
        log()
    );

    // Tampered expires (extending a link) → 403.
    let exp = query_param(query_of(&url), "expires").unwrap().unwrap();
    let extended = url.replace(&format!("expires={exp}"), "expires=2147483647");
    assert_eq!(get(&nginx, &extended).0, 403, "extended {extended}");

    // Expired (properly signed, past `expires`) → 410.
    let expired = nginx_secure_link_url(&base, uri, now() - 60, Some(CLIENT_IP), SECRET).unwrap();
    assert_eq!(
        verify_nginx_secure_link(uri, query_of(&expired), Some(CLIENT_IP), SECRET, now()),
        Err(LinkError::Expired)
    );
    assert_eq!(get(&nginx, &expired).0, 410, "expired {expired}\n{}", log());

    // Signed for another client IP → 403.
    let other_ip =
        nginx_secure_link_url(&base, uri, now() + 300, Some("192.0.2.1"), SECRET).unwrap();
    assert_eq!(get(&nginx, &other_ip).0, 403);

    // Signed without IP while nginx binds IPs → 403.
    let no_ip = nginx_secure_link_url(&base, uri, now() + 300, None, SECRET).unwrap();
    assert_eq!(get(&nginx, &no_ip).0, 403);

    // Valid signature for another path does not open this one → 403.
    let sig_other =
        nginx_secure_link_hash(now() + 300, "/s/live/other.m3u8", Some(CLIENT_IP), SECRET);
    let moved = format!("{base}{uri}?md5={sig_other}&expires={}", now() + 300);
    assert_eq!(get(&nginx, &moved).0, 403);

    // Missing params → 403; wrong secret → 403.
    assert_eq!(get(&nginx, &format!("{base}{uri}")).0, 403);
    let wrong_secret =
        nginx_secure_link_url(&base, uri, now() + 300, Some(CLIENT_IP), "nope").unwrap();
    assert_eq!(get(&nginx, &wrong_secret).0, 403);

    // Valid link to a file that does not exist → 404 (auth passed).
    let missing = nginx_secure_link_url(
        &base,
        "/s/live/nope.ts",
        now() + 300,
        Some(CLIENT_IP),
        SECRET,
    )
    .unwrap();
    assert_eq!(get(&nginx, &missing).0, 404);
}

#[test]
fn secure_link_without_remote_addr() {
    if !nginx_available() {
        return;
    }
    let nginx =
        Nginx::start_with(SECRET, &[("seg 1.ts", b"ts-bytes")], false).expect("start nginx");
    let base = nginx.base_url();
    // Path with a space: hashed decoded (as nginx $uri), sent percent-encoded.
    let url = nginx_secure_link_url(&base, "/s/seg 1.ts", now() + 60, None, SECRET).unwrap();
    assert!(url.contains("/s/seg%201.ts?"), "{url}");
    let (status, body) = get(&nginx, &url);
    assert_eq!(status, 200, "{url}\n{}", nginx.error_log());
    assert_eq!(body, b"ts-bytes");

    let bound =
        nginx_secure_link_url(&base, "/s/seg 1.ts", now() + 60, Some(CLIENT_IP), SECRET).unwrap();
    assert_eq!(get(&nginx, &bound).0, 403);
    let expired = nginx_secure_link_url(&base, "/s/seg 1.ts", now() - 1, None, SECRET).unwrap();
    assert_eq!(get(&nginx, &expired).0, 410);
}

#[test]
fn drop_stops_nginx() {
    if !nginx_available() {
        return;
    }
    let nginx = Nginx::start(SECRET, &[("a", b"a")]).expect("start nginx");
    let addr = nginx.addr();
    let dir = nginx.dir().to_path_buf();
    assert!(TcpStream::connect(addr).is_ok());
    drop(nginx);
    assert!(
        TcpStream::connect(addr).is_err(),
        "nginx still listening after drop"
    );
    assert!(!dir.exists(), "temp dir left behind");
}

/// A catalog whose one stream lives behind the harness nginx.
fn catalog_with_origin(origin: &str) -> String {
    serde_json::json!({
        "products": [
            { "id": "pass", "title": "Channel pass", "kind": "pass", "grants": ["channel:main"],
              "plans": [ { "id": "7d", "days": 7, "price": { "amount": 900, "currency": "CNY" } } ] }
        ],
        "streams": [
            { "id": "cam", "requires_any": ["channel:main"], "origin": origin }
        ]
    })
    .to_string()
}

/// Tollgate issues an `nginx`-format URL over HTTP; the real nginx serves it (200), refuses
/// it tampered (403), and refuses it once expired (410).
#[tokio::test]
async fn tollgate_issued_url_opens_nginx() {
    if !nginx_available() {
        return;
    }
    let nginx =
        Nginx::start_with(NGINX_SECRET, &[("live/cam.m3u8", BODY)], false).expect("start nginx");
    let catalog = catalog_with_origin(&format!("{}/s/live/cam.m3u8", nginx.base_url()));
    // nginx checks expiry against the real clock, so the app's clock starts at real time.
    let clock = ManualClock::at(now() - DAY);
    let store = store_for(Backend::Memory).await.unwrap();
    let app = test_app_with(store, clock.clone(), &[("CATALOG_JSON", catalog.as_str())]);
    let s = TestServer::start(app).await;
    s.buy("viewer", "pass", Some("7d")).await;

    let issue = |device: &'static str| {
        let s = &s;
        async move {
            let r = s
                .call(
                    "viewer",
                    "POST",
                    "/streams/cam/tokens",
                    Some(serde_json::json!({"device_id": device, "format": "nginx"})),
                )
                .await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            r.json()["url"].as_str().unwrap().to_owned()
        }
    };

    clock.set(now());
    let fresh = issue("phone").await;
    let (status, body) = get(&nginx, &fresh);
    assert_eq!(status, 200, "{fresh}\n{}", nginx.error_log());
    assert_eq!(body, BODY);

    let md5 = query_param(query_of(&fresh), "md5").unwrap().unwrap();
    let flipped = if md5.starts_with('A') { "B" } else { "A" };
    let tampered = fresh.replacen(&format!("md5={}", &md5[..1]), &format!("md5={flipped}"), 1);
    assert_eq!(get(&nginx, &tampered).0, 403, "{tampered}");

    // Issued 400 s ago with the 300 s default lifetime: signed correctly, but expired.
    clock.set(now() - 400);
    let expired = issue("phone").await;
    assert_eq!(
        get(&nginx, &expired).0,
        410,
        "{expired}\n{}",
        nginx.error_log()
    );
}

/// The `auth_request` block of README.md, verbatim but for `https://<api>`, which becomes
/// `api_base`: the test runs what the README tells operators to copy.
fn readme_auth_request_block(api_base: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let marker = "For the native format behind nginx, use `auth_request`";
    let after = readme
        .split_once(marker)
        .unwrap_or_else(|| panic!("README.md has no line starting {marker:?}"))
        .1;
    let block = after
        .split_once("```nginx\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("an nginx code block after the auth_request paragraph");
    assert!(block.contains("https://<api>"), "{block}");
    block.replace("https://<api>", api_base)
}

/// Two streams side by side, as in catalog.example.json: a pass opens `main` only.
fn two_stream_catalog() -> String {
    serde_json::json!({
        "products": [
            { "id": "pass", "title": "Channel pass", "kind": "pass", "grants": ["channel:main"],
              "plans": [ { "id": "7d", "days": 7, "price": { "amount": 900, "currency": "CNY" } } ] },
            { "id": "concert-1201", "title": "Concert", "kind": "event",
              "grants": ["stream:concert-1201"], "price": { "amount": 1800, "currency": "CNY" },
              "window": { "starts_at": "2027-01-16T08:00:00Z", "ends_at": "2027-01-16T11:00:00Z" } }
        ],
        "streams": [
            { "id": "concert-1201", "requires_any": ["stream:concert-1201"],
              "origin": "https://live.example.com/live/concert-1201.m3u8" },
            { "id": "main", "requires_any": ["channel:main"],
              "origin": "https://live.example.com/live/main.m3u8" }
        ]
    })
    .to_string()
}

/// nginx in front of the media files with the README's `auth_request` block, asking
/// Tollgate's `POST /streams/verify`: a token for `main` plays `main`, and no spelling of a
/// path (sent as is, like `curl --path-as-is`) makes it open the concert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_request_token_opens_only_its_stream() {
    if !nginx_available() {
        return;
    }
    const MAIN: &[u8] = b"#EXTM3U\nmain playlist\n";
    const MAIN_SEGMENT: &[u8] = b"main segment 17";
    const CONCERT: &[u8] = b"#EXTM3U\nconcert playlist\n";
    let clock = ManualClock::at(T0);
    let store = store_for(Backend::Memory).await.unwrap();
    let catalog = two_stream_catalog();
    let app = test_app_with(store, clock, &[("CATALOG_JSON", catalog.as_str())]);
    let s = TestServer::start(app).await;
    s.buy("viewer", "pass", Some("7d")).await;
    let r = s
        .call(
            "viewer",
            "POST",
            "/streams/main/tokens",
            Some(serde_json::json!({"device_id": "phone"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let nginx = Nginx::start_server(
        &readme_auth_request_block(&s.base),
        &[
            ("live/main.m3u8", MAIN),
            ("live/main-17.ts", MAIN_SEGMENT),
            ("live/concert-1201.m3u8", CONCERT),
        ],
    )
    .expect("start nginx");
    // nginx calls back into the server on this runtime while the request blocks.
    let fetch = |path: &str| tokio::task::block_in_place(|| get(&nginx, path));

    for (path, body) in [
        ("/live/main.m3u8", MAIN),
        ("/live/main-17.ts", MAIN_SEGMENT),
    ] {
        let url = format!("{path}?token={token}");
        let (status, got) = fetch(&url);
        assert_eq!(status, 200, "{url}\n{}", nginx.error_log());
        assert_eq!(got, body, "{url}");
    }
    let mut opened = Vec::new();
    for path in [
        "/live/main/../concert-1201.m3u8",
        "/live/main/%2e%2e/concert-1201.m3u8",
        "/live/main/%2E%2E/concert-1201.m3u8",
        "/live/main%2F..%2Fconcert-1201.m3u8",
        "/live/main/./../concert-1201.m3u8",
        "/live//concert-1201.m3u8",
        "/live/concert-1201.m3u8",
        "/live/concert-1201.m3u8/main",
        "/live/main-anything.m3u8",
    ] {
        let (status, got) = fetch(&format!("{path}?token={token}"));
        if status != 403 {
            opened.push(format!(
                "{path}: {status} {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(
        opened.is_empty(),
        "a token for `main` was not refused (403):\n{}",
        opened.join("\n")
    );
    assert_eq!(fetch("/live/main.m3u8").0, 403, "no token");
    assert_eq!(
        fetch("/live/main.m3u8?token=v1.t1.e30.AAAA").0,
        403,
        "forged token"
    );
}

/// GET through nginx from another loopback address (127.0.0.2), as a second client would;
/// the status.
async fn get_from_other_address(nginx: &Nginx, path: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let s = socket
        .connect(nginx.addr())
        .await
        .expect("connect to nginx");
    let mut s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tokio::task::block_in_place(|| {
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("read response");
        String::from_utf8_lossy(&resp)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    })
}

/// With `STREAM_BIND_IP`, a token plays through the README's `auth_request` block only for
/// the address it was issued to: nginx passes `$remote_addr` in `X-Real-IP`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_request_bound_token_plays_only_from_its_address() {
    if !nginx_available() {
        return;
    }
    const MAIN: &[u8] = b"#EXTM3U\nmain playlist\n";
    let store = store_for(Backend::Memory).await.unwrap();
    let catalog = two_stream_catalog();
    let app = test_app_with(
        store,
        ManualClock::at(T0),
        &[
            ("CATALOG_JSON", catalog.as_str()),
            ("STREAM_BIND_IP", "true"),
        ],
    );
    let s = TestServer::start(app).await;
    s.buy("viewer", "pass", Some("7d")).await;
    let r = s
        .call(
            "viewer",
            "POST",
            "/streams/main/tokens",
            Some(serde_json::json!({"device_id": "phone"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let nginx = Nginx::start_server(
        &readme_auth_request_block(&s.base),
        &[("live/main.m3u8", MAIN)],
    )
    .expect("start nginx");
    let url = format!("/live/main.m3u8?token={token}");
    // Issued to 127.0.0.1 (the test client's address towards Tollgate).
    let (status, body) = tokio::task::block_in_place(|| get(&nginx, &url));
    assert_eq!(status, 200, "{}", nginx.error_log());
    assert_eq!(body, MAIN);
    assert_eq!(get_from_other_address(&nginx, &url).await, 403);
}

/// With `STREAM_BIND_IP`, an `nginx`-format URL carries the address in its hash, so nginx
/// with `$remote_addr` in `secure_link_md5` serves it to that address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_secure_link_url_opens_nginx_only_from_its_address() {
    if !nginx_available() {
        return;
    }
    let nginx =
        Nginx::start_with(NGINX_SECRET, &[("live/cam.m3u8", BODY)], true).expect("start nginx");
    let catalog = catalog_with_origin(&format!("{}/s/live/cam.m3u8", nginx.base_url()));
    let clock = ManualClock::at(now() - DAY);
    let store = store_for(Backend::Memory).await.unwrap();
    let app = test_app_with(
        store,
        clock.clone(),
        &[
            ("CATALOG_JSON", catalog.as_str()),
            ("STREAM_BIND_IP", "true"),
        ],
    );
    let s = TestServer::start(app).await;
    s.buy("viewer", "pass", Some("7d")).await;
    clock.set(now());
    let r = s
        .call(
            "viewer",
            "POST",
            "/streams/cam/tokens",
            Some(serde_json::json!({"device_id": "tv", "format": "nginx"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let (status, body) = get(&nginx, &url);
    assert_eq!(status, 200, "{url}\n{}", nginx.error_log());
    assert_eq!(body, BODY);
    let path = url.strip_prefix(&nginx.base_url()).unwrap();
    assert_eq!(get_from_other_address(&nginx, path).await, 403);
}

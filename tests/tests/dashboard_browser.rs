//! The dashboard page (`GET /admin/`) in a real browser: headless Chromium, driven through
//! chromedriver, against the local server's routes with a seeded history (the same as
//! `stats_figures`: payments a minute before and after Shanghai's midnight, a refund). It
//! signs in with an operator's token, picks a range, and the figures it shows are the ones
//! `/admin/stats` answers (by product, by provider, and by business line or whatever the
//! breakdown selector picks); a second range changes them; a user's recent orders are listed;
//! the console stays free of errors; at a phone's width nothing overflows sideways.
//! Screenshots are written to the test's temporary directory (printed).
//!
//! Skipped when Chromium or chromedriver is missing, unless `TOLLGATE_REQUIRE_BROWSER=1`
//! (as `scripts/test` sets once it has installed them).

use serde_json::{json, Value};
use tollgate::clock::ManualClock;
use tollgate_tests::webdriver::{find_binaries, Browser};
use tollgate_tests::*;

const SH_MIDNIGHT: i64 = T0 + 8 * 3600;

async fn seed(s: &TestServer, clock: &ManualClock) {
    clock.set(SH_MIDNIGHT - 60);
    s.buy("alice", "pass", Some("7d")).await;
    let r = s
        .call(
            "bob",
            "POST",
            "/orders",
            Some(json!({"product_id": "coins-100", "provider": "sandbox"})),
        )
        .await;
    assert_eq!(r.status, 201);
    clock.set(SH_MIDNIGHT + 60);
    s.buy("alice", "coins-100", None).await;
    let carol = s.buy("carol", "pass", Some("7d")).await;
    s.refund(&carol, 900).await;
    // dave starts the concert's free preview.
    let r = s
        .call(
            "dave",
            "POST",
            "/streams/concert/tokens",
            Some(json!({"device_id": "phone"})),
        )
        .await;
    assert_eq!(r.json()["preview"], true);
    // A callback for an order that does not exist is refused, and counted.
    let cb = json!({"order_id": "01KA0000000000000000000000", "transaction_id": "nope",
                    "status": "paid", "amount": {"amount": 600, "currency": "CNY"},
                    "timestamp": SH_MIDNIGHT + 60});
    assert_eq!(s.sandbox_callback(&cb).await.status, 404);
}

/// A store subscription started before Shanghai's midnight and renewed after it, as the
/// store paths write them (the record, its change's counters and events).
async fn seed_subscription(store: &dyn tollgate::store::Store) {
    use tollgate::domain::subscription::{change, from_milliunits, Facts, Version};
    use tollgate::domain::PurchaseState;
    let mut p = tollgate::store::StorePurchase {
        store: "apple".into(),
        purchase_id: "dash-sub".into(),
        user_id: "dora".into(),
        product_id: "vip".into(),
        state: PurchaseState::Active,
        expires_at: Some(SH_MIDNIGHT + 30 * DAY),
        last_event_at: (SH_MIDNIGHT - 120) * 1000,
        last_txn_id: Some("t1".into()),
        order_id: None,
        grants: Vec::new(),
    };
    fn version(p: &tollgate::store::StorePurchase) -> Version<'_> {
        Version {
            state: p.state,
            last_txn_id: p.last_txn_id.as_deref(),
            last_event_at: p.last_event_at,
            expires_at: p.expires_at,
        }
    }
    let facts = |at| Facts {
        store: "apple",
        source_id: "apple:dash-sub",
        user_id: "dora",
        product_id: "vip",
        price: from_milliunits(4_990, "USD"),
        auto_renew_off: false,
        at,
    };
    let started = change(None, &version(&p), &facts(SH_MIDNIGHT - 120));
    store.put_purchase_change(&p, &started).await.unwrap();
    let first = p.clone();
    p.last_txn_id = Some("t2".into());
    p.last_event_at = (SH_MIDNIGHT + 120) * 1000;
    let renewed = change(
        Some(&version(&first)),
        &version(&p),
        &facts(SH_MIDNIGHT + 120),
    );
    assert_eq!(renewed.events.len(), 1);
    store.put_purchase_change(&p, &renewed).await.unwrap();
}

/// What the page shows: each KPI's value and text, and each breakdown row's values.
const SHOWN: &str = r##"
const kpis = {};
for (const el of document.querySelectorAll("[data-kpi]")) {
  kpis[el.dataset.kpi] = { value: JSON.parse(el.dataset.value), text: el.querySelector(".v").textContent };
}
const rows = (id) => {
  const out = {};
  for (const tr of document.querySelectorAll("#" + id + " tr[data-group]")) {
    const r = {};
    for (const td of tr.querySelectorAll("td[data-col]")) r[td.dataset.col] = JSON.parse(td.dataset.value);
    out[tr.dataset.group] = r;
  }
  return out;
};
return { kpis, product: rows("by-product"), provider: rows("by-provider"), days: rows("days"),
         subscriptions: rows("subscriptions"),
         chosen: rows("by-chosen"), chosen_by: document.getElementById("by-chosen").dataset.by,
         streams: rows("streams"), rejections: rows("rejections"),
         range: document.body.dataset.range, zone: document.getElementById("zone").textContent };
"##;

/// JSON equality with numbers compared as numbers (the browser writes 1.0 as 1).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn loaded(n: u32) -> String {
    format!("return document.body.dataset.loaded === '{n}';")
}

/// The figures shown equal `/admin/stats`'s for the same range, value for value.
async fn assert_shows(s: &TestServer, b: &Browser, from: &str, to: &str) -> Value {
    let shown = b.run(SHOWN, json!([])).await;
    let api = |by: &str| {
        let path = format!("/admin/stats?from={from}&to={to}&by={by}");
        async move {
            let r = s.admin("GET", &path, None).await;
            assert_eq!(r.status, 200);
            r.json()
        }
    };
    let (by_product, by_provider) = (api("product").await, api("provider").await);
    assert_eq!(shown["range"], format!("{from}..{to}"));
    assert_eq!(shown["zone"], by_product["time_zone"]);
    let total = &by_product["total"];
    for (k, v) in shown["kpis"].as_object().unwrap() {
        assert!(
            same(&v["value"], &total[k]),
            "{k}: shown {} vs /admin/stats {}",
            v["value"],
            total[k]
        );
    }
    let figure_cols = |api_by: &Value, shown_rows: &Value| {
        let api_by = api_by.as_object().unwrap();
        let shown_rows = shown_rows.as_object().unwrap();
        assert_eq!(
            api_by.keys().collect::<Vec<_>>(),
            shown_rows.keys().collect::<Vec<_>>()
        );
        for (group, cols) in shown_rows {
            for (col, v) in cols.as_object().unwrap() {
                assert!(
                    same(v, &api_by[group][col]),
                    "{group} {col}: shown {v} vs {}",
                    api_by[group][col]
                );
            }
        }
    };
    figure_cols(&total["by"], &shown["product"]);
    // Store subscriptions: the total and each product that counted any.
    let mut subs = serde_json::Map::new();
    subs.insert("all".into(), total["subscriptions"].clone());
    for (p, f) in total["by"].as_object().unwrap() {
        let f = &f["subscriptions"];
        let any = f.as_object().unwrap().iter().any(|(k, v)| {
            if k == "renewal_revenue" {
                !v.as_object().unwrap().is_empty()
            } else {
                v != 0
            }
        });
        if any {
            subs.insert(p.clone(), f.clone());
        }
    }
    assert!(
        same(&Value::Object(subs), &shown["subscriptions"]),
        "subscriptions: shown {} vs /admin/stats {}",
        shown["subscriptions"],
        total
    );
    figure_cols(&by_provider["total"]["by"], &shown["provider"]);
    // The breakdown picked (business line unless changed) is `by=<it>`'s, row for row.
    let chosen = shown["chosen_by"].as_str().unwrap().to_owned();
    figure_cols(&api(&chosen).await["total"]["by"], &shown["chosen"]);
    figure_cols(&total["streams"], &shown["streams"]);
    figure_cols(&total["rejections"], &shown["rejections"]);
    for day in by_product["days"].as_array().unwrap() {
        let d = day["day"].as_str().unwrap();
        for col in [
            "orders_created",
            "orders_paid",
            "net_revenue",
            "repurchase_rate",
        ] {
            assert!(same(&shown["days"][d][col], &day[col]), "{d} {col}");
        }
    }
    shown
}

/// The catalog with two business lines: the pass and the concert, and coins (with the rest).
fn lined_catalog() -> String {
    let mut catalog: Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["lines"] = json!([
        {"id": "shows", "products": {"ids": ["pass", "concert"]}},
        {"id": "shop", "products": {"pattern": "*i*"}},
    ]);
    catalog.to_string()
}

/// The local server over a seeded history (payments, a refund, a preview, a refused callback
/// and a store subscription), its store and clock.
async fn seeded() -> (
    TestServer,
    std::sync::Arc<dyn tollgate::store::Store>,
    ManualClock,
) {
    let clock = ManualClock::at(T0);
    let store = store_for(Backend::Memory).await.unwrap();
    let catalog = lined_catalog();
    let s = TestServer::start(test_app_with(
        store.clone(),
        clock.clone(),
        &[("CATALOG_JSON", catalog.as_str())],
    ))
    .await;
    seed(&s, &clock).await;
    seed_subscription(&*store).await;
    (s, store, clock)
}

/// Chromium and chromedriver, or `None` (the test is skipped) unless they are required.
fn browser_binaries() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let found = find_binaries();
    if found.is_none() {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "TOLLGATE_REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
        );
        eprintln!("skipped: chromium and chromedriver not found");
    }
    found
}

/// Opens the page at `base`, signs in with an operator's token and waits for the first
/// figures (the default range).
async fn sign_in(b: &Browser, base: &str) {
    b.goto(&format!("{base}/admin/")).await;
    b.wait_for(
        "the sign-in form",
        "return !document.getElementById('signin-panel').hidden && document.getElementById('app').hidden;",
        json!([]),
    )
    .await;
    let token = admin_bearer("ops");
    b.type_into("#token", token.trim_start_matches("Bearer "))
        .await;
    b.click("#signin").await;
    // Signed in: the default range (the last seven days of the real clock) loads first.
    b.wait_for("the first figures", &loaded(1), json!([])).await;
}

/// Lists `user`'s recent orders (the support route) and waits for `n` rows.
async fn shows_recent_orders(b: &Browser, user: &str, n: usize) {
    b.type_into("#recent-user", user).await;
    b.click("#recent-load").await;
    b.wait_for(
        &format!("{user}'s orders"),
        "return document.querySelectorAll('#recent tr[data-order]').length === arguments[0];",
        json!([n]),
    )
    .await;
}

async fn console_errors(b: &Browser) -> Vec<(String, String)> {
    b.console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_api_answers_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let (s, _store, _clock) = seeded().await;

    let b = Browser::start(&chromium, &chromedriver, 1200, 2200).await;
    sign_in(&b, &s.base).await;

    let pick = "document.getElementById('from').value = arguments[0]; \
                document.getElementById('to').value = arguments[1];";
    b.run(pick, json!(["2027-01-15", "2027-01-16"])).await;
    b.click("#apply").await;
    b.wait_for("the picked range", &loaded(2), json!([])).await;
    let both = assert_shows(&s, &b, "2027-01-15", "2027-01-16").await;
    // Spot checks of the text, in the operator's terms.
    assert_eq!(both["kpis"]["orders_created"]["text"], "4");
    assert_eq!(both["kpis"]["orders_paid"]["text"], "3");
    assert_eq!(both["kpis"]["conversion_rate"]["text"], "75.0%");
    assert_eq!(both["kpis"]["net_revenue"]["text"], "15.00 CNY");
    assert_eq!(both["kpis"]["revenue_per_paying_user"]["text"], "12.00 CNY");
    assert_eq!(both["kpis"]["repurchase_rate"]["text"], "50.0%");
    assert_eq!(both["zone"], "Asia/Shanghai");
    assert_eq!(both["subscriptions"]["all"]["renewals"], 1);
    assert_eq!(both["subscriptions"]["vip"]["starts"], 1);
    assert_eq!(both["subscriptions"]["vip"]["renewal_revenue"]["USD"], 499);
    // By business line (the default breakdown): the pass's line and the coins' line.
    assert_eq!(both["chosen_by"], "line");
    assert_eq!(both["chosen"]["shows"]["orders_paid"], 2);
    assert_eq!(both["chosen"]["shop"]["orders_created"], 2);
    assert_eq!(both["chosen"]["shop"]["orders_paid"], 1);
    assert_eq!(both["streams"]["concert"]["previews"], 1);
    assert_eq!(both["streams"]["concert"]["purchases"], 0);
    assert_eq!(both["rejections"]["sandbox"]["total"], 1);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let desktop = dir.join("dashboard-desktop.png");
    b.screenshot(&desktop).await;

    // The range picker changes the figures: the 16th alone.
    b.run(pick, json!(["2027-01-16", "2027-01-16"])).await;
    b.click("#apply").await;
    b.wait_for("the second range", &loaded(3), json!([])).await;
    let one = assert_shows(&s, &b, "2027-01-16", "2027-01-16").await;
    assert_eq!(one["kpis"]["orders_created"]["text"], "2");
    assert_eq!(one["kpis"]["net_revenue"]["text"], "6.00 CNY");
    assert_ne!(one["kpis"], both["kpis"]);

    // The breakdown selector: by provider instead, for the same range.
    b.run(
        "const s = document.getElementById('breakdown'); s.value = 'provider'; \
         s.dispatchEvent(new Event('change'));",
        json!([]),
    )
    .await;
    b.wait_for("the provider breakdown", &loaded(4), json!([]))
        .await;
    let by_provider = assert_shows(&s, &b, "2027-01-16", "2027-01-16").await;
    assert_eq!(by_provider["chosen_by"], "provider");
    assert_eq!(by_provider["chosen"]["sandbox"]["orders_paid"], 2);

    // A user's recent orders, through the support route.
    shows_recent_orders(&b, "alice", 2).await;

    // At a phone's width the page is still one column wide: nothing scrolls sideways.
    b.resize(390, 844).await;
    b.wait_for(
        "the phone layout",
        "return window.innerWidth <= 400 && document.documentElement.scrollWidth <= window.innerWidth;",
        json!([]),
    )
    .await;
    let phone = dir.join("dashboard-phone.png");
    b.screenshot(&phone).await;

    let errors = console_errors(&b).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    println!("screenshots: {} {}", desktop.display(), phone.display());
    b.quit().await;
}

/// Without a browser: the page needs no credentials, is HTML, and may talk to its own origin
/// only; a function that does not serve `/admin/stats` does not serve it either.
#[tokio::test]
async fn the_page_is_served_with_its_policy() {
    let s = TestServer::start(test_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    ))
    .await;
    for path in ["/admin/", "/admin"] {
        let r = s.request("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.content_type(), "text/html; charset=utf-8");
        assert_eq!(
            r.headers["content-security-policy"],
            tollgate::api::dashboard::CONTENT_SECURITY_POLICY
        );
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.body, tollgate_dashboard::PAGE.as_bytes());
    }
    assert_eq!(s.request("POST", "/admin/", &[], "").await.status, 405);
    let app = s.app.clone();
    for routes in [
        tollgate::api::Routes::Callbacks,
        tollgate::api::Routes::Streams,
        tollgate::api::Routes::StoreNotifications,
    ] {
        let req = http::Request::builder()
            .uri("/admin/")
            .body(bytes::Bytes::new())
            .unwrap();
        let r = tollgate::api::handle(&app, routes, req).await;
        assert_eq!(r.status(), 404, "{routes:?}");
    }
    let req = http::Request::builder()
        .uri("/admin/")
        .body(bytes::Bytes::new())
        .unwrap();
    let r = tollgate::api::handle(&app, tollgate::api::Routes::Orders, req).await;
    assert_eq!(r.status(), 200);
}

/// In AWS: the page and its reads through the operators' API as `template.yaml` declares it.
/// A stand-in for API Gateway on loopback serves `OperatorApi`'s routes (its JWT authorizer,
/// payload-2.0 events into the functions' Lambda handlers with `AUTH_MODE=apigw`, their
/// answers back through `lambda_http`), over the same store as the local server. Without a
/// browser: the page is open, the reads need a token with an operator's role, and answer what
/// the local server answers; then in Chromium the page signs in there, and every figure it
/// shows is `/admin/stats`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_aws_the_dashboard_reads_through_the_operators_api() {
    use tollgate_tests::api_gateway::ApiGateway;
    use tollgate_tests::template_routes;
    let (s, store, clock) = seeded().await;
    let vars = std::collections::HashMap::from([
        ("CATALOG_JSON", lined_catalog()),
        ("AUTH_MODE", "apigw".to_owned()),
    ]);
    let config = tollgate::config::Config::from_lookup(tollgate::config::Profile::Lambda, |k| {
        vars.get(k).cloned()
    })
    .unwrap();
    let lambda_app = std::sync::Arc::new(
        tollgate::app::App::new(config, store, std::sync::Arc::new(clock)).unwrap(),
    );
    let doc = template_routes::template();
    let gw = ApiGateway::start(
        template_routes::on(&doc, "OperatorApi"),
        lambda_app,
        JWT_SECRET,
    )
    .await;

    // The page needs nothing; it is the function's page, with its policy.
    let page = request_to(&gw.base, "GET", "/admin/", &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert_eq!(
        page.headers["content-security-policy"],
        tollgate::api::dashboard::CONTENT_SECURITY_POLICY
    );
    assert_eq!(page.body, tollgate_dashboard::PAGE.as_bytes());
    // The reads: the gateway refuses a request without a token, the function a viewer's.
    let stats = "/admin/stats?from=2027-01-15&to=2027-01-16&by=line";
    let none = request_to(&gw.base, "GET", stats, &[], "").await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json(), json!({"message": "Unauthorized"}));
    let viewer = bearer("alice");
    let r = request_to(&gw.base, "GET", stats, &[("authorization", &viewer)], "").await;
    r.assert_problem(403);
    let support = bearer_with_scope("sup", Some(tollgate::api::auth::SUPPORT_ROLE));
    let r = request_to(&gw.base, "GET", stats, &[("authorization", &support)], "").await;
    assert_eq!(r.status, 200);
    let local = s.admin("GET", stats, None).await;
    assert_eq!(r.json(), local.json());
    assert_eq!(r.json()["total"]["by"]["shows"]["orders_paid"], 2);
    // stream-token's routes too, and the role still counts: support reads, changes nothing.
    let r = request_to(
        &gw.base,
        "GET",
        "/admin/users/alice",
        &[("authorization", &support)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user_id"], "alice");
    let ban = json!({"stream_id": "concert"}).to_string();
    let r = request_to(
        &gw.base,
        "POST",
        "/admin/users/dave/bans",
        &[
            ("authorization", &support),
            ("content-type", "application/json"),
        ],
        ban,
    )
    .await;
    r.assert_problem(403);
    // Only the operators' routes are there.
    let admin = admin_bearer("ops");
    let r = request_to(&gw.base, "GET", "/orders", &[("authorization", &admin)], "").await;
    assert_eq!(r.status, 404);

    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let b = Browser::start(&chromium, &chromedriver, 1200, 2200).await;
    sign_in(&b, &gw.base).await;
    b.run(
        "document.getElementById('from').value = arguments[0]; \
         document.getElementById('to').value = arguments[1];",
        json!(["2027-01-15", "2027-01-16"]),
    )
    .await;
    b.click("#apply").await;
    b.wait_for("the picked range", &loaded(2), json!([])).await;
    let shown = assert_shows(&s, &b, "2027-01-15", "2027-01-16").await;
    assert_eq!(shown["kpis"]["orders_paid"]["text"], "3");
    assert_eq!(shown["chosen"]["shows"]["orders_paid"], 2);
    shows_recent_orders(&b, "alice", 2).await;
    let errors = console_errors(&b).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-aws.png");
    b.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());
    b.quit().await;
}

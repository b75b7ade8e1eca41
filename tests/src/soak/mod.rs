//! A simulated day under faults (`tests/tests/soak.rs`, `scripts/soak`): mixed traffic
//! against the local server while the store fails and stalls at random, WeChat Pay's order
//! queries fail or hang, notifications are lost or duplicated and the process is killed
//! and restarted on the same `LOCAL_QUEUE_FILE`. Then, with the faults off, a last round
//! drains everything, and [`check`] holds Tollgate's records against what the fake
//! providers recorded.
//!
//! Time is a [`ManualClock`] moved in 5-minute ticks; each tick draws, from the seed, the
//! tick's new orders, payments, taps on "I paid", cancellations, refunds, Huya sales and
//! entitlement reads and token issues, and runs them all at once beside a sweep.

pub mod check;
pub mod process;
pub mod provider;

use crate::faults::{FaultyStore, StoreFaultCounts, StoreFaultRates};
use crate::fuzz::rng::Rng;
use crate::{bearer, huya, test_config, wechat, T0};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use process::Process;
use provider::{FakeWechatPay, HuyaSale, Notice, Notified, ProviderFaultRates};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::clock::{Clock, ManualClock};
use tollgate::service::sweep::SweepReport;
use tollgate::store::Store;

pub const TICK_S: i64 = 300;

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub seed: u64,
    pub hours: u32,
    pub users: u32,
    /// New orders per user and tick, per 1,000.
    pub order_rate: u32,
    /// Kills per tick, per 1,000.
    pub kill_rate: u32,
    pub store: StoreFaultRates,
    pub provider: ProviderFaultRates,
}

impl SoakConfig {
    /// The form the test command runs.
    pub fn short(seed: u64, hours: u32, users: u32) -> Self {
        SoakConfig {
            seed,
            hours,
            users,
            order_rate: 60,
            kill_rate: 90,
            store: StoreFaultRates {
                fail_before: 300,
                fail_after: 300,
                delay: 300,
                max_delay_ms: 20,
            },
            provider: ProviderFaultRates {
                error: 1_000,
                hang: 30,
            },
        }
    }

    /// `short` with `SOAK_SEED`, `SOAK_HOURS` and `SOAK_USERS` from the environment.
    pub fn from_env(seed: u64, hours: u32, users: u32) -> Self {
        let var = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .map(|v| {
                    v.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{k} must be a number"))
                })
                .unwrap_or(d)
        };
        Self::short(
            var("SOAK_SEED", seed),
            var("SOAK_HOURS", hours.into()) as u32,
            var("SOAK_USERS", users.into()) as u32,
        )
    }
}

/// What happened, for the figures.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub ticks: u64,
    pub create_requests: u64,
    pub orders_created: u64,
    pub payments: u64,
    pub callbacks_lost: u64,
    pub callbacks_duplicated: u64,
    pub deliveries: u64,
    pub redeliveries: u64,
    pub refunds_full: u64,
    pub refunds_partial: u64,
    pub huya_sales: u64,
    pub confirms: u64,
    pub cancels: u64,
    pub reads: u64,
    pub kills: u64,
    pub jobs_restored: u64,
    pub connection_failures: u64,
    pub statuses: BTreeMap<String, u64>,
    pub sweep: SweepTotals,
    pub store_faults: StoreFaultCounts,
    pub provider_queries: u64,
    pub provider_query_errors: u64,
    pub provider_query_hangs: u64,
    pub drain_rounds: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct SweepTotals {
    pub runs: u64,
    pub settled: u64,
    pub expired: u64,
    pub deferred: u64,
    pub handed_off: u64,
    pub errors: u64,
}

impl SweepTotals {
    fn add(&mut self, r: &SweepReport) {
        self.runs += 1;
        self.settled += u64::from(r.settled);
        self.expired += u64::from(r.expired);
        self.deferred += u64::from(r.deferred);
        self.handed_off += u64::from(r.handed_off);
        self.errors += u64::from(r.errors);
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.store_faults;
        writeln!(
            f,
            "ticks {} (5 min each), real time {:.1} s",
            self.ticks,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "orders: {} create requests, {} orders created, {} cancel taps, {} confirm taps",
            self.create_requests, self.orders_created, self.cancels, self.confirms
        )?;
        writeln!(f, "payments: {} at WeChat Pay, {} Huya sales; callbacks lost {}, duplicated {}, deliveries {} ({} redeliveries)", self.payments, self.huya_sales, self.callbacks_lost, self.callbacks_duplicated, self.deliveries, self.redeliveries)?;
        writeln!(
            f,
            "refunds: {} full, {} partial",
            self.refunds_full, self.refunds_partial
        )?;
        writeln!(f, "entitlement reads and token issues: {}", self.reads)?;
        writeln!(
            f,
            "sweeps: {} runs, settled {}, expired {}, deferred {}, handed off {}, errors {}",
            self.sweep.runs,
            self.sweep.settled,
            self.sweep.expired,
            self.sweep.deferred,
            self.sweep.handed_off,
            self.sweep.errors
        )?;
        writeln!(
            f,
            "store: {} calls, failed before {}, failed after the write {}, delayed {}",
            s.calls, s.failed_before, s.failed_after, s.delayed
        )?;
        writeln!(
            f,
            "WeChat Pay queries and closes: {}, failed {}, hung {}",
            self.provider_queries, self.provider_query_errors, self.provider_query_hangs
        )?;
        writeln!(
            f,
            "kills: {}, jobs restored from the queue file: {}, requests cut by a kill: {}",
            self.kills, self.jobs_restored, self.connection_failures
        )?;
        writeln!(f, "final drain rounds: {}", self.drain_rounds)?;
        write!(f, "answers:")?;
        for (k, v) in &self.statuses {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// An order the simulated customer asked for, until Tollgate answers with one.
#[derive(Debug, Clone)]
struct Want {
    user: String,
    product: &'static str,
    plan: Option<&'static str>,
    key: String,
    tries: u32,
}

/// An order Tollgate created for the simulated customer.
#[derive(Debug, Clone)]
pub struct Bought {
    pub user: String,
    pub product: String,
    pub total: i64,
    pub credits: i64,
    pub scopes: Vec<String>,
    pay_at: Option<u64>,
    confirm: bool,
    cancel_at: Option<u64>,
}

/// (product, plan, price, credits, scopes) of what the soak's customers buy.
const MENU: &[(&str, Option<&str>, i64, i64, &str)] = &[
    ("pass", Some("7d"), 900, 0, "channel:main"),
    ("pass", Some("30d"), 3000, 0, "channel:main"),
    ("concert", None, 1800, 0, "stream:concert"),
    ("coins-100", None, 600, 100, ""),
];

/// (goods, level) of Huya sales.
const HUYA_MENU: &[(&str, &str)] = &[("hy-pass", "1"), ("hy-pass", "2"), ("hy-coins", "1")];
pub const HUYA_PROFILES: u32 = 5;

enum Done {
    Created(usize, Result<(u16, Bytes), String>),
    Delivered(u64, Vec<Result<(u16, Bytes), String>>),
    Answered(&'static str, Result<(u16, Bytes), String>),
    Swept(Option<SweepReport>),
}

/// Runs the soak over `store` (memory or DynamoDB) and checks the end state; panics with
/// every breach found. Returns the figures.
pub async fn run(store: Arc<dyn Store>, cfg: &SoakConfig) -> Figures {
    let started = Instant::now();
    let clock = ManualClock::at(T0);
    let faulty = FaultyStore::new(store.clone(), cfg.store, cfg.seed);
    let wechat = FakeWechatPay::start(clock.clone(), cfg.provider, cfg.seed).await;
    let mut env: Vec<(&str, String)> = wechat::env(&wechat.server.base);
    env.extend(huya::env());
    env.retain(|(k, _)| *k != "PROVIDERS");
    env.push(("PROVIDERS", "sandbox,wechat,huya".into()));
    env.push(("PROVIDER_HTTP_TIMEOUT_SECONDS", "1".into()));
    env.push(("SWEEP_INTERVAL_SECONDS", "86400".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = || test_config(&env_ref);
    let queue_file: PathBuf = std::env::temp_dir().join(format!(
        "tollgate-soak-{}-{}.json",
        std::process::id(),
        cfg.seed
    ));
    let _ = std::fs::remove_file(&queue_file);
    let mut process = Process::start(config(), faulty.clone(), &clock, queue_file.clone());

    let mut rng = Rng::for_run(cfg.seed, "soak", 0);
    let mut fig = Figures::default();
    let mut wants: Vec<Want> = Vec::new();
    let mut bought: HashMap<String, Bought> = HashMap::new();
    let mut outbox: BTreeMap<u64, Notice> = BTreeMap::new();
    let mut notice_seq = 0u64;
    let mut huya_seq = 0u64;
    let ticks = u64::from(cfg.hours) * 3600 / TICK_S as u64;
    let users: Vec<String> = (0..cfg.users).map(|i| format!("soak-{i}")).collect();

    for tick in 0..ticks {
        clock.advance(TICK_S);
        fig.ticks += 1;
        let now = clock.now();
        let base = process.base.clone();
        let mut jobs: tokio::task::JoinSet<Done> = tokio::task::JoinSet::new();

        // New orders, and creates retried with their key after a failed answer.
        for u in &users {
            if rng.chance(cfg.order_rate, 1_000) {
                let (product, plan, ..) = *rng.pick(MENU);
                wants.push(Want {
                    user: u.clone(),
                    product,
                    plan,
                    key: format!("{u}-{tick}-{}", rng.next_u64() % 1_000_000),
                    tries: 0,
                });
            }
        }
        for (i, w) in wants.iter_mut().enumerate().filter(|(_, w)| w.tries < 4) {
            w.tries += 1;
            fig.create_requests += 1;
            let mut body = json!({"product_id": w.product, "provider": "wechat"});
            if let Some(p) = w.plan {
                body["plan_id"] = json!(p);
            }
            let (base, user, key) = (base.clone(), w.user.clone(), w.key.clone());
            jobs.spawn(async move {
                let r = call(&base, &user, "POST", "/orders", Some(body), Some(&key)).await;
                Done::Created(i, r)
            });
        }

        // Payments at WeChat Pay, cancellations and "I paid" taps.
        let mut due_pay = Vec::new();
        let mut due_cancel = Vec::new();
        for (id, b) in &bought {
            if b.pay_at == Some(tick) {
                due_pay.push(id.clone());
            }
            if b.cancel_at == Some(tick) {
                due_cancel.push((id.clone(), b.user.clone()));
            }
        }
        due_pay.sort();
        due_cancel.sort();
        for id in due_pay {
            if let Some(body) = wechat.pay(&id) {
                fig.payments += 1;
                let copies = match rng.below(100) {
                    0..=9 => 0,
                    10..=24 => 2,
                    _ => 1,
                };
                notice_seq += 1;
                outbox.insert(
                    notice_seq,
                    Notice {
                        what: Notified::Wechat(body),
                        first_copies: copies,
                        deliveries: 0,
                    },
                );
                if bought.get(&id).is_some_and(|b| b.confirm) {
                    fig.confirms += 1;
                    let (base, user) = (base.clone(), bought[&id].user.clone());
                    let path = format!("/orders/{id}/confirm");
                    jobs.spawn(async move {
                        Done::Answered(
                            "confirm",
                            call(&base, &user, "POST", &path, None, None).await,
                        )
                    });
                }
            }
        }
        for (id, user) in due_cancel {
            fig.cancels += 1;
            let base = base.clone();
            let path = format!("/orders/{id}/cancel");
            jobs.spawn(async move {
                Done::Answered(
                    "cancel",
                    call(&base, &user, "POST", &path, None, None).await,
                )
            });
        }

        // Refunds made at WeChat Pay's console, of trades it recorded as paid.
        if rng.chance(300, 1_000) {
            let paid: Vec<(String, i64, i64)> = {
                let l = wechat.ledger.lock().unwrap();
                let mut v: Vec<_> = l
                    .trades
                    .iter()
                    .filter(|(_, t)| {
                        t.state == provider::TradeState::Success && t.refunded() < t.total
                    })
                    .map(|(id, t)| (id.clone(), t.total, t.refunded()))
                    .collect();
                v.sort();
                v
            };
            if !paid.is_empty() {
                let (id, total, refunded) = rng.pick(&paid).clone();
                let amount = if refunded == 0 && rng.chance(1, 4) {
                    total / 2
                } else {
                    total - refunded
                };
                if let Some(body) = wechat.refund(&id, amount) {
                    if refunded + amount == total {
                        fig.refunds_full += 1;
                    } else {
                        fig.refunds_partial += 1;
                    }
                    notice_seq += 1;
                    outbox.insert(
                        notice_seq,
                        Notice {
                            what: Notified::Wechat(body),
                            first_copies: if rng.chance(1, 5) { 2 } else { 1 },
                            deliveries: 0,
                        },
                    );
                }
            }
        }

        // Huya sales.
        if rng.chance(200, 1_000) {
            huya_seq += 1;
            fig.huya_sales += 1;
            let (goods, level) = *rng.pick(HUYA_MENU);
            let mut n = provider::huya_sale(
                &wechat.ledger,
                HuyaSale {
                    order_id: format!("HY-{}-{huya_seq}", cfg.seed),
                    profile: format!("p{}", rng.below(HUYA_PROFILES as usize)),
                    goods: goods.into(),
                    level: level.into(),
                },
            );
            n.first_copies = if rng.chance(1, 5) { 2 } else { 1 };
            notice_seq += 1;
            outbox.insert(notice_seq, n);
        }

        // Every notice not yet acknowledged is (re)delivered.
        for (id, n) in outbox.iter_mut() {
            let copies = if n.deliveries == 0 { n.first_copies } else { 1 };
            if n.deliveries == 0 {
                match copies {
                    0 => fig.callbacks_lost += 1,
                    2 => fig.callbacks_duplicated += 1,
                    _ => {}
                }
            } else {
                fig.redeliveries += 1;
            }
            n.deliveries += 1;
            let (id, base, n) = (*id, base.clone(), n.clone());
            jobs.spawn(async move {
                let mut sends = tokio::task::JoinSet::new();
                for _ in 0..copies {
                    let base = base.clone();
                    let (path, headers, body) = n.request(now);
                    sends.spawn(async move { send(&base, "POST", path, &headers, body).await });
                }
                let mut out = Vec::new();
                while let Some(r) = sends.join_next().await {
                    out.push(r.unwrap_or_else(|e| Err(e.to_string())));
                }
                Done::Delivered(id, out)
            });
        }

        // Viewers asking what they may watch, and for stream tokens.
        for _ in 0..3 {
            fig.reads += 1;
            let user = rng.pick(&users).clone();
            let base = base.clone();
            let device = format!("d{}", rng.below(3));
            if rng.chance(1, 2) {
                jobs.spawn(async move {
                    Done::Answered(
                        "entitlements",
                        call(&base, &user, "GET", "/entitlements", None, None).await,
                    )
                });
            } else {
                jobs.spawn(async move {
                    let body = json!({"device_id": device, "format": "native"});
                    Done::Answered(
                        "token",
                        call(
                            &base,
                            &user,
                            "POST",
                            "/streams/concert/tokens",
                            Some(body),
                            None,
                        )
                        .await,
                    )
                });
            }
        }

        // The sweeper's schedule, on the server.
        let app = process.app.clone();
        let sweep_task =
            process.spawn(async move { tollgate::service::sweep::sweep(&app, i64::MAX).await });

        // A kill in the middle of it all.
        if rng.chance(cfg.kill_rate, 1_000) {
            tokio::time::sleep(Duration::from_millis(rng.below(40) as u64)).await;
            let queue = process.queue.clone();
            process.kill().await;
            fig.kills += 1;
            let waiting = queue.len();
            let kept = jobs_in_file(&queue_file);
            assert_eq!(
                kept, waiting,
                "tick {tick}: {waiting} job(s) waiting or running at the kill, {kept} kept in LOCAL_QUEUE_FILE"
            );
            fig.jobs_restored += waiting as u64;
            process = Process::start(config(), faulty.clone(), &clock, queue_file.clone());
        }

        let mut results = Vec::new();
        while let Some(r) = jobs.join_next().await {
            results.push(r.expect("soak task"));
        }
        if let Some(t) = sweep_task {
            results.push(Done::Swept(t.await.ok()));
        }
        for d in results {
            match d {
                Done::Created(i, r) => {
                    let Some(w) = wants.get_mut(i) else { continue };
                    match r {
                        Ok((status @ (200 | 201), body)) => {
                            fig.count("create", status);
                            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let Some(id) = v["order_id"].as_str() else {
                                fig.count("create-unreadable", status);
                                continue;
                            };
                            w.tries = u32::MAX;
                            if bought.contains_key(id) {
                                continue;
                            }
                            fig.orders_created += 1;
                            let (_, _, total, credits, scope) = *MENU
                                .iter()
                                .find(|m| m.0 == w.product && m.1 == w.plan)
                                .expect("menu item");
                            let roll = rng.below(100);
                            let pay_at = (roll < 70).then(|| tick + 1 + rng.below(2) as u64);
                            let cancel_at = (roll >= 85).then_some(tick + 1);
                            bought.insert(
                                id.to_owned(),
                                Bought {
                                    user: w.user.clone(),
                                    product: w.product.into(),
                                    total,
                                    credits,
                                    scopes: if scope.is_empty() {
                                        vec![]
                                    } else {
                                        vec![scope.into()]
                                    },
                                    pay_at,
                                    confirm: rng.chance(3, 10),
                                    cancel_at,
                                },
                            );
                        }
                        Ok((status, _)) => fig.count("create", status),
                        Err(_) => fig.connection_failures += 1,
                    }
                }
                Done::Delivered(id, rs) => {
                    let mut acked = false;
                    for r in rs {
                        fig.deliveries += 1;
                        match r {
                            Ok((status, _)) => {
                                fig.count("callback", status);
                                acked |= (200..300).contains(&status);
                            }
                            Err(_) => fig.connection_failures += 1,
                        }
                    }
                    let lost = outbox
                        .get(&id)
                        .is_some_and(|n| n.first_copies == 0 && n.deliveries == 1);
                    if acked || lost {
                        outbox.remove(&id);
                    }
                }
                Done::Answered(what, r) => match r {
                    Ok((status, _)) => fig.count(what, status),
                    Err(_) => fig.connection_failures += 1,
                },
                Done::Swept(Some(r)) => fig.sweep.add(&r),
                Done::Swept(None) => {}
            }
        }
        wants.retain(|w| w.tries < 4);
    }

    // The end of the day: faults off, every notice delivered, every due order swept, every
    // job run, moving time on past every backoff.
    faulty.set_enabled(false);
    wechat.set_faults(false);
    for round in 0..48 {
        fig.drain_rounds = round + 1;
        clock.advance(3_600);
        let base = process.base.clone();
        let ids: Vec<u64> = outbox.keys().copied().collect();
        for id in ids {
            let (path, headers, body) = outbox[&id].request(clock.now());
            let r = send(&base, "POST", path, &headers, body).await;
            fig.deliveries += 1;
            fig.redeliveries += 1;
            match r {
                Ok((status, _)) => {
                    fig.count("callback", status);
                    if (200..300).contains(&status) {
                        outbox.remove(&id);
                    }
                }
                Err(_) => fig.connection_failures += 1,
            }
        }
        let r = tollgate::service::sweep::sweep(&process.app, i64::MAX).await;
        fig.sweep.add(&r);
        tollgate::local::run_local_jobs(&process.app).await;
        let mut due = 0;
        for shard in 0..tollgate::domain::Order::DUE_SHARDS {
            due += store
                .due_orders(shard, i64::MAX, 10)
                .await
                .map(|v| v.len())
                .unwrap_or(1);
        }
        if outbox.is_empty() && process.queue.is_empty() && due == 0 {
            break;
        }
    }
    fig.store_faults = faulty.counts();
    {
        let l = wechat.ledger.lock().unwrap();
        fig.provider_queries = l.queries + l.closes;
        fig.provider_query_errors = l.query_errors;
        fig.provider_query_hangs = l.query_hangs;
    }
    let breaches = check::check(
        &store,
        &process,
        &wechat,
        &bought,
        &users,
        clock.now(),
        &outbox,
    )
    .await;
    fig.elapsed = started.elapsed();
    let unexpected: Vec<String> = fig
        .statuses
        .iter()
        .filter(|(k, _)| !check::expected_status(k))
        .map(|(k, v)| format!("unexpected answer {k} ×{v}"))
        .collect();
    process.kill().await;
    let _ = std::fs::remove_file(&queue_file);
    let all: Vec<String> = breaches.into_iter().chain(unexpected).collect();
    assert!(
        all.is_empty(),
        "seed {}: {} breach(es):\n{}\n{fig}",
        cfg.seed,
        all.len(),
        all.join("\n")
    );
    fig
}

impl Figures {
    fn count(&mut self, what: &str, status: u16) {
        *self.statuses.entry(format!("{what}:{status}")).or_default() += 1;
    }
}

/// Jobs kept in the queue file (0 when there is none).
fn jobs_in_file(path: &std::path::Path) -> usize {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<Vec<Value>>(&text)
            .map(|v| v.len())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// An authenticated JSON request as `user`.
async fn call(
    base: &str,
    user: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Result<(u16, Bytes), String> {
    let mut headers = vec![
        ("authorization".to_owned(), bearer(user)),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    if let Some(k) = idempotency_key {
        headers.push(("idempotency-key".into(), k.into()));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    send(base, method, path, &headers, body).await
}

/// One request; `Err` when the connection failed (the server was killed).
pub async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<(u16, Bytes), String> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    let req = b
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        tollgate::api::server::http_client().request(req),
    )
    .await
    .map_err(|_| "no answer in 30 s".to_string())?
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

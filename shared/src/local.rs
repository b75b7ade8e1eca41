//! The laptop server: all routes on `PORT`, embedded store unless `TABLE_NAME` is set.
//! With the embedded store and in-process queue it runs on built-in development secrets;
//! with a real table or queue, configuration refuses them (see `Config::from_lookup`).

use crate::api::auth::{mint_hs256, mint_hs256_scoped, ADMIN_ROLE};
use crate::app::{App, StartupError};
use crate::config::{AuthMode, Profile, LOCAL_DEV_JWT_SECRET};

pub async fn run() -> Result<(), StartupError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let app = App::from_env(Profile::Local).await?;
    let addr = format!("127.0.0.1:{}", app.config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| StartupError::Other(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let store = match &app.config.table_name {
        Some(t) => format!("DynamoDB table {t}"),
        None => "embedded (in memory)".into(),
    };
    println!("tollgate-local listening on http://{bound}");
    println!("  store: {store}");
    println!("  providers: {}", app.config.providers.join(", "));
    // A demo token only for data that dies with the process: with a real table, a token
    // printed to the terminal (and to whatever collects it) would be a real credential.
    let embedded = app.config.table_name.is_none() && app.config.queue_url.is_none();
    if app.config.auth_mode == AuthMode::Jwt && embedded {
        if let Some(secret) = &app.config.auth_jwt_secret {
            if secret.expose() == LOCAL_DEV_JWT_SECRET {
                println!("  auth: HS256 with the built-in development secret (set AUTH_JWT_SECRET to change)");
            }
            // A day, unless tokens may not live that long.
            let ttl = app.config.auth_max_lifetime_seconds.min(24 * 3600);
            let now = app.clock.now();
            let minted = mint_hs256(secret.expose(), "demo-user", now, ttl).and_then(|user| {
                mint_hs256_scoped(secret.expose(), "demo-admin", Some(ADMIN_ROLE), now, ttl)
                    .map(|admin| (user, admin))
            });
            let (token, admin) = minted
                .map_err(|e| StartupError::Other(format!("cannot make the demo tokens: {e}")))?;
            let valid = if ttl % 3600 == 0 {
                format!("{} h", ttl / 3600)
            } else {
                format!("{} min", ttl / 60)
            };
            println!("  demo bearer token (user demo-user, {valid}):\n    export TOKEN={token}");
            println!(
                "  demo operator token (demo-admin, {ADMIN_ROLE}, {valid}):\n    export ADMIN_TOKEN={admin}"
            );
        }
    }
    println!(
        "  sweeper: every {} s; orders expire after {} s",
        app.config.sweep_interval_seconds, app.config.order_ttl_seconds
    );
    let queue_file = std::env::var_os("LOCAL_QUEUE_FILE").map(std::path::PathBuf::from);
    serve(app, listener, queue_file, async {
        let _ = tokio::signal::ctrl_c().await;
        println!("shutting down");
    })
    .await
}

/// The local server's work once its app is built and its port bound: restore the jobs kept
/// in `queue_file` (`LOCAL_QUEUE_FILE`), then serve every route with the sweeper and the
/// queue worker beside it until `shutdown` resolves. `run` calls it with the app built from
/// the environment; it is public so that a harness can run the same server over a store it
/// built itself (wrapped, say, to inject faults), and stop it with or without `shutdown`.
pub async fn serve(
    app: std::sync::Arc<App>,
    listener: tokio::net::TcpListener,
    queue_file: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartupError> {
    if let (Some(crate::app::Queue::Memory(q)), Some(path)) = (&app.queue, &queue_file) {
        let n = q
            .keep_in(path)
            .map_err(|e| StartupError::Other(format!("LOCAL_QUEUE_FILE: {e}")))?;
        println!(
            "  queue: in process, {n} job(s) restored from {}",
            path.to_string_lossy()
        );
    }
    let webhooks = local_webhooks(&app)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(background(app.clone(), stop_rx, queue_file, webhooks));
    crate::api::server::serve(app, listener, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = background.await;
    Ok(())
}

/// The local stand-ins for EventBridge and the SQS trigger: the sweeper on its interval and
/// the in-process queue's worker every second, until shutdown. A job in flight finishes
/// first; jobs still waiting are reported, as an in-memory queue cannot keep them.
async fn background(
    app: std::sync::Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    queue_file: Option<std::path::PathBuf>,
    mut webhooks: crate::webhook::run::LocalRunner,
) {
    use std::time::Duration;
    let interval = app.config.sweep_interval_seconds;
    let mut sweep = tokio::time::interval(Duration::from_secs(interval));
    // A sweep that overran its interval is followed by one, not by a burst of catch-ups.
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                let deadline = sweep_deadline(app.clock.now_ms(), interval);
                let report = crate::service::sweep::sweep(&app, deadline).await;
                if report != Default::default() {
                    tracing::info!(?report, "sweep finished");
                }
            }
            _ = work.tick() => {
                run_local_jobs(&app).await;
                run_local_webhooks(&app, &mut webhooks).await;
            }
            _ = stop.changed() => break,
        }
    }
    if let Some(crate::app::Queue::Memory(q)) = &app.queue {
        match &queue_file {
            Some(path) => match q.save(path) {
                Ok(n) => println!("  saved {n} queued job(s) to {}", path.to_string_lossy()),
                Err(e) => tracing::error!(error = %e, "could not save the queued jobs"),
            },
            None if !q.is_empty() => tracing::warn!(
                waiting = q.len(),
                "queued jobs dropped at shutdown (set LOCAL_QUEUE_FILE to keep them)"
            ),
            None => {}
        }
    }
}

/// When a local sweep starting at `now_ms` must stop: it may work for a whole interval. The
/// sweeper keeps a reserve before its deadline (sized for a Lambda's, whose end is hard);
/// here nothing ends the process at the deadline, so the reserve is added on top, and every
/// interval from one second up leaves time to work.
fn sweep_deadline(now_ms: i64, interval_seconds: u64) -> i64 {
    let interval_ms = i64::try_from(interval_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    now_ms
        .saturating_add(interval_ms)
        .saturating_add(crate::service::sweep::DEADLINE_MARGIN_MS)
}

/// The in-process dispatcher, with the app's outbound client and retry settings
/// (`WEBHOOK_RETRY_BASE_SECONDS`, `WEBHOOK_RETRY_MAX_SECONDS`, `WEBHOOK_GIVE_UP_SECONDS`).
fn local_webhooks(app: &App) -> Result<crate::webhook::run::LocalRunner, StartupError> {
    use crate::webhook::deliver::Dispatcher;
    let http = app.http.client().map_err(StartupError::Other)?;
    Ok(crate::webhook::run::LocalRunner::new(
        Dispatcher::new(http, app.config.webhook_retry).with_secrets(app.webhook_secrets.clone()),
    ))
}

/// One tick of the in-process dispatcher, when the catalog's lines have webhooks at all.
async fn run_local_webhooks(app: &App, runner: &mut crate::webhook::run::LocalRunner) {
    let catalog = app.catalog.current();
    if catalog.lines().all().iter().all(|l| l.webhooks.is_empty()) {
        return;
    }
    match runner
        .tick(&*app.store, catalog.lines(), app.clock.now())
        .await
    {
        Ok(t) if t.sent > 0 => tracing::info!(
            sent = t.sent,
            new = t.new_events,
            waiting = t.waiting,
            "webhooks sent"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "webhook dispatcher: store unavailable, trying again"),
    }
}

/// Runs every job due now on the in-process queue, with the same outcomes as SQS.
pub async fn run_local_jobs(app: &App) {
    let Some(crate::app::Queue::Memory(q)) = &app.queue else {
        return;
    };
    for delivery in q.receive_due() {
        match crate::service::jobs::run(app, &delivery.body, delivery.receive_count).await {
            crate::queue::JobOutcome::Done => q.complete(delivery),
            crate::queue::JobOutcome::Retry { delay_s, reason } => {
                crate::metrics::count("VerificationRetries", 1, &[]);
                q.retry(delivery, delay_s, &reason)
            }
            crate::queue::JobOutcome::DeadLetter { reason } => q.dead_letter(delivery, &reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sweep::DEADLINE_MARGIN_MS;

    #[test]
    fn every_sweep_interval_leaves_the_sweeper_time_to_work() {
        let now = 1_800_000_000_000;
        for interval in [1, 2, 3, 60, 86_400] {
            let deadline = sweep_deadline(now, interval);
            // The sweeper starts no order after `deadline - DEADLINE_MARGIN_MS`.
            assert_eq!(
                deadline - DEADLINE_MARGIN_MS - now,
                interval as i64 * 1000,
                "interval {interval}"
            );
        }
        assert_eq!(sweep_deadline(i64::MAX - 5, 60), i64::MAX);
    }
}

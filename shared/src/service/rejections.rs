//! Refused provider callbacks and app-store notifications: logged, counted in the
//! `CallbackRejected` metric, and in the daily figures with one counter update on the refusal
//! path only. Counting is best effort: a failure to count is logged and measured, and never
//! changes what the provider is answered.

use crate::app::App;

/// Logs a refusal of `provider`'s request for `reason` and counts it under `code` (a stable
/// code): the `CallbackRejected` metric and today's figures.
pub async fn refused(
    app: &App,
    provider: &str,
    code: &str,
    reason: &(dyn std::fmt::Display + Sync),
) {
    tracing::warn!(provider, code, reason = %reason, "callback rejected");
    crate::metrics::count(
        "CallbackRejected",
        1,
        &[("Provider", provider), ("Reason", code)],
    );
    record(app, provider, code).await;
}

/// Counts one refused callback of `provider` for `reason` (a stable code) today.
pub async fn record(app: &App, provider: &str, reason: &str) {
    let at = app.clock.now();
    if let Err(e) = app.store.count_rejection(provider, reason, at).await {
        tracing::warn!(provider, reason, error = %e, "refused callback not counted");
        crate::metrics::count("RejectionNotCounted", 1, &[("Provider", provider)]);
    }
}

//! Refused provider callbacks as daily figures (besides the `CallbackRejected` metric):
//! one counter update on the refusal path only. Counting is best effort: a failure to
//! count is logged and measured, and never changes what the provider is answered.

use crate::app::App;

/// Counts one refused callback of `provider` for `reason` (a stable code) today.
pub async fn record(app: &App, provider: &str, reason: &str) {
    let at = app.clock.now();
    if let Err(e) = app.store.count_rejection(provider, reason, at).await {
        tracing::warn!(provider, reason, error = %e, "refused callback not counted");
        crate::metrics::count("RejectionNotCounted", 1, &[("Provider", provider)]);
    }
}

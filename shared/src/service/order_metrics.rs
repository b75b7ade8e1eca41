//! The funnel's counts (`OrdersCreated`, `OrdersPaid`) by provider and by business line: an
//! operator with several lines watches each line's payments, and alarms watch the total.
//! The line is the current catalog's for the product.

use crate::app::App;

/// Counts one order of `product_id` through `provider` as metric `name`.
pub(crate) fn count(app: &App, name: &str, provider: &str, product_id: &str) {
    let catalog = app.catalog.current();
    let line = &catalog.lines().line_of(Some(product_id)).id;
    crate::metrics::count_apart(name, 1, &[("Provider", provider), ("Line", line)]);
}

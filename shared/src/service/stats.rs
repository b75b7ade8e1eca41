//! `GET /admin/stats`: the operator's daily figures.

use super::ServiceError;
use crate::app::App;
use crate::domain::stats::{days_between, derive, DayStats};

/// The longest range one request may ask for.
pub const MAX_DAYS: usize = 92;

pub async fn daily(app: &App, from: &str, to: &str) -> Result<Vec<DayStats>, ServiceError> {
    let days = days_between(from, to, MAX_DAYS).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "from and to must be YYYY-MM-DD days, from <= to, at most {MAX_DAYS} days apart"
        ))
    })?;
    let records = app.store.day_records(&days).await?;
    Ok(records.iter().map(derive).collect())
}

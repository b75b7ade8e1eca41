//! `GET /admin/stats`: the operator's figures per day of their time zone, and over the
//! whole range, in total or broken down by product or provider.

use super::ServiceError;
use crate::app::App;
use crate::domain::stats::{derive, derive_total, Breakdown, DayStats};
use serde::Serialize;

/// The longest range one request may ask for.
pub const MAX_DAYS: usize = 92;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The IANA zone the days are in.
    pub time_zone: String,
    pub days: Vec<DayStats>,
    /// The whole range: counters added up, each paying user counted once.
    pub total: DayStats,
}

/// What `by=` may name. A business line is a set of products: its figures will be its
/// products' counters added up at read time.
pub fn breakdown(by: Option<&str>) -> Result<Option<Breakdown>, ServiceError> {
    match by {
        None => Ok(None),
        Some(b) => Breakdown::parse(b).map(Some).ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "by must be product or provider, not {:?}",
                b.chars().take(40).collect::<String>()
            ))
        }),
    }
}

pub async fn report(
    app: &App,
    from: &str,
    to: &str,
    by: Option<Breakdown>,
) -> Result<Report, ServiceError> {
    let zone = &app.config.stats_zone;
    let days = zone.days_between(from, to, MAX_DAYS).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "from and to must be YYYY-MM-DD days, from <= to, at most {MAX_DAYS} days apart"
        ))
    })?;
    let records = app.store.day_records(&days).await?;
    Ok(Report {
        time_zone: zone.name().to_owned(),
        days: records.iter().map(|r| derive(r, by)).collect(),
        total: derive_total(&records, by),
    })
}

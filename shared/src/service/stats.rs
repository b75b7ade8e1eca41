//! `GET /admin/stats`: the operator's figures per day of their time zone, and over the
//! whole range, in total or broken down by product, business line or provider.

use super::ServiceError;
use crate::app::App;
use crate::domain::stats::{
    derive, derive_by_line, derive_total, derive_total_by_line, Breakdown, DayStats,
};
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

/// What `by=` names: a dimension the counters are kept under, or the business line, whose
/// figures are its products' counters added up at read time (the catalog in force says
/// which products a line holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Counted(Breakdown),
    Line,
}

/// What `by=` may name.
pub fn breakdown(by: Option<&str>) -> Result<Option<By>, ServiceError> {
    match by {
        None => Ok(None),
        Some("line") => Ok(Some(By::Line)),
        Some(b) => Breakdown::parse(b)
            .map(|b| Some(By::Counted(b)))
            .ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "by must be product, line or provider, not {:?}",
                    b.chars().take(40).collect::<String>()
                ))
            }),
    }
}

pub async fn report(
    app: &App,
    from: &str,
    to: &str,
    by: Option<By>,
) -> Result<Report, ServiceError> {
    let zone = &app.config.stats_zone;
    let days = zone.days_between(from, to, MAX_DAYS).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "from and to must be YYYY-MM-DD days, from <= to, at most {MAX_DAYS} days apart"
        ))
    })?;
    let records = app.store.day_records(&days).await?;
    let (days, total) = match by {
        Some(By::Line) => {
            let catalog = app.catalog.current();
            let lines = catalog.lines();
            (
                records.iter().map(|r| derive_by_line(r, lines)).collect(),
                derive_total_by_line(&records, lines),
            )
        }
        Some(By::Counted(b)) => (
            records.iter().map(|r| derive(r, Some(b))).collect(),
            derive_total(&records, Some(b)),
        ),
        None => (
            records.iter().map(|r| derive(r, None)).collect(),
            derive_total(&records, None),
        ),
    };
    Ok(Report {
        time_zone: zone.name().to_owned(),
        days,
        total,
    })
}

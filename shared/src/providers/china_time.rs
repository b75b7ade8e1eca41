//! The date-time forms the China payment providers put on the wire, all in China Standard
//! Time (UTC+8, no daylight saving): WeChat Pay's RFC 3339 with `+08:00`, Alipay's
//! `yyyy-MM-dd HH:mm:ss` and Huya's `yyyyMMddHHmmss`. RFC 3339 *parsing* is
//! [`crate::domain::time::parse_rfc3339`], the crate's one parser.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

fn cst() -> FixedOffset {
    // 8 hours is always a valid offset.
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

fn in_cst(unix: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp(unix, 0).map(|t| t.with_timezone(&cst()))
}

fn parse_cst(s: &str, format: &str, len: usize) -> Option<i64> {
    // chrono accepts signs and wider years in `%Y`; the providers send exactly `len` ASCII
    // characters, so anything else is refused before parsing.
    if s.len() != len || !s.is_ascii() || s.starts_with(['+', '-']) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(s, format).ok()?;
    cst()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp())
}

/// `2024-01-02T03:04:05+08:00`, the form WeChat Pay's documentation uses. `None` only for
/// instants chrono cannot represent (hundreds of thousands of years away).
pub fn format_rfc3339_cst(unix: i64) -> Option<String> {
    in_cst(unix).map(|t| t.format("%Y-%m-%dT%H:%M:%S+08:00").to_string())
}

/// `yyyy-MM-dd HH:mm:ss`, Alipay's `timestamp` / `time_expire` form.
pub fn format_cst_datetime(unix: i64) -> Option<String> {
    in_cst(unix).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Parses `yyyy-MM-dd HH:mm:ss` as China Standard Time.
pub fn parse_cst_datetime(s: &str) -> Option<i64> {
    parse_cst(s, "%Y-%m-%d %H:%M:%S", 19)
}

/// Parses `yyyyMMddHHmmss` as China Standard Time.
pub fn parse_compact_cst(s: &str) -> Option<i64> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    parse_cst(s, "%Y%m%d%H%M%S", 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_time_forms() {
        assert_eq!(
            format_rfc3339_cst(1432099775).as_deref(),
            Some("2015-05-20T13:29:35+08:00")
        );
        assert_eq!(
            format_cst_datetime(1432099775).as_deref(),
            Some("2015-05-20 13:29:35")
        );
        assert_eq!(parse_cst_datetime("2015-05-20 13:29:35"), Some(1432099775));
        assert_eq!(parse_cst_datetime("2015-05-20T13:29:35"), None);
        assert_eq!(parse_cst_datetime("+015-05-20 13:29:35"), None);
        assert_eq!(parse_cst_datetime("2015-02-30 13:29:35"), None);
        assert_eq!(parse_compact_cst("20150520132935"), Some(1432099775));
        assert_eq!(parse_compact_cst("2015052013293"), None);
        assert_eq!(parse_compact_cst("20151320132935"), None);
        assert_eq!(parse_compact_cst("2015052013293+"), None);
        assert_eq!(format_cst_datetime(i64::MAX), None);
    }
}

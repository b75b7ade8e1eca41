//! The one time format on Tollgate's own wire (RFC 3339) and the crate's one RFC 3339 parser,
//! used for the catalog, the stores' timestamps and WeChat Pay's.

/// Unix seconds → RFC 3339 UTC ("2026-12-01T12:00:00Z"), the only time format on the wire.
pub fn rfc3339(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "invalid-time".to_owned())
}

/// RFC 3339 → unix seconds; any offset accepted, fractions truncated.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(1_764_590_400), "2025-12-01T12:00:00Z");
        assert_eq!(
            parse_rfc3339("2025-12-01T20:00:00+08:00"),
            Some(1_764_590_400)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

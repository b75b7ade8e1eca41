//! Bans: an operator keeps a user away from one stream or from all of them, until a time or
//! for good. A ban lives in the user's own partition, so the one query that token issue and
//! verify already make also answers "is this user banned".

/// The scope of a ban that covers every stream.
pub const ALL_STREAMS: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// A stream id, or [`ALL_STREAMS`].
    pub scope: String,
    /// Unix seconds after which the ban no longer applies; `None`: until lifted.
    pub until: Option<i64>,
    /// Why, as the operator wrote it; shown to the banned user.
    pub reason: String,
    pub created_at: i64,
    /// The operator who wrote it (their user id, or their IAM ARN); `None` for bans written
    /// before operators were recorded.
    pub created_by: Option<String>,
}

impl Ban {
    /// Whether this ban keeps its user from `stream_id` at `now`.
    pub fn applies(&self, stream_id: &str, now: i64) -> bool {
        (self.scope == ALL_STREAMS || self.scope == stream_id) && self.until.is_none_or(|u| now < u)
    }
}

/// The ban that keeps the user from `stream_id` at `now`, if any; a stream's own ban is
/// named before a global one, and of several the one lasting longest.
pub fn active<'a>(bans: &'a [Ban], stream_id: &str, now: i64) -> Option<&'a Ban> {
    bans.iter()
        .filter(|b| b.applies(stream_id, now))
        .max_by_key(|b| (b.scope != ALL_STREAMS, b.until.unwrap_or(i64::MAX)))
}

/// A ban scope an operator may write: [`ALL_STREAMS`] or a stream id as the catalog spells
/// them (it becomes part of a sort key, so it is bounded and printable).
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty() && scope.len() <= 128 && scope.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(scope: &str, until: Option<i64>) -> Ban {
        Ban {
            scope: scope.into(),
            until,
            reason: "spam".into(),
            created_at: 100,
            created_by: None,
        }
    }

    #[test]
    fn a_ban_applies_to_its_stream_or_all_until_it_ends() {
        let b = ban("concert", Some(200));
        assert!(b.applies("concert", 199));
        assert!(!b.applies("concert", 200), "ends at until");
        assert!(!b.applies("other", 150));
        let g = ban(ALL_STREAMS, None);
        assert!(g.applies("concert", i64::MAX - 1));
        assert!(g.applies("other", 0));
    }

    #[test]
    fn active_prefers_the_streams_own_ban() {
        let bans = vec![ban(ALL_STREAMS, None), ban("concert", Some(500))];
        assert_eq!(active(&bans, "concert", 300), Some(&bans[1]));
        assert_eq!(active(&bans, "concert", 600), Some(&bans[0]));
        assert_eq!(active(&bans, "other", 300), Some(&bans[0]));
        assert_eq!(active(&bans[1..], "other", 300), None);
        assert_eq!(active(&[], "concert", 300), None);
    }

    #[test]
    fn scopes_are_bounded_and_printable() {
        assert!(valid_scope("*"));
        assert!(valid_scope("concert-1201"));
        assert!(!valid_scope(""));
        assert!(!valid_scope("a b"));
        assert!(!valid_scope(&"x".repeat(129)));
    }
}

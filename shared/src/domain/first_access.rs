//! First access after payment, the funnel's third step: the first stream token issued for a
//! paid grant. Each paid grant is counted once, on the day of its first token, in total, per
//! product and per provider.
//!
//! The user's `SESSIONS` item remembers the source ids of the grants already accessed
//! ([`Sessions::accessed`]); the token write that adds a source there is the one that counts
//! it, in the same transaction, so simultaneous first tokens count once (the losers of the
//! versioned write decide again on the sessions that now hold the source). A grant's source
//! is its order (or store purchase): an order granting several scopes counts once.

use super::checkpoint::Checkpoint;
use super::grant::{windows_with, Grant};
use super::session::Sessions;
use std::collections::BTreeSet;

/// A source whose first access a token write counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAccess {
    pub source_id: String,
    pub product_id: String,
    /// The order's provider; for a store purchase the store; `unknown` for a grant written
    /// before grants kept their provider.
    pub provider: String,
}

/// Whether a grant was paid for: an order's or a store purchase's, not an operator's
/// promotion (`promo#…`).
pub fn is_paid(g: &Grant) -> bool {
    !g.source_id.starts_with("promo#")
}

fn provider_of(g: &Grant) -> String {
    if let Some(p) = &g.provider {
        return p.clone();
    }
    match g.source_id.split_once(':') {
        Some((store @ ("apple" | "google"), _)) => store.to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The paid grants that open a stream requiring any of `scopes` at `now` and that no token
/// was issued for yet, one per source, in source order.
pub fn first_accesses(
    grants: &[Grant],
    checkpoints: &[Checkpoint],
    scopes: &[String],
    now: i64,
    sessions: &Sessions,
) -> Vec<FirstAccess> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for w in windows_with(grants, checkpoints) {
        if !scopes.contains(&w.scope) || !w.covers(now) || sessions.accessed.contains(&w.source_id)
        {
            continue;
        }
        let Some(g) = grants
            .iter()
            .find(|g| g.source_id == w.source_id && g.scope == w.scope)
        else {
            continue;
        };
        if is_paid(g) && seen.insert(w.source_id.clone()) {
            out.push(FirstAccess {
                source_id: g.source_id.clone(),
                product_id: g.product_id.clone(),
                provider: provider_of(g),
            });
        }
    }
    out.sort_by(|a, b| a.source_id.cmp(&b.source_id));
    out
}

/// `sessions` with `firsts` marked accessed, keeping only the marks of grants the user still
/// has live (`grants`), so the item does not grow with every order ever paid: a grant leaves
/// the live items only once it has ended (folded into the archive), and an ended grant opens
/// nothing that could be counted again.
pub fn mark(sessions: &mut Sessions, firsts: &[FirstAccess], grants: &[Grant]) {
    let live: BTreeSet<&str> = grants.iter().map(|g| g.source_id.as_str()).collect();
    sessions.accessed.retain(|s| live.contains(s.as_str()));
    sessions
        .accessed
        .extend(firsts.iter().map(|f| f.source_id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::Term;

    fn grant(scope: &str, source: &str, provider: Option<&str>, term: Term) -> Grant {
        Grant {
            scope: scope.into(),
            product_id: format!("p-{source}"),
            source_id: source.into(),
            paid_at: 100,
            term,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            max_views: None,
            provider: provider.map(str::to_owned),
        }
    }

    #[test]
    fn each_paid_source_that_opens_the_stream_once() {
        let window = Term::Window {
            from: 100,
            until: 1_000,
        };
        let grants = vec![
            grant("channel:main", "o1", Some("wechat"), window),
            grant("channel:extra", "o1", Some("wechat"), window),
            grant("channel:main", "promo#x", None, window),
            grant("channel:main", "apple:7", None, window),
            grant("channel:other", "o2", Some("alipay"), window),
            grant(
                "channel:main",
                "o3",
                None,
                Term::Window {
                    from: 100,
                    until: 200,
                },
            ),
        ];
        let scopes = vec!["channel:main".to_string(), "channel:extra".to_string()];
        let mut s = Sessions::default();
        let f = first_accesses(&grants, &[], &scopes, 500, &s);
        assert_eq!(
            f,
            vec![
                FirstAccess {
                    source_id: "apple:7".into(),
                    product_id: "p-apple:7".into(),
                    provider: "apple".into()
                },
                FirstAccess {
                    source_id: "o1".into(),
                    product_id: "p-o1".into(),
                    provider: "wechat".into()
                },
            ]
        );
        s.accessed.insert("gone".into());
        mark(&mut s, &f, &grants);
        assert_eq!(s.accessed.iter().collect::<Vec<_>>(), vec!["apple:7", "o1"]);
        assert!(first_accesses(&grants, &[], &scopes, 500, &s).is_empty());
        // Before its window, or after, a grant opens nothing to count.
        assert!(first_accesses(&grants, &[], &scopes, 50, &Sessions::default()).is_empty());
        let unknown = grant("channel:main", "o9", None, window);
        assert_eq!(
            first_accesses(&[unknown], &[], &scopes, 500, &Sessions::default())[0].provider,
            "unknown"
        );
    }
}

//! The wallet's ledger: one entry per movement of a user's coins, written in the same
//! transaction as the balance change it records, so the ledger and the balance never
//! disagree.
//!
//! An entry records the signed `amount`, not the balance after it: credits are `ADD`s that
//! never read the balance (a settle would need another round trip to learn it), and a debit
//! is conditioned on the balance without reading it. The balance after each entry is
//! derived when the ledger is read instead: the newest entry leaves the balance as stored,
//! and each older one leaves that minus the amounts after it. The wallet item and the newest
//! entries come from one strongly consistent query, so the derivation is exact.

use serde::{Deserialize, Serialize};

/// Where a movement of coins came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerSource {
    /// A paid order credited coins (or a reversed refund gave them back).
    Order,
    /// A refund took the coins of an order back, or gave back the coins an order was paid with.
    Refund,
    /// The user spent coins: an order paid with coins, a gift, a tip.
    Spend,
    /// An operator changed the balance by hand.
    Admin,
}

impl LedgerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerSource::Order => "order",
            LedgerSource::Refund => "refund",
            LedgerSource::Spend => "spend",
            LedgerSource::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "order" => LedgerSource::Order,
            "refund" => LedgerSource::Refund,
            "spend" => LedgerSource::Spend,
            "admin" => LedgerSource::Admin,
            _ => return None,
        })
    }
}

/// One movement of coins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// A ULID, unique per entry.
    pub id: String,
    /// When it was written, Unix milliseconds: the ledger's order, newest first.
    pub at_ms: i64,
    /// Coins added (positive) or taken (negative).
    pub amount: i64,
    pub source: LedgerSource,
    /// Why, in words: the product bought, the gift sent, the operator's reason.
    pub reason: String,
    /// What it is about: an order id, the client's reference of a spend, an audit record.
    pub reference: Option<String>,
}

/// Larger than any millisecond time until the year 2286: the complement that makes the
/// ledger's ascending key order newest first.
const TIME_COMPLEMENT: i64 = 9_999_999_999_999;

impl LedgerEntry {
    /// Where the entry sorts in the ledger: newest first, ties by id. Thirteen digits of
    /// the time's complement, so string order is that order.
    pub fn position(&self) -> String {
        position(self.at_ms, &self.id)
    }
}

/// The ledger key of an entry at `at_ms` with `id` (see [`LedgerEntry::position`]).
pub fn position(at_ms: i64, id: &str) -> String {
    format!(
        "{:013}#{id}",
        TIME_COMPLEMENT - at_ms.clamp(0, TIME_COMPLEMENT)
    )
}

/// Where the next page of a ledger starts: after the entry at `at_ms` with `id`, whose
/// balance before it (`balance`) is the balance after the first entry of that page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCursor {
    pub at_ms: i64,
    pub id: String,
    pub balance: i64,
}

impl LedgerCursor {
    /// `<at_ms>.<id>.<balance>`: opaque to clients, and only ever about their own ledger.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.at_ms, self.id, self.balance)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let at_ms: i64 = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        let balance: i64 = parts.next()?.parse().ok()?;
        let valid_id = id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        (valid_id && (0..=TIME_COMPLEMENT).contains(&at_ms)).then(|| LedgerCursor {
            at_ms,
            id: id.to_owned(),
            balance,
        })
    }
}

/// Entries newest first, each with the balance it left, starting from `balance` (what the
/// newest one left). `None` when the amounts overflow (a corrupt ledger).
pub fn with_balances(balance: i64, entries: &[LedgerEntry]) -> Option<Vec<(LedgerEntry, i64)>> {
    let mut after = balance;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push((e.clone(), after));
        after = after.checked_sub(e.amount)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: i64, id: &str, amount: i64) -> LedgerEntry {
        LedgerEntry {
            id: id.to_owned(),
            at_ms,
            amount,
            source: LedgerSource::Spend,
            reason: "gift".into(),
            reference: None,
        }
    }

    #[test]
    fn positions_sort_newest_first() {
        let old = entry(1_000, "01AAAAAAAAAAAAAAAAAAAAAAAA", 1).position();
        let new = entry(2_000, "01AAAAAAAAAAAAAAAAAAAAAAAA", 1).position();
        assert!(new < old, "{new} sorts before {old}");
        assert_eq!(old.len(), 13 + 1 + 26);
    }

    #[test]
    fn balances_walk_back_from_the_stored_one() {
        let entries = [entry(3, "c", -30), entry(2, "b", 100), entry(1, "a", 5)];
        let got: Vec<i64> = with_balances(75, &entries)
            .unwrap()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        assert_eq!(got, vec![75, 105, 5]);
        assert!(with_balances(i64::MIN, &[entry(1, "a", 1)]).is_none());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = LedgerCursor {
            at_ms: 1_700_000_000_000,
            id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            balance: -40,
        };
        assert_eq!(LedgerCursor::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "1.2",
            "x.01HZZZZZZZZZZZZZZZZZZZZZZZ.1",
            "1.short.1",
            "-1.01HZZZZZZZZZZZZZZZZZZZZZZZ.0",
            "1.01HZZZZZZZZZZZZZZZZZZZZZZZ.9999999999999999999999",
        ] {
            assert_eq!(LedgerCursor::parse(bad), None, "{bad}");
        }
    }
}

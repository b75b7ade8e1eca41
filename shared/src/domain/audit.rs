//! The audit trail: one record per operator change (who, when, what, to whom, the state
//! before and after, why, and the request that asked), written in the same transaction as
//! the change itself, so there is never a change without its record nor a record without
//! its change. Records are never updated or deleted (they carry no expiry).
//!
//! Where they live (both stores keep the same two orders):
//! - by subject: the user the change concerns (or the stream, for a publish key), newest
//!   first, under a partition of their own (`AUDIT#USER#<user>` in DynamoDB), *not* the
//!   user's `USER#` partition, which every token issue reads whole and which must not grow
//!   with history;
//! - by time: every record, oldest first, for `?since=` (DynamoDB's `gsi3`, one partition
//!   `AUDIT`: operators make a few changes a minute, far below what one index partition
//!   takes, and one partition keeps any `since` one query per page).
//!
//! Both orders use the record's [`AuditRecord::sort_key`]: zero-padded seconds, then the
//! record's ULID, so string order is time order and two records never tie.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Ban,
    LiftBan,
    RotatePublishKey,
    Grant,
    RevokeGrant,
    Wallet,
    Refund,
    /// A webhook endpoint a 410 disabled, enabled again.
    EnableWebhook,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Ban => "ban",
            AuditAction::LiftBan => "lift_ban",
            AuditAction::RotatePublishKey => "rotate_publish_key",
            AuditAction::Grant => "grant",
            AuditAction::RevokeGrant => "revoke_grant",
            AuditAction::Wallet => "wallet",
            AuditAction::Refund => "refund",
            AuditAction::EnableWebhook => "enable_webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            AuditAction::Ban,
            AuditAction::LiftBan,
            AuditAction::RotatePublishKey,
            AuditAction::Grant,
            AuditAction::RevokeGrant,
            AuditAction::Wallet,
            AuditAction::Refund,
            AuditAction::EnableWebhook,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// One operator change. `before`/`after` are what the change replaced and what it wrote
/// (`null` where nothing was there), as JSON so every kind of change fits one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// A ULID: sortable by creation time, unique.
    pub id: String,
    pub at: i64,
    /// The operator: their token's `sub`, or their IAM ARN.
    pub actor: String,
    pub action: AuditAction,
    pub user_id: Option<String>,
    pub order_id: Option<String>,
    pub stream_id: Option<String>,
    pub before: Value,
    pub after: Value,
    pub reason: Option<String>,
    /// API Gateway's request id in Lambda, a generated one on the local server.
    pub request_id: String,
}

impl AuditRecord {
    /// Zero-padded seconds, then the id: string order is time order, and unique.
    pub fn sort_key(&self) -> String {
        format!("{:012}#{}", self.at.max(0), self.id)
    }

    /// Whose history the record belongs to: the user it concerns, or else the stream.
    pub fn subject(&self) -> AuditSubject<'_> {
        match (&self.user_id, &self.stream_id) {
            (Some(u), _) => AuditSubject::User(u),
            (None, Some(s)) => AuditSubject::Stream(s),
            (None, None) => AuditSubject::Operator(&self.actor),
        }
    }
}

/// The partition of history a record is filed under (see the module notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSubject<'a> {
    User(&'a str),
    Stream(&'a str),
    /// A change about neither a user nor a stream: filed under who made it.
    Operator(&'a str),
}

/// The smallest sort key at or after `unix_s` (for `since`).
pub fn sort_key_from(unix_s: i64) -> String {
    format!("{:012}#", unix_s.max(0))
}

/// A page cursor as handed to callers: the last record's sort key with `#` as `-`, so it
/// travels in a query string unescaped. `None` for anything this module did not make.
pub fn cursor_of(sort_key: &str) -> String {
    sort_key.replacen('#', "-", 1)
}

/// The sort key a cursor stands for, if it is one [`cursor_of`] made.
pub fn parse_cursor(cursor: &str) -> Option<String> {
    let (at, id) = cursor.split_once('-')?;
    let ok = at.len() == 12
        && at.bytes().all(|b| b.is_ascii_digit())
        && crate::domain::OrderId::parse(id).is_ok();
    ok.then(|| format!("{at}#{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: i64, id: &str) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            at,
            actor: "ops".into(),
            action: AuditAction::Wallet,
            user_id: Some("u".into()),
            order_id: None,
            stream_id: None,
            before: Value::Null,
            after: Value::Null,
            reason: None,
            request_id: "r".into(),
        }
    }

    #[test]
    fn sort_keys_order_by_time_and_cursors_round_trip() {
        let a = rec(9, "01KQ0000000000000000000001");
        let b = rec(10, "01KQ0000000000000000000000");
        assert!(a.sort_key() < b.sort_key());
        assert!(sort_key_from(10) <= b.sort_key() && sort_key_from(11) > b.sort_key());
        let c = cursor_of(&b.sort_key());
        assert!(!c.contains('#'));
        assert_eq!(parse_cursor(&c), Some(b.sort_key()));
        for bad in ["", "x", "000000000010-x", "10-01KQ0000000000000000000000"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn actions_round_trip() {
        for a in [
            AuditAction::Ban,
            AuditAction::LiftBan,
            AuditAction::RotatePublishKey,
            AuditAction::Grant,
            AuditAction::RevokeGrant,
            AuditAction::Wallet,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert_eq!(AuditAction::parse("delete_everything"), None);
    }
}

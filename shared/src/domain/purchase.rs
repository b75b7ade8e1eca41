//! App Store and Google Play purchases: the state a purchase record is stored in, and what
//! applying a store message did. Both are written as the same lowercase words they always
//! were (in DynamoDB items, API answers and logs), so stored data and clients never see the
//! change of type.

use serde::{Deserialize, Serialize, Serializer};

/// The state of a stored store purchase (the `state` attribute of a `PURCHASE` item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseState {
    /// A subscription paid up and renewing.
    Active,
    /// A Play subscription cancelled by the buyer but paid to the end of its period.
    Canceled,
    /// A subscription whose renewal failed; the store keeps access while it retries billing.
    Grace,
    /// A Play subscription suspended after failed billing: no access.
    OnHold,
    /// A Play subscription paused by the buyer: no access.
    Paused,
    /// A subscription past its end.
    Expired,
    /// Taken back by the store (refund, chargeback, revocation): its grants are revoked.
    Revoked,
    /// A Play subscription superseded by the token that upgraded, downgraded or re-signed it.
    Replaced,
    /// A Play one-time product token: the record only remembers the order it paid.
    Purchased,
    /// A Play purchase not paid yet (a pending payment method): the record remembers who
    /// handed the token over and which order it is for, so the notification that it
    /// completed finds them.
    Pending,
}

impl PurchaseState {
    pub const ALL: [PurchaseState; 10] = [
        PurchaseState::Active,
        PurchaseState::Canceled,
        PurchaseState::Grace,
        PurchaseState::OnHold,
        PurchaseState::Paused,
        PurchaseState::Expired,
        PurchaseState::Revoked,
        PurchaseState::Replaced,
        PurchaseState::Purchased,
        PurchaseState::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseState::Active => "active",
            PurchaseState::Canceled => "canceled",
            PurchaseState::Grace => "grace",
            PurchaseState::OnHold => "on_hold",
            PurchaseState::Paused => "paused",
            PurchaseState::Expired => "expired",
            PurchaseState::Revoked => "revoked",
            PurchaseState::Replaced => "replaced",
            PurchaseState::Purchased => "purchased",
            PurchaseState::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        PurchaseState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for PurchaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What applying a verified store purchase did: the `status` of `POST /purchases/apple` and
/// of an App Store notification's answer, and the outcome the Play verification job logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurchaseStatus {
    /// Access granted: a one-time product's order settled, or an App Store subscription
    /// active.
    Granted,
    /// A subscription's record was written and is now in this state (an App Store
    /// subscription that is simply active says `Granted` instead).
    Subscription(PurchaseState),
    /// Nothing new: seen before, or older than what is stored.
    Duplicate,
    /// An App Store one-time product's order was refunded.
    Refunded,
    /// The store reversed the refund of a one-time product: its order is PAID again.
    Restored,
    /// A Play one-time product's order was taken back (cancelled or voided).
    Revoked,
    /// The store has not been paid yet.
    Pending,
    /// Genuine, but no account is known for it yet.
    Unattributed,
}

impl PurchaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Granted => "granted",
            PurchaseStatus::Subscription(state) => state.as_str(),
            PurchaseStatus::Duplicate => "duplicate",
            PurchaseStatus::Refunded => "refunded",
            PurchaseStatus::Restored => "restored",
            PurchaseStatus::Revoked => "revoked",
            PurchaseStatus::Pending => "pending",
            PurchaseStatus::Unattributed => "unattributed",
        }
    }
}

impl std::fmt::Display for PurchaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PurchaseStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_their_stored_words() {
        let words: Vec<&str> = PurchaseState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "active",
                "canceled",
                "grace",
                "on_hold",
                "paused",
                "expired",
                "revoked",
                "replaced",
                "purchased",
                "pending"
            ]
        );
        for state in PurchaseState::ALL {
            assert_eq!(PurchaseState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(serde_json::Value::from(state.as_str()))
            );
            assert_eq!(
                serde_json::from_value::<PurchaseState>(state.as_str().into()).ok(),
                Some(state)
            );
        }
        for unknown in ["", "ACTIVE", "billing_retry", "on-hold"] {
            assert_eq!(PurchaseState::parse(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn statuses_serialize_as_their_words() {
        for (status, word) in [
            (PurchaseStatus::Granted, "granted"),
            (PurchaseStatus::Duplicate, "duplicate"),
            (PurchaseStatus::Refunded, "refunded"),
            (PurchaseStatus::Restored, "restored"),
            (PurchaseStatus::Revoked, "revoked"),
            (PurchaseStatus::Pending, "pending"),
            (PurchaseStatus::Unattributed, "unattributed"),
            (
                PurchaseStatus::Subscription(PurchaseState::Active),
                "active",
            ),
            (
                PurchaseStatus::Subscription(PurchaseState::OnHold),
                "on_hold",
            ),
            (PurchaseStatus::Subscription(PurchaseState::Grace), "grace"),
        ] {
            assert_eq!(status.as_str(), word);
            assert_eq!(status.to_string(), word);
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(word))
            );
        }
    }
}

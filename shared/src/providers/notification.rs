//! What the China payment providers' wire modules (WeChat Pay, Alipay, Huya) return once a
//! notification's signature, encryption and merchant ids have been checked: one shape for
//! all three, turned into a [`ProviderEvent`](super::ProviderEvent) by each provider.

/// What a verified provider notification means for our order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    Paid,
    Refunded,
    Closed,
    Pending,
}

/// A provider notification whose signature (and, where applicable, encryption) has been
/// verified and whose app / merchant ids matched the configuration. Amounts are typed here so
/// that what a refund means for access is decided by the service, not read from raw JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedNotification {
    pub kind: NotificationKind,
    /// Our order id.
    pub out_trade_no: String,
    /// transaction_id (WeChat) / trade_no (Alipay) / orderId (Huya).
    pub provider_txn_id: String,
    /// The order's total as the provider states it, in minor units (fen).
    pub amount_minor: i64,
    /// For refund events, in minor units: what this refund returned (WeChat Pay), or what
    /// was refunded on the trade so far (Alipay's `refund_fee`).
    pub refunded_minor: Option<i64>,
    /// For refund events: the provider's id of the refund (WeChat Pay's `refund_id`, Alipay's
    /// `out_biz_no`), so that a repeated notification of one refund counts once.
    pub refund_id: Option<String>,
    /// ISO currency, "CNY" for all three providers.
    pub currency: String,
    /// Unix seconds, if the provider states when the event happened.
    pub occurred_at: Option<i64>,
    /// The provider's own name for what happened (`REFUND.CLOSED`, `TRADE_CLOSED`, ...), for
    /// the log line of an event acknowledged without change.
    pub event: String,
    /// The decoded business fields, for audit and tests; never signatures. Nothing decides
    /// on these: every field a rule needs is typed above.
    pub raw: serde_json::Value,
}

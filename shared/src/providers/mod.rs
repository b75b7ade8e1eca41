//! Payment providers: one module each, holding that provider's wire format and nothing else.
//! A verified notification becomes a [`ProviderEvent`]; what to do with it is `service/`'s job.

pub mod sandbox;

use crate::domain::{Money, OrderId};

/// What a verified provider notification says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    Paid {
        order_id: OrderId,
        provider_txn_id: String,
        amount: Money,
        /// When the provider says the payment happened, if it says.
        paid_at: Option<i64>,
    },
    Refunded {
        order_id: OrderId,
        provider_txn_id: String,
        amount: Money,
    },
}

impl ProviderEvent {
    pub fn order_id(&self) -> &OrderId {
        match self {
            ProviderEvent::Paid { order_id, .. } | ProviderEvent::Refunded { order_id, .. } => {
                order_id
            }
        }
    }
}

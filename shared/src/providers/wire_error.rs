//! Why a provider's message or an outgoing request was refused, in the providers' shared
//! vocabulary. Pure: the wire modules return these; `providers/mod.rs` turns a
//! [`VerifyError`] into the callback rejection the API answers with.

use std::fmt;

/// Why a notification / response was rejected. `Display` output is safe to
/// log: it never contains key material and only short, provider-controlled
/// identifiers (serials, field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    BadSignature,
    UnknownKey(String),
    StaleTimestamp,
    WrongApp,
    WrongMerchant,
    Malformed(String),
    Unsupported(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::BadSignature => f.write_str("signature verification failed"),
            VerifyError::UnknownKey(s) => write!(f, "unknown verification key: {}", clip(s)),
            VerifyError::StaleTimestamp => f.write_str("timestamp outside the accepted window"),
            VerifyError::WrongApp => f.write_str("app id does not match configuration"),
            VerifyError::WrongMerchant => f.write_str("merchant id does not match configuration"),
            VerifyError::Malformed(s) => write!(f, "malformed message: {}", clip(s)),
            VerifyError::Unsupported(s) => write!(f, "unsupported: {}", clip(s)),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Limit attacker-controlled text that ends up in log lines.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

/// Error building an outgoing request (bad input or signing failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    InvalidInput(String),
    Signing,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidInput(s) => write!(f, "invalid request input: {s}"),
            BuildError::Signing => f.write_str("signing failed"),
        }
    }
}
impl std::error::Error for BuildError {}

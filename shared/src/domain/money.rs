//! Money as an integer count of minor units plus an ISO 4217 code.
//!
//! Providers send decimal strings ("12.00" yuan); those are parsed exactly so that a
//! malformed or over-precise amount is an error instead of a silently rounded number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 alphabetic code, always three ASCII uppercase letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    /// Tollgate's own coins, whole ones: the amount of an order paid with coins. An `X`
    /// code, as ISO 4217 leaves those to non-national units.
    pub const COINS: Currency = Currency(*b"XCN");

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::Currency(code.chars().take(8).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point for this currency (ISO 4217 minor unit).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"JPY" | b"KRW" | b"VND" | b"CLP" | b"ISK" | b"UGX" | b"XAF" | b"XOF" | b"PYG"
            | b"XCN" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"IQD" | b"LYD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units (fen, cents). Never negative: refunds are events, not negative money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be a three-letter ISO 4217 code, got {0:?}")]
    Currency(String),
    #[error(
        "amount must be a plain decimal with at most {max_places} decimal places, got {got:?}"
    )]
    Decimal { got: String, max_places: u32 },
    #[error("amount is out of range")]
    Overflow,
    #[error("amount must not be negative")]
    Negative,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { amount, currency })
    }

    /// Parses a provider's decimal string ("12.00", "0.5", "3") exactly.
    /// Rejects signs, exponents, blanks, thousands separators and extra precision.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let places = currency.exponent();
        let bad = || MoneyError::Decimal {
            got: text.chars().take(32).collect(),
            max_places: places,
        };
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) {
            return Err(bad());
        }
        let frac = match frac_part {
            None => "",
            Some(f) if all_digits(f) && f.len() as u32 <= places => f,
            Some(_) => return Err(bad()),
        };
        let mut minor: i64 = 0;
        for b in int_part.bytes().chain(frac.bytes()) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        for _ in frac.len() as u32..places {
            minor = minor.checked_mul(10).ok_or(MoneyError::Overflow)?;
        }
        Ok(Money {
            amount: minor,
            currency,
        })
    }

    /// The decimal string a provider expects ("12.00" for 1200 fen).
    pub fn to_decimal_string(&self) -> String {
        let places = self.currency.exponent();
        if places == 0 {
            return self.amount.to_string();
        }
        let scale = 10i64.pow(places);
        format!(
            "{}.{:0width$}",
            self.amount / scale,
            self.amount % scale,
            width = places as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(s: &str) -> Result<i64, MoneyError> {
        Money::parse_decimal(s, Currency::CNY).map(|m| m.amount)
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(cny("12.00"), Ok(1200));
        assert_eq!(cny("12"), Ok(1200));
        assert_eq!(cny("0.01"), Ok(1));
        assert_eq!(cny("0.5"), Ok(50));
        assert_eq!(cny("007.10"), Ok(710));
    }

    #[test]
    fn rejects_inexact_or_odd_forms() {
        for s in [
            "12.001", "1e3", "-1", "+1", " 1", "1 ", "", ".5", "12.", "1,000", "1.2.3", "0x10",
            "１２", "NaN", "inf",
        ] {
            assert!(cny(s).is_err(), "{s:?} must be rejected");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(cny("92233720368547758.08"), Err(MoneyError::Overflow));
        assert_eq!(cny("99999999999999999999"), Err(MoneyError::Overflow));
    }

    #[test]
    fn zero_exponent_currency() {
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse_decimal("500", jpy).unwrap().amount, 500);
        assert!(Money::parse_decimal("500.0", jpy).is_err());
        assert_eq!(Money::new(500, jpy).unwrap().to_decimal_string(), "500");
    }

    #[test]
    fn formats_round_trip() {
        for minor in [0, 1, 10, 99, 100, 1234, 3000, 123456789] {
            let m = Money::new(minor, Currency::CNY).unwrap();
            assert_eq!(cny(&m.to_decimal_string()), Ok(minor));
        }
        assert_eq!(
            Money::new(1, Currency::CNY).unwrap().to_decimal_string(),
            "0.01"
        );
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("CN").is_err());
        assert!(Currency::parse("CNYY").is_err());
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "USD");
        let m: Money = serde_json::from_str(r#"{"amount":900,"currency":"CNY"}"#).unwrap();
        assert_eq!(m.amount, 900);
        assert!(serde_json::from_str::<Money>(r#"{"amount":9.5,"currency":"CNY"}"#).is_err());
    }
}

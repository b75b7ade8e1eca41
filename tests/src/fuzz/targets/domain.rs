//! Unsigned text the app parses: money strings from providers (checked against a reference
//! parser written from the rule, not from the code) and the catalog JSON (checked for the
//! invariants the rest of the app relies on).

use super::super::{Input, Target, Verdict};
use crate::T0;
use tollgate::domain::{Catalog, Currency, Money};

/// `Money::parse_decimal` and `Currency::parse`.
pub struct MoneyTarget {
    seeds: Vec<Input>,
}

/// The rule: ASCII digits, optionally `.` and 1..=`places` digits, no sign, no blanks, and a
/// value that fits in i64 minor units. `None`: refused.
fn reference_minor(text: &str, places: u32) -> Option<i64> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) {
        return None;
    }
    let frac = match frac {
        None => "",
        Some(f) if digits(f) && f.len() <= places as usize => f,
        Some(_) => return None,
    };
    let mut value: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    for _ in frac.len()..places as usize {
        value = value.checked_mul(10)?;
    }
    i64::try_from(value).ok()
}

impl Target for MoneyTarget {
    fn name(&self) -> &'static str {
        "money"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["amount", "currency"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn check(&self, input: &Input) -> Verdict {
        let code = input.text(1);
        let should_parse = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
        let currency = match (Currency::parse(&code), should_parse) {
            (Ok(c), true) => c,
            (Err(_), false) => return Verdict::Rejected,
            (got, _) => return Verdict::Wrong(format!("currency {code:?} gave {got:?}")),
        };
        let text = input.text(0);
        let got = Money::parse_decimal(&text, currency);
        let expected = reference_minor(&text, currency.exponent());
        match (&got, expected) {
            (Err(_), None) => Verdict::Rejected,
            (Ok(m), Some(minor)) if m.amount == minor && m.currency == currency => {
                // What is accepted is printed back the same way providers are sent it.
                match Money::parse_decimal(&m.to_decimal_string(), currency) {
                    Ok(again) if again == *m => Verdict::Valid,
                    other => Verdict::Wrong(format!(
                        "{text:?} → {m:?} prints as {:?}, which parses as {other:?}",
                        m.to_decimal_string()
                    )),
                }
            }
            _ => Verdict::Wrong(format!("{text:?} gave {got:?}, the rule says {expected:?}")),
        }
    }
}

pub fn money() -> MoneyTarget {
    let seeds = [
        ("12.00", "CNY"),
        ("0.01", "CNY"),
        ("007.5", "USD"),
        ("500", "JPY"),
        ("1.234", "KWD"),
        ("92233720368547758.07", "CNY"),
    ]
    .iter()
    .map(|(a, c)| Input::new([a.as_bytes(), c.as_bytes()]))
    .collect();
    MoneyTarget { seeds }
}

/// `Catalog::from_json`.
pub struct CatalogTarget {
    seeds: Vec<Input>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// What the rest of the app relies on in a loaded catalog; `Err` names the first breach.
fn catalog_invariants(c: &Catalog) -> Result<(), String> {
    for p in c.products() {
        if !valid_id(&p.id) || !c.product(&p.id).is_some_and(|q| std::ptr::eq(p, q)) {
            return Err(format!("product {:?} is not found by its id", p.id));
        }
        if p.price.is_some_and(|m| m.amount <= 0) || p.plans.iter().any(|pl| pl.price.amount <= 0) {
            return Err(format!(
                "product {:?} has a price that is not positive",
                p.id
            ));
        }
        if p.plans.iter().any(|pl| pl.days == 0 || pl.days > 3660) {
            return Err(format!(
                "product {:?} has a plan of {:?} days",
                p.id, p.plans
            ));
        }
        if let Some(w) = p.window {
            if w.ends_at <= w.starts_at || w.access_until() < w.ends_at {
                return Err(format!("product {:?} has an inverted window {w:?}", p.id));
            }
        }
        let plans: Vec<Option<&str>> = if p.plans.is_empty() {
            vec![None]
        } else {
            p.plans.iter().map(|pl| Some(pl.id.as_str())).collect()
        };
        for plan in plans {
            if let Ok(offer) = c.offer(&p.id, plan, T0) {
                if offer.price.amount <= 0 {
                    return Err(format!("offer of {:?} {plan:?} is not positive", p.id));
                }
                let _ = offer.term();
            }
        }
    }
    for s in c.streams() {
        if !c.stream(&s.id).is_some_and(|t| std::ptr::eq(s, t)) {
            return Err(format!("stream {:?} is not found by its id", s.id));
        }
        for scope in &s.requires_any {
            if !c.products().iter().any(|p| p.grants.contains(scope)) {
                return Err(format!(
                    "stream {:?} requires {scope:?}, granted by nothing",
                    s.id
                ));
            }
        }
        let _ = c.products_unlocking(s);
    }
    Ok(())
}

impl Target for CatalogTarget {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["json"]
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn check(&self, input: &Input) -> Verdict {
        match Catalog::from_json(&input.text(0)) {
            Ok(c) => match catalog_invariants(&c) {
                Ok(()) => Verdict::Valid,
                Err(why) => Verdict::Wrong(why),
            },
            Err(_) => Verdict::Rejected,
        }
    }
}

pub fn catalog() -> CatalogTarget {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../catalog.example.json"
    ))
    .expect("catalog.example.json");
    CatalogTarget {
        seeds: vec![
            Input(vec![crate::catalog_json().into_bytes()]),
            Input(vec![example.into_bytes()]),
        ],
    }
}

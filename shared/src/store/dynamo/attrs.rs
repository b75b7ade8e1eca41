//! Typed access to DynamoDB attribute maps: building `S`/`N` values and reading them back,
//! where a missing or mistyped attribute is a corrupt item rather than a panic.

use crate::store::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One stored item (or key) as the SDK sees it.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "missing string attribute {name}"
        ))),
    }
}

pub(super) fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_n(item, name)?
        .ok_or_else(|| StoreError::Corrupt(format!("missing number attribute {name}")))
}

pub(super) fn opt_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Ok(None),
    }
}

pub(super) fn json_attr<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, StoreError> {
    opt_s(item, name)
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("attribute {name}: {e}")))
        })
        .transpose()
}

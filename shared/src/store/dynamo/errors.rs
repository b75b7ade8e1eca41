//! SDK errors → [`StoreError`]: a failed condition is an answer (the write did not apply),
//! anything else means the store could not be used and the caller may retry.

use crate::store::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

pub(super) fn unavailable<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("{op}: {}", DisplayErrorContext(&e)))
}

/// The single-item writes whose condition can fail.
pub(super) trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

impl ConditionFailed for PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailed for UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// Whether a conditional single-item write applied: `false` when its condition failed
/// (nothing was written), an error for any other failure.
pub(super) fn condition_held<O, E, R>(
    op: &str,
    result: Result<O, SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: ConditionFailed + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(E::condition_failed) => Ok(false),
        Err(e) => Err(unavailable(op, e)),
    }
}

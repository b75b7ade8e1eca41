//! Events out to the app's backends as Standard Webhooks: the signature (pure, `sign`).
//! What is sent, and when, is decided from the event records the stores keep with each
//! change (`domain::event`) and the catalog's lines (`domain::line`).

pub mod deliver;
pub mod retry_queue;
pub mod run;
pub mod secrets;
pub mod sign;

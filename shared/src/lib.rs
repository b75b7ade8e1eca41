//! Tollgate: paid access to live streams. Everything but the process entry points lives here.
pub mod clock;
pub mod domain;
pub mod store;

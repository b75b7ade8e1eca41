//! Tollgate: paid access to live streams. Everything but the process entry points lives here.
pub mod domain;

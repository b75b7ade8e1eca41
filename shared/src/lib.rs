//! Tollgate: paid access to live streams. Everything but the process entry points lives here.
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod cpu_pool;
pub mod crypto;
pub mod domain;
pub mod lambda;
pub mod local;
pub mod metrics;
pub mod providers;
pub mod queue;
pub mod recovery;
pub mod secret;
pub mod service;
pub mod store;
pub mod stream;

//! Job types. Each is a [`Job`] impl in its own file (its queue, concurrency and handler);
//! [`runner`] does the bookkeeping around every run (claim, timeout, panics, retries, metrics)
//! and [`job::register_all`] lists the job types a worker runs.

pub mod analyze;
pub mod embed;
pub mod failure;
pub mod job;
pub mod runner;
pub mod scrape;
pub mod warm;

pub use failure::Failure;
pub use job::{Job, Registration, register_all};

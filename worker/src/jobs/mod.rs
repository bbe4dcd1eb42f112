//! Job types. Each is a [`Job`] impl in its own file (its queue, concurrency, admission and
//! handler); [`job::register_all`] lists the job types a worker runs. [`dispatch`] moves tickets
//! from the fair queues to apalis, [`runner`] does the bookkeeping around every run (admission,
//! claim, timeout, panics, retries, metrics) and [`deliveries`] keeps apalis's data bounded.

pub mod analyze;
pub mod deliveries;
pub mod dispatch;
pub mod embed;
pub mod failure;
pub mod job;
pub mod reindex;
pub mod runner;
pub mod scrape;
pub mod warm;

pub use failure::Failure;
pub use job::{Job, Registration, register_all};

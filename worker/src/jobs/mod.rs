//! Job handlers. Each stage is a plain async function returning `Result<(), Failure>`;
//! [`runner`] does the bookkeeping around it (claim, timeout, panics, retries, metrics).

pub mod analyze;
pub mod embed;
pub mod failure;
pub mod runner;
pub mod scrape;
pub mod warm;

pub use failure::Failure;

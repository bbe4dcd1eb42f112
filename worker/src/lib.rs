//! Fuze worker: runs scrape and embed jobs, holds the embedding model, and the clock.

pub mod embed;
pub mod scrape;

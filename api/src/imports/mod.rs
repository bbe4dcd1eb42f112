//! Bulk imports at the api: reading export files ([`parse`]) and receiving them as a stream
//! ([`upload`]). Sessions, items and crawl feeding live in `fuze_shared::imports`.

pub mod parse;
pub mod upload;

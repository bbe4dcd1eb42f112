//! Per-user search over bookmarks.
//!
//! - [`nearest`]: semantic: nearest passages in the current embedding space, exact per user
//! - [`keyword`]: keyword: the indexed text representation, per user and language
//! - [`fuse`]: hybrid: both lists' normalized scores blended, exact titles first
//! - [`language`]: the text search configuration of a page's language

pub mod fuse;
pub mod keyword;
pub mod language;
pub mod nearest;

pub(crate) use nearest::{NEAREST_CTES, bind_nearest, in_parts};
pub use nearest::{
    Nearest, PassageRef, RERANK_MIN, RERANK_PER_RESULT, id_ranges, nearest_bookmarks,
    nearest_bookmarks_among, nearest_sql, rerank_count,
};

//! What a stored embedding is: its length, the one place it is written in Rust (the migrations'
//! `vector(384)` columns and the search statement's cast say it in SQL).

/// Length of every stored vector (all-MiniLM-L6-v2's output).
pub const DIMENSIONS: usize = 384;

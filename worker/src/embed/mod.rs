//! Sentence embeddings with candle (all-MiniLM-L6-v2).

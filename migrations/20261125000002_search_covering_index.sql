-- Exact per-user vector search reads every row of the user; a covering index lets it read the
-- embeddings without touching the heap (measured in docs/SEARCH.md: 25k-row user 99 -> 41 ms p50).
CREATE INDEX saved_content_user_embedding ON saved_content (user_id) INCLUDE (id, embedding);

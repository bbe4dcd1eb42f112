-- Per-user search scans a half-precision copy of each embedding through a covering index, then
-- re-ranks the few best rows exactly (shared/src/search.rs; measured in docs/SEARCH.md). This
-- replaces the sign-bit prefilter and its f32 covering index: the halfvec scan is as fast for
-- on-topic queries, twice as fast for the rest, and needs no trust heuristic.
DROP INDEX saved_content_user_bits;
DROP INDEX saved_content_user_id_embedding;
-- One ALTER, so the table is rewritten once.
ALTER TABLE saved_content
    DROP COLUMN embedding_bits,
    ADD COLUMN embedding_half halfvec(384)
        GENERATED ALWAYS AS (embedding::halfvec(384)) STORED;
-- Keyed on (user_id, id): a search splits the user's rows into id ranges scanned concurrently.
CREATE INDEX saved_content_user_id_half ON saved_content (user_id, id) INCLUDE (embedding_half);

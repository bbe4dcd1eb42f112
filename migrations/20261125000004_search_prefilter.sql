-- Two-stage per-user search (shared/src/search.rs): a 1-bit-per-dimension copy of each embedding
-- ranks all of a user's rows cheaply (48 bytes per row instead of 1.5 kB), then only the best
-- candidates are re-ranked by exact cosine distance. Measured in docs/SEARCH.md.
ALTER TABLE saved_content
    ADD COLUMN embedding_bits bit(384)
    GENERATED ALWAYS AS (binary_quantize(embedding)::bit(384)) STORED;
CREATE INDEX saved_content_user_bits ON saved_content (user_id) INCLUDE (id, embedding_bits);
-- The re-rank looks candidates up by (user_id, id) and reads their embeddings from the index
-- itself, without table reads (measured ~5 ms per 1,000 candidates against ~23 ms through the
-- primary key and the table). Still serves a full exact scan of one user through its user_id prefix.
DROP INDEX saved_content_user_embedding;
CREATE INDEX saved_content_user_id_embedding ON saved_content (user_id, id) INCLUDE (embedding);

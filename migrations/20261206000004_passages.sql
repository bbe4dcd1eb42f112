-- Whole pages in semantic search, and every vector tied to the space that made it
-- (shared/src/embedding.rs, docs/SEARCH.md "Passages and embedding spaces").

-- An embedding space: model, weights digest and passage scheme. Vectors of two spaces are never
-- compared; rows keep a small id instead of repeating the name.
CREATE TABLE embedding_spaces (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A page's passages, each embedded on its own; a bookmark's semantic score is its best
-- passage's. Written all at once per bookmark, in the transaction that records the space name
-- in saved_content.embedding_model.
CREATE TABLE bookmark_passages (
    bookmark_id    uuid NOT NULL REFERENCES saved_content(id) ON DELETE CASCADE,
    ordinal        smallint NOT NULL CHECK (ordinal >= 0),
    user_id        uuid NOT NULL,
    space_id       integer NOT NULL REFERENCES embedding_spaces(id),
    -- Where the passage is, in chars of the embedded text (title, description, body).
    start_char     integer NOT NULL,
    end_char       integer NOT NULL,
    embedding      vector(384) NOT NULL,
    embedding_half halfvec(384) GENERATED ALWAYS AS (embedding::halfvec(384)) STORED,
    PRIMARY KEY (bookmark_id, ordinal)
);
-- The per-user scan of one space, in half precision from the index alone, ordered by bookmark
-- so the best passage per bookmark is found as the rows stream by; ranges of bookmark ids are
-- scanned concurrently (shared/src/search/nearest.rs).
CREATE INDEX bookmark_passages_user_space ON bookmark_passages (user_id, space_id, bookmark_id)
    INCLUDE (ordinal, embedding_half);

-- Counting stale rows (the fuze_embeddings_stale gauge, the reindex job) reads this index only.
CREATE INDEX saved_content_embedded_space ON saved_content (embedding_model)
    WHERE embedding IS NOT NULL;

-- Search no longer scans saved_content's own vectors; the document vector stays for
-- recommendations' near-duplicate check and `include=embedding`.
DROP INDEX saved_content_user_id_half;

-- Existing rows have no passages and name only the model: stale until the reindex job embeds
-- them again (worker/src/jobs/reindex.rs). Nothing to do here.

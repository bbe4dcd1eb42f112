-- Keyword search from an index instead of text vectors built at query time (shared/src/search/
-- keyword.rs, docs/SEARCH.md). Each page is indexed with its language's stemmer where the analysis
-- stage detected one PostgreSQL has (`text_search_config`), `simple` otherwise. Title words weigh
-- most (A), then URL words (B), then the user's notes and the description (C), then the body (D).
-- The body is cut at 100,000 characters: a tsvector is limited to 1 MiB, and word positions stop
-- counting at 16,383 anyway.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- One ALTER, so the table is rewritten once.
ALTER TABLE saved_content
    ADD COLUMN text_search_config regconfig NOT NULL DEFAULT 'simple',
    ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(text_search_config,
            coalesce(title, '') || ' ' || coalesce(scraped_title, '')), 'A')
        || setweight(to_tsvector(text_search_config,
            regexp_replace(url, '^[a-z]+://(www\.)?|[^[:alnum:]]+', ' ', 'gi')), 'B')
        || setweight(to_tsvector(text_search_config,
            coalesce(notes, '') || ' ' || coalesce(description, '')), 'C')
        || setweight(to_tsvector(text_search_config, left(coalesce(text, ''), 100000)), 'D')
    ) STORED;

-- btree_gin puts the user id in the same index: a search reads only that user's entries.
CREATE INDEX saved_content_user_search_doc ON saved_content USING gin (user_id, search_doc);

-- Pages analysed before this migration: their detected language picks their configuration.
UPDATE saved_content s SET text_search_config = c.config::regconfig
FROM content_analysis a,
     (VALUES ('ara', 'arabic'), ('cat', 'catalan'), ('dan', 'danish'), ('deu', 'german'),
             ('ell', 'greek'), ('eng', 'english'), ('fin', 'finnish'), ('fra', 'french'),
             ('hin', 'hindi'), ('hun', 'hungarian'), ('hye', 'armenian'), ('ind', 'indonesian'),
             ('ita', 'italian'), ('lit', 'lithuanian'), ('nep', 'nepali'), ('nld', 'dutch'),
             ('nob', 'norwegian'), ('por', 'portuguese'), ('ron', 'romanian'), ('rus', 'russian'),
             ('spa', 'spanish'), ('srp', 'serbian'), ('swe', 'swedish'), ('tur', 'turkish'))
         AS c(language, config)
WHERE a.content_id = s.id AND a.language = c.language;

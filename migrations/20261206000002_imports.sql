-- Bulk imports: one session per uploaded file, one item per entry of the file.
-- The user's own tags (from imports: folders and tag fields); analyses keep their own.
ALTER TABLE saved_content ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
-- An imported link saved without its page (`crawl=false`); crawlable later.
ALTER TABLE saved_content DROP CONSTRAINT saved_content_status_check;
ALTER TABLE saved_content ADD CONSTRAINT saved_content_status_check
    CHECK (status IN ('pending', 'scraped', 'ready', 'failed', 'not_crawled'));

CREATE TABLE imports (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    format       text NOT NULL,
    crawl        boolean NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',   -- added to every item
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'paused', 'cancelled', 'completed')),
    entries      integer NOT NULL,               -- items in the file, valid or not
    bytes        bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX imports_user_created ON imports (user_id, created_at DESC, id DESC);
-- The clock's feeder looks for running imports.
CREATE INDEX imports_running ON imports (updated_at) WHERE state = 'running';

-- An item's state once staged: `saved` (its bookmark exists; its crawl, if any, is told by its
-- job), `duplicate` (merged into a bookmark the user already had), `failed` (the entry could not
-- be read: `error_code` says why), `skipped` (cancelled before its crawl). `crawled` and a failed
-- crawl are read from the item's job, so the two can never disagree.
CREATE TABLE import_items (
    import_id    uuid NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    seq          integer NOT NULL,               -- position in the file
    url          text NOT NULL,
    title        text,
    tags         text[] NOT NULL DEFAULT '{}',
    added_at     timestamptz,
    line         integer,
    state        text NOT NULL CHECK (state IN ('saved', 'duplicate', 'failed', 'skipped')),
    bookmark_id  uuid REFERENCES saved_content(id) ON DELETE SET NULL,
    job_id       text REFERENCES jobs(id) ON DELETE SET NULL,
    error_code   text,
    error        text,
    PRIMARY KEY (import_id, seq)
);
-- Items still to crawl, in file order: what the feeder takes next.
CREATE INDEX import_items_to_feed ON import_items (import_id, seq)
    WHERE state = 'saved' AND job_id IS NULL;

-- A crawl job started by an import; the feeder keeps a bounded window of them queued.
ALTER TABLE jobs ADD COLUMN import_id uuid REFERENCES imports(id) ON DELETE SET NULL;
CREATE INDEX jobs_import_open ON jobs (import_id)
    WHERE import_id IS NOT NULL AND state IN ('queued', 'running', 'retrying');

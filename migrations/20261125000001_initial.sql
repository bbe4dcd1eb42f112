-- Fuze schema: users, bookmarks (saved_content) with embeddings, analyses, projects, tasks and job status.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    token_hash  bytea NOT NULL UNIQUE,      -- sha256 of the bearer token; the token itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE saved_content (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url            text NOT NULL,
    url_hash       bytea NOT NULL,          -- sha256 of the normalized url
    title          text,                    -- user-given title wins over the scraped one
    notes          text,
    scraped_title  text,
    description    text,
    canonical_url  text,
    text           text,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'scraped', 'ready', 'failed')),
    error          text,
    quality_score  real,
    embedding      vector(384),
    embedding_model text,
    saved_at       timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX saved_content_user_url ON saved_content (user_id, url_hash);
-- Keyset pagination: newest first, id breaks ties.
CREATE INDEX saved_content_user_saved_at ON saved_content (user_id, saved_at DESC, id DESC);
CREATE INDEX saved_content_user_quality ON saved_content (user_id, quality_score DESC);
CREATE INDEX saved_content_embedding_hnsw ON saved_content USING hnsw (embedding vector_cosine_ops);

CREATE TABLE content_analysis (
    content_id     uuid PRIMARY KEY REFERENCES saved_content(id) ON DELETE CASCADE,
    keywords       text[] NOT NULL DEFAULT '{}',
    tags           text[] NOT NULL DEFAULT '{}',
    word_count     integer NOT NULL DEFAULT 0,
    reading_time_s integer NOT NULL DEFAULT 0,
    language       text,
    quality_score  real,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_user_created ON projects (user_id, created_at DESC, id DESC);

CREATE TABLE tasks (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title       text NOT NULL,
    description text,
    done        boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_project_created ON tasks (project_id, created_at DESC, id DESC);

-- Fuze's own job status records (apalis-redis status is ambiguous and never expires; see docs/DESIGN.md).
CREATE TABLE jobs (
    id           text PRIMARY KEY,           -- ULID, also the first apalis task id
    user_id      uuid REFERENCES users(id) ON DELETE CASCADE,
    kind         text NOT NULL,
    stage        text,
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'retrying')),
    attempts     integer NOT NULL DEFAULT 0,  -- runs of the current stage (the cap applies per stage)
    total_attempts integer NOT NULL DEFAULT 0, -- runs of all stages
    max_attempts integer NOT NULL,
    error_code   text,
    error        text,
    bookmark_id  uuid REFERENCES saved_content(id) ON DELETE SET NULL,
    -- The apalis task allowed to run this job now; a stale duplicate task finds another id and stops.
    task_id      text NOT NULL,
    run_after    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,                -- first time any worker picked it up
    finished_at  timestamptz
);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_state_updated ON jobs (state, updated_at DESC);
CREATE INDEX jobs_bookmark ON jobs (bookmark_id, created_at DESC);

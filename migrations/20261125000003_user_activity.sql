-- When a user last started a session: the clock's cache warm-up covers the most recently seen users.
ALTER TABLE users ADD COLUMN last_seen_at timestamptz;
CREATE INDEX users_last_seen ON users (last_seen_at DESC) WHERE last_seen_at IS NOT NULL;

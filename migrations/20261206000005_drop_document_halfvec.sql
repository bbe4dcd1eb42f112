-- Search scans bookmark_passages' own halfvec copy (20261206000004_passages.sql) and that
-- migration dropped the index on this one, so nothing reads saved_content.embedding_half: stop
-- computing and storing it on every write. (Dropping a column rewrites nothing.)
ALTER TABLE saved_content DROP COLUMN embedding_half;

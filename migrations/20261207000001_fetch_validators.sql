-- What the last successful fetch of a page said about its version, sent back when the page is
-- refreshed (If-None-Match / If-Modified-Since): an unchanged page then costs a 304.
ALTER TABLE saved_content
    ADD COLUMN fetch_etag text,
    ADD COLUMN fetch_last_modified text;

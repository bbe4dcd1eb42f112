-- Which lane a job waits in: a user's own saves run ahead of bulk work (imports, re-crawls).
ALTER TABLE jobs ADD COLUMN lane text NOT NULL DEFAULT 'interactive'
    CHECK (lane IN ('interactive', 'bulk'));
-- `task_id` now names the job's current ticket in the fair queue (the scheduled run of its stage);
-- apalis only ever sees deliveries of it under ids of their own.
COMMENT ON COLUMN jobs.task_id IS 'the ticket of the run allowed now; a stale delivery finds another and stops';
-- A user's jobs that are queued and have not started yet, counted at every save (the pending cap).
CREATE INDEX jobs_user_not_started ON jobs (user_id) WHERE state = 'queued' AND started_at IS NULL;
-- The oldest runnable job per stage and lane, for the backlog gauges.
CREATE INDEX jobs_runnable ON jobs (stage, lane, COALESCE(run_after, updated_at))
    WHERE state IN ('queued', 'retrying');

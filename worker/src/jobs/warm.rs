//! WarmJob: loads the hot read-path values of one user, or of the most recently seen users, into
//! Redis (L2) so their next reads skip the database: the first page of bookmarks and the analyses
//! of the bookmarks on it.
//!
//! Best effort: a warm-up that fails is logged and counted, never retried (the cache fills on
//! demand anyway), so nothing goes back to apalis as an error.

use apalis::prelude::{BoxDynError, Data, TaskId};
use fuze_shared::{
    analysis, auth,
    cache::CacheType,
    jobs::{QueueName, RawPayload, WarmJob},
    views,
};
use uuid::Uuid;

use crate::context::{JobContext, SharedContext};

/// apalis handler for the warm queue.
pub async fn handle(
    payload: RawPayload,
    task_id: TaskId,
    ctx: Data<SharedContext>,
) -> Result<(), BoxDynError> {
    let q = QueueName::Warm.as_str();
    let job: WarmJob = match serde_json::from_slice(&payload.0) {
        Ok(job) => job,
        Err(e) => {
            ctx.metrics.jobs_undecodable.with_label_values(&[q]).inc();
            tracing::error!(queue = q, task = %task_id, error = %e, "dropping undecodable warm job");
            return Ok(());
        }
    };
    ctx.metrics.jobs_started.with_label_values(&[q]).inc();
    let started = std::time::Instant::now();
    let outcome = match warm(&ctx, &job).await {
        Ok(keys) => {
            tracing::info!(reason = job.reason, user = ?job.user_id, keys, "caches warmed");
            "succeeded"
        }
        Err(e) => {
            tracing::warn!(reason = job.reason, user = ?job.user_id, error = %format!("{e:#}"), "warm-up failed");
            "failed"
        }
    };
    ctx.metrics
        .job_duration
        .with_label_values(&[q])
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .jobs_finished
        .with_label_values(&[q, outcome])
        .inc();
    Ok(())
}

/// Returns how many values were written.
async fn warm(ctx: &JobContext, job: &WarmJob) -> anyhow::Result<usize> {
    let users = match job.user_id {
        Some(user) => vec![user],
        None => {
            let clock = &ctx.config.clock;
            auth::recently_seen_users(&ctx.db, clock.warm_active_within, clock.warm_max_users)
                .await?
        }
    };
    let mut written = 0;
    for user in users {
        written += warm_user(ctx, user).await?;
    }
    Ok(written)
}

async fn warm_user(ctx: &JobContext, user: Uuid) -> anyhow::Result<usize> {
    let limit = ctx.config.api.page_size_default;
    let mut written = usize::from(
        ctx.cache
            .warm(
                CacheType::UserBookmarks,
                Some(user),
                &views::bookmark_page_key(limit, None),
                views::bookmark_page(&ctx.db, user, limit, None),
            )
            .await?,
    );
    for found in analysis::newest_for_user(&ctx.db, user, limit).await? {
        let stored = ctx
            .cache
            .warm(
                CacheType::Analysis,
                Some(user),
                &views::analysis_key(found.bookmark_id),
                async { views::analysis_json(&found) },
            )
            .await?;
        written += usize::from(stored);
    }
    Ok(written)
}

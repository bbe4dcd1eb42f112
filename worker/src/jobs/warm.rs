//! WarmJob: loads the hot read-path values of one user, or of the most recently seen users, into
//! Redis (L2) so their next reads skip the database: the first page of bookmarks and the analyses
//! of the bookmarks on it.
//!
//! Best effort: a warm-up that fails is logged and counted, never retried (the cache fills on
//! demand anyway).

use fuze_shared::{
    analysis, auth,
    cache::CacheType,
    config::Config,
    jobs::{QueueName, StageJob, WarmJob},
    views,
};
use uuid::Uuid;

use super::{
    Failure,
    job::{Admission, Job},
    runner::Run,
};
use crate::context::JobContext;

/// Warms users' read caches; best effort, so it keeps no record and is never retried.
pub struct Warm;

impl Job for Warm {
    const QUEUE: QueueName = QueueName::Warm;
    type Payload = WarmJob;
    type Permit = ();

    fn concurrency(_: &Config) -> usize {
        1
    }

    fn record(_: &WarmJob) -> Option<&StageJob> {
        None
    }

    async fn admit(_: &JobContext, _: &Run, _: &WarmJob) -> Admission<()> {
        Admission::Go(())
    }

    async fn run(ctx: &JobContext, _: &Run, job: WarmJob, _: ()) -> Result<(), Failure> {
        match warm(ctx, &job).await {
            Ok(keys) => {
                tracing::info!(reason = job.reason, user = ?job.user_id, keys, "caches warmed");
                Ok(())
            }
            Err(e) => Err(Failure::transient("warm", format!("{e:#}"))),
        }
    }
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

//! ReindexJob: embeds bookmarks whose vectors belong to another embedding space (another model,
//! other weights, another passage scheme) again in the worker's space, a batch per run, in the
//! bulk lane ([`fuze_shared::jobs::reindex`] keeps the pass and its progress).
//!
//! [`watch`] runs in every worker: it counts stale bookmarks for the `fuze_embeddings_stale`
//! gauge and starts a pass when some are stale and none runs (or takes over one gone silent).
//! Meanwhile stale bookmarks are found by keyword search only; semantic search skips them.

use std::collections::BTreeSet;

use fuze_shared::{
    bookmarks, embedding,
    jobs::{
        QueueName, StageJob,
        reindex::{self, Next, ReindexJob},
    },
};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    Failure,
    embed::embed_passages,
    job::{Admission, Job},
    runner::Run,
};
use crate::context::{JobContext, SharedContext};

/// Embeds a batch of stale bookmarks again, then hands on to the next batch.
pub struct Reindex;

impl Job for Reindex {
    const QUEUE: QueueName = QueueName::Reindex;
    type Payload = ReindexJob;
    type Permit = ();

    fn concurrency(_: &fuze_shared::config::Config) -> usize {
        // One run at a time, each one bookmark at a time: users' own embeddings share the
        // model thread between bookmarks instead of waiting behind a whole batch.
        1
    }

    fn record(_: &ReindexJob) -> Option<&StageJob> {
        None
    }

    async fn admit(_: &JobContext, _: &Run, _: &ReindexJob) -> Admission<()> {
        Admission::Go(())
    }

    async fn run(ctx: &JobContext, _: &Run, job: ReindexJob, _: ()) -> Result<(), Failure> {
        run_batch(ctx, &job)
            .await
            .map_err(|e| Failure::transient("reindex", format!("{e:#}")))
    }
}

async fn run_batch(ctx: &JobContext, job: &ReindexJob) -> anyhow::Result<()> {
    if job.space != ctx.space.name {
        // Queued by a worker of another space (a rolling upgrade): not this worker's to do.
        tracing::info!(
            space = job.space,
            "reindex run for another embedding space skipped"
        );
        return Ok(());
    }
    if !reindex::is_current(&ctx.queues, &job.space, &job.pass).await? {
        tracing::info!(pass = job.pass, "reindex run of a superseded pass skipped");
        return Ok(());
    }
    let batch = ctx.config.worker.reindex_batch;
    let rows = stale_after(&ctx.db, &ctx.space.name, job.after, batch).await?;
    let (mut done, mut failed) = (0u64, 0u64);
    let mut users = BTreeSet::new();
    for &(id, user_id) in &rows {
        match embed_again(ctx, user_id, id).await {
            Ok(true) => {
                done += 1;
                users.insert(user_id);
            }
            Ok(false) => {} // deleted meanwhile
            Err(failure) => {
                failed += 1;
                tracing::warn!(bookmark = %id, ?failure, "reindex could not embed a bookmark");
            }
        }
    }
    // Their semantic results and recommendations change; their lists and analyses do not.
    for user in users {
        ctx.vectors_changed(user).await;
    }
    let cursor = rows.last().map(|&(id, _)| id).or(job.after);
    let finished = rows.len() < batch as usize;
    reindex::record_batch(&ctx.queues, &job.space, done, failed, cursor, finished).await?;
    if finished {
        tracing::info!(space = job.space, "reindex pass finished");
    } else {
        let next = ReindexJob {
            after: cursor,
            ..job.clone()
        };
        reindex::enqueue(&ctx.queues, &next).await?;
    }
    Ok(())
}

/// Up to `limit` bookmarks (id, user) with vectors of another space than `space`, after `after`
/// in id order.
async fn stale_after(
    db: &PgPool,
    space: &str,
    after: Option<Uuid>,
    limit: u32,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT id, user_id FROM saved_content \
         WHERE embedding IS NOT NULL AND embedding_model IS DISTINCT FROM $1 AND id > $2 \
         ORDER BY id LIMIT $3",
    )
    .bind(space)
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// Embeds one bookmark again; false when it is gone.
async fn embed_again(ctx: &JobContext, user_id: Uuid, id: Uuid) -> Result<bool, Failure> {
    let Some(text) = bookmarks::text_to_embed(&ctx.db, user_id, id).await? else {
        return Ok(false);
    };
    let passages = embed_passages(ctx, &text).await?;
    Ok(bookmarks::replace_embedding(&ctx.db, &ctx.space, user_id, id, &passages).await?)
}

/// Every check interval: the stale gauge, and a pass started (or taken over) when needed.
pub async fn watch(ctx: SharedContext) {
    let interval = ctx.config.worker.reindex_check_interval;
    loop {
        if let Err(e) = check(&ctx).await {
            tracing::warn!(error = format!("{e:#}"), "reindex check failed");
        }
        tokio::time::sleep(interval).await;
    }
}

async fn check(ctx: &JobContext) -> anyhow::Result<()> {
    let stale = embedding::stale_count(&ctx.db, &ctx.space).await?;
    ctx.metrics.embeddings_stale.set(stale);
    let stale = u64::try_from(stale).unwrap_or(0);
    let progress = reindex::progress(&ctx.queues, &ctx.space.name).await?;
    let stall = ctx.config.worker.reindex_stall;
    let hold = ctx.config.worker.reindex_check_interval;
    let started = match reindex::next_step(stale, progress.as_ref(), chrono::Utc::now(), stall) {
        Next::Wait => false,
        Next::Start => reindex::start(&ctx.queues, &ctx.space.name, stale, None, hold).await?,
        Next::TakeOver => {
            reindex::start(&ctx.queues, &ctx.space.name, stale, progress.as_ref(), hold).await?
        }
    };
    if started {
        tracing::info!(space = ctx.space.name, stale, "reindex pass started");
    }
    Ok(())
}

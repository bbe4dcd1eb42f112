//! EmbedJob: embed the bookmark's title, description and main text, store the vector, hand the
//! job to the analyze stage.
//! Concurrent embed jobs share forward passes: the embedder thread batches what arrives together.

use fuze_shared::query_lane::{decode_vector, encode_vector};
use fuze_shared::{
    bookmarks,
    config::Config,
    jobs::{Owner, QueueName, StageJob},
};
use redis::AsyncCommands;

use super::{
    Failure,
    job::{Admission, Job},
    runner::{self, Run},
};
use crate::context::JobContext;

/// Embeds a scraped bookmark and stores the vector.
pub struct Embed;

impl Job for Embed {
    const QUEUE: QueueName = QueueName::Embed;
    type Payload = StageJob;
    type Permit = ();

    fn concurrency(config: &Config) -> usize {
        config.worker.embed_concurrency
    }

    fn record(job: &StageJob) -> Option<&StageJob> {
        Some(job)
    }

    async fn admit(_: &JobContext, _: &Run, _: &StageJob) -> Admission<()> {
        Admission::Go(())
    }

    async fn run(ctx: &JobContext, run: &Run, job: StageJob, _: ()) -> Result<(), Failure> {
        embed(ctx, run, job).await
    }
}

async fn embed(ctx: &JobContext, run: &Run, job: StageJob) -> Result<(), Failure> {
    let text = bookmarks::text_to_embed(&ctx.db, job.user_id, job.bookmark_id)
        .await?
        .ok_or_else(|| Failure::permanent("bookmark_deleted", "the bookmark was deleted"))?;
    if text.trim().is_empty() {
        return Err(Failure::permanent(
            "nothing_to_embed",
            "the page has no title or text",
        ));
    }
    let vector = embedding_for(ctx, &text).await?;
    let model = ctx.embedder.model_id().to_owned();
    let db = &ctx.metrics.db;
    // Ready (searchable) from here on: the number users feel is saved -> stored.
    let since_save = db
        .time(
            "store_embedding",
            bookmarks::store_embedding(&ctx.db, job.user_id, job.bookmark_id, &vector, &model),
        )
        .await?;
    let Some(seconds) = since_save else {
        return Err(Failure::permanent(
            "bookmark_deleted",
            "the bookmark was deleted",
        ));
    };
    ctx.metrics.save_to_ready.observe(seconds);
    // The analysis follows as the job's last stage.
    ctx.bookmarks_changed(job.user_id).await;
    runner::hand_off(
        ctx,
        run,
        &job.job_id,
        Owner::User(job.user_id),
        QueueName::Analyze,
        &job,
    )
    .await
}

/// The cached embedding of `text`, or a fresh one (then cached for the configured TTL).
pub async fn embedding_for(ctx: &JobContext, text: &str) -> Result<Vec<f32>, Failure> {
    let key = ctx.keys.embedding(ctx.embedder.model_id(), text);
    let mut conn = ctx.redis.clone();
    let cached: Option<Vec<u8>> = conn
        .get(&key)
        .await
        .inspect_err(|e| ctx.metrics.redis_error("embed_cache", e))
        .ok()
        .flatten();
    if let Some(vector) = cached.and_then(|bytes| decode_vector(&bytes, ctx.embedder.dimensions()))
    {
        ctx.metrics.embed_cache.with_label_values(&["hit"]).inc();
        return Ok(vector);
    }
    ctx.metrics.embed_cache.with_label_values(&["miss"]).inc();
    let vector = ctx
        .embedder
        .embed(vec![text.to_owned()])
        .await
        .map_err(|e| Failure::transient("embedding", format!("{e:#}")))?
        .pop()
        .ok_or_else(|| Failure::transient("embedding", "the model returned no vector"))?;
    let ttl = ctx.config.ttl.embedding.as_secs().max(1);
    let written: redis::RedisResult<()> = conn.set_ex(&key, encode_vector(&vector), ttl).await;
    if let Err(e) = written {
        ctx.metrics.redis_error("embed_cache", &e);
    }
    Ok(vector)
}

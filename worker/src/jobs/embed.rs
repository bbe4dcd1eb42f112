//! EmbedJob: embed the bookmark's title, description and main text as passages of the model's
//! window, store their vectors, hand the job to the analyze stage.
//! Concurrent embed jobs share forward passes: the embedder thread batches what arrives together.

use fuze_shared::query_lane::{decode_vector, encode_vector};
use fuze_shared::{
    bookmarks::{self, Passage},
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
    let passages = embed_passages(ctx, &text).await?;
    let db = &ctx.metrics.db;
    // Ready (searchable) from here on: the number users feel is saved -> stored.
    let since_save = db
        .time(
            "store_embedding",
            bookmarks::store_embedding(
                &ctx.db,
                &ctx.space,
                job.user_id,
                job.bookmark_id,
                &passages,
            ),
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
    ctx.bookmark_changed(job.user_id, job.bookmark_id).await;
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

/// The page's passages, each with its vector.
pub async fn embed_passages(ctx: &JobContext, text: &str) -> Result<Vec<Passage>, Failure> {
    let splitter = ctx.splitter.clone();
    let owned = text.to_owned();
    let pieces = tokio::task::spawn_blocking(move || splitter.split(&owned))
        .await
        .map_err(|e| Failure::transient("embedding", format!("splitting stopped: {e}")))?
        .map_err(|e| Failure::transient("embedding", format!("{e:#}")))?;
    if pieces.is_empty() {
        return Err(Failure::permanent(
            "nothing_to_embed",
            "the page has no title or text",
        ));
    }
    let texts: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
    let vectors = embeddings_for(ctx, &texts).await?;
    let offset = |chars: usize| i32::try_from(chars).unwrap_or(i32::MAX);
    Ok(pieces
        .into_iter()
        .zip(vectors)
        .map(|(piece, vector)| Passage {
            start_char: offset(piece.chars.start),
            end_char: offset(piece.chars.end),
            vector,
        })
        .collect())
}

/// The vectors of `texts`, in order: those in the shared cache from there, the rest computed in
/// one call (so they share forward passes) and then cached for the configured TTL.
pub async fn embeddings_for(ctx: &JobContext, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
    let keys: Vec<String> = texts
        .iter()
        .map(|t| ctx.keys.embedding(&ctx.space.name, t))
        .collect();
    let mut conn = ctx.redis.clone();
    let cached: Vec<Option<Vec<u8>>> = conn
        .mget(&keys)
        .await
        .inspect_err(|e| ctx.metrics.redis_error("embed_cache", e))
        .unwrap_or_else(|_| vec![None; keys.len()]);
    let dimensions = ctx.embedder.dimensions();
    let mut found: Vec<Option<Vec<f32>>> = cached
        .into_iter()
        .map(|bytes| bytes.and_then(|b| decode_vector(&b, dimensions)))
        .chain(std::iter::repeat(None))
        .take(texts.len())
        .collect();
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| found[i].is_none()).collect();
    let hits = (texts.len() - missing.len()) as u64;
    ctx.metrics
        .embed_cache
        .with_label_values(&["hit"])
        .inc_by(hits);
    ctx.metrics
        .embed_cache
        .with_label_values(&["miss"])
        .inc_by(missing.len() as u64);
    if !missing.is_empty() {
        let computed = ctx
            .embedder
            .embed(missing.iter().map(|&i| texts[i].clone()).collect())
            .await
            .map_err(|e| Failure::transient("embedding", format!("{e:#}")))?;
        if computed.len() != missing.len() {
            return Err(Failure::transient(
                "embedding",
                "the model returned too few vectors",
            ));
        }
        let ttl = ctx.config.ttl.embedding.as_secs().max(1);
        let mut pipe = redis::pipe();
        for (&i, vector) in missing.iter().zip(computed) {
            pipe.set_ex(&keys[i], encode_vector(&vector), ttl).ignore();
            found[i] = Some(vector);
        }
        let written: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = written {
            ctx.metrics.redis_error("embed_cache", &e);
        }
    }
    Ok(found.into_iter().flatten().collect())
}

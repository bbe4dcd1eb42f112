//! AnalyzeJob, the ingest job's last stage: keywords, reading time, language, quality score and
//! tags of an embedded bookmark; stored, then the job is finished.

use fuze_shared::{
    analysis::{self, NewAnalysis},
    config::Config,
    jobs::{QueueName, StageJob, records},
};

use super::{
    Failure,
    job::{Admission, Job},
    runner::{self, Run},
};
use crate::{
    analyze::{self, TagIndex, quality::QualityInputs},
    context::JobContext,
};

/// Key phrases kept per page.
const KEYWORDS: usize = 10;
/// Tags kept per page, and how close (cosine) a tag must be to count.
const MAX_TAGS: usize = 3;
const MIN_TAG_SIMILARITY: f32 = 0.25;

/// Analyses an embedded bookmark; the job's last stage.
pub struct Analyze;

impl Job for Analyze {
    const QUEUE: QueueName = QueueName::Analyze;
    /// The bookmark is already searchable when its analysis fails.
    const FAILURE_FAILS_BOOKMARK: bool = false;
    const LAST_STAGE: bool = true;
    type Payload = StageJob;
    type Permit = ();

    fn concurrency(config: &Config) -> usize {
        config.worker.analyze_concurrency
    }

    fn record(job: &StageJob) -> Option<&StageJob> {
        Some(job)
    }

    async fn admit(_: &JobContext, _: &Run, _: &StageJob) -> Admission<()> {
        Admission::Go(())
    }

    async fn run(ctx: &JobContext, run: &Run, job: StageJob, _: ()) -> Result<(), Failure> {
        analyze_bookmark(ctx, run, job).await
    }
}

async fn analyze_bookmark(ctx: &JobContext, run: &Run, job: StageJob) -> Result<(), Failure> {
    let source = analysis::source(&ctx.db, job.user_id, job.bookmark_id)
        .await?
        .ok_or_else(|| Failure::permanent("bookmark_deleted", "the bookmark was deleted"))?;
    let tags = tag_index(ctx).await?;
    let text = source.text.as_deref().unwrap_or_default();
    let embedding = source.embedding.map(|v| v.to_vec());
    let has_title = source
        .title
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty());
    let has_description = source
        .description
        .as_deref()
        .is_some_and(|d| !d.trim().is_empty());
    let text = text.to_owned();
    // CPU work of a few milliseconds on a long page: keep it off the async threads.
    let computed = tokio::task::spawn_blocking(move || {
        let measures = analyze::measure(&text);
        NewAnalysis {
            keywords: analyze::keywords(&text, measures.language, KEYWORDS),
            tags: embedding
                .map(|e| tags.choose(&e, MAX_TAGS, MIN_TAG_SIMILARITY))
                .unwrap_or_default(),
            word_count: i32::try_from(measures.word_count).unwrap_or(i32::MAX),
            reading_time_s: i32::try_from(measures.reading_time_s).unwrap_or(i32::MAX),
            language: measures.language.map(str::to_owned),
            quality_score: analyze::quality_score(&QualityInputs {
                text: &text,
                word_count: measures.word_count,
                has_title,
                has_description,
                has_language: measures.language.is_some(),
            }),
        }
    })
    .await
    .map_err(|e| Failure::transient("panic", format!("analysis panicked: {e}")))?;
    let stored = analysis::store(&ctx.db, job.user_id, job.bookmark_id, &computed).await?;
    if stored == analysis::Stored::Gone {
        return Err(Failure::permanent(
            "bookmark_deleted",
            "the bookmark was deleted",
        ));
    }
    // The analysis is stored: a lost answer from here on must not run it again.
    let settled = runner::until_written(ctx, "job_settle", || {
        records::succeed(&ctx.db, &job.job_id, &run.ticket)
    })
    .await;
    if settled == records::Settled::NotHeld {
        return Err(Failure::Superseded);
    }
    // A first analysis was never cached (only found analyses are): lists, searches and
    // recommendations show its tags, cached analyses stay. A replaced one may be cached.
    match stored {
        analysis::Stored::Replaced => ctx.analysis_changed(job.user_id, job.bookmark_id).await,
        _ => ctx.bookmark_changed(job.user_id, job.bookmark_id).await,
    }
    ctx.job_changed(&job.job_id).await;
    Ok(())
}

/// The tag vocabulary's vectors, embedded once per worker process on first use.
async fn tag_index(ctx: &JobContext) -> Result<std::sync::Arc<TagIndex>, Failure> {
    ctx.tags
        .get_or_try_init(|| async {
            let vectors = ctx
                .embedder
                .embed(TagIndex::descriptions())
                .await
                .map_err(|e| Failure::transient("embedding", format!("{e:#}")))?;
            Ok(std::sync::Arc::new(TagIndex::new(vectors)))
        })
        .await
        .cloned()
}

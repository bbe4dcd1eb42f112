//! ScrapeJob: fetch the saved page (or reuse a recent scrape of the same URL), store what was
//! extracted, and hand the job to the embed stage.

use std::time::Instant;

use fuze_shared::{
    bookmarks::{self, Scraped},
    config::Config,
    domain::BookmarkUrl,
    jobs::{QueueName, StageJob},
};
use redis::AsyncCommands;

use super::{Failure, job::Job, runner};
use crate::{context::JobContext, scrape::ExtractedPage};

/// Fetches and extracts a saved page.
pub struct Scrape;

impl Job for Scrape {
    const QUEUE: QueueName = QueueName::Scrape;
    type Payload = StageJob;

    fn concurrency(config: &Config) -> usize {
        config.worker.scrape_concurrency
    }

    fn record(job: &StageJob) -> Option<&StageJob> {
        Some(job)
    }

    async fn run(ctx: &JobContext, job: StageJob) -> Result<(), Failure> {
        scrape(ctx, job).await
    }
}

async fn scrape(ctx: &JobContext, job: StageJob) -> Result<(), Failure> {
    let url = bookmarks::url_of(&ctx.db, job.user_id, job.bookmark_id)
        .await?
        .ok_or_else(|| Failure::permanent("bookmark_deleted", "the bookmark was deleted"))?;
    // Stored URLs were validated on save; parse again to get the hash and a `Url`.
    let url = BookmarkUrl::parse(&url, usize::MAX)
        .map_err(|e| Failure::permanent("invalid_url", e.to_string()))?;
    let page = match cached_page(ctx, &url).await {
        Some(page) => page.bounded(ctx.scraper.field_limits()),
        None => {
            let page = fetch_and_extract(ctx, &url)
                .await?
                .bounded(ctx.scraper.field_limits());
            cache_page(ctx, &url, &page).await;
            page
        }
    };
    let scraped = Scraped {
        title: page.title.as_deref(),
        description: page.description.as_deref(),
        canonical_url: page.canonical_url.as_deref(),
        text: &page.text,
    };
    let stored = ctx
        .metrics
        .db
        .time(
            "store_scraped",
            bookmarks::store_scraped(&ctx.db, job.user_id, job.bookmark_id, &scraped),
        )
        .await?;
    if !stored {
        return Err(Failure::permanent(
            "bookmark_deleted",
            "the bookmark was deleted",
        ));
    }
    ctx.bookmarks_changed(job.user_id).await;
    hand_to_embed(ctx, &job).await
}

async fn fetch_and_extract(ctx: &JobContext, url: &BookmarkUrl) -> Result<ExtractedPage, Failure> {
    let started = Instant::now();
    let fetched = ctx.scraper.fetch(url.as_url()).await;
    ctx.metrics
        .scrape_duration
        .observe(started.elapsed().as_secs_f64());
    let class = fetched.as_ref().map_or_else(|e| e.class(), |_| "ok");
    ctx.metrics.scrape_fetches.with_label_values(&[class]).inc();
    let fetched = fetched?;
    ctx.metrics
        .scrape_response_bytes
        .observe(fetched.bytes as f64);
    // Extraction of a large page is CPU work: keep it off the async threads.
    tokio::task::spawn_blocking(move || fetched.extract())
        .await
        .map_err(|e| Failure::transient("extract", e.to_string()))
}

async fn cached_page(ctx: &JobContext, url: &BookmarkUrl) -> Option<ExtractedPage> {
    let mut conn = ctx.redis.clone();
    let raw: Option<Vec<u8>> = conn
        .get(ctx.keys.scraped(&url.hash_hex()))
        .await
        .inspect_err(|e| ctx.metrics.redis_error("scrape_cache", e))
        .ok()?;
    serde_json::from_slice(&raw?).ok()
}

async fn cache_page(ctx: &JobContext, url: &BookmarkUrl, page: &ExtractedPage) {
    let Ok(bytes) = serde_json::to_vec(page) else {
        return;
    };
    let mut conn = ctx.redis.clone();
    let ttl = ctx.config.ttl.scraped.as_secs().max(1);
    let written: redis::RedisResult<()> = conn
        .set_ex(ctx.keys.scraped(&url.hash_hex()), bytes, ttl)
        .await;
    if let Err(e) = written {
        ctx.metrics.redis_error("scrape_cache", &e);
    }
}

/// Hands the job to the embed stage (its page is cached by then, so a retry is cheap).
async fn hand_to_embed(ctx: &JobContext, job: &StageJob) -> Result<(), Failure> {
    let next = StageJob {
        job_id: job.job_id.clone(),
        user_id: job.user_id,
        bookmark_id: job.bookmark_id,
    };
    runner::hand_off(ctx, &job.job_id, QueueName::Embed, &next).await
}

//! ScrapeJob: fetch the saved page (or reuse a recent scrape of the same URL), store what was
//! extracted, and hand the job to the embed stage.
//!
//! A refresh (`StageJob::refresh`) always asks the site, with the validators of the last fetch
//! (`If-None-Match`, `If-Modified-Since`): a 304, or a page whose title, description and text are
//! as stored, ends the job here (nothing to embed again); a changed page goes on as a save does.
//! A refresh that fails leaves the bookmark's last good content as it was (`runner`).
//!
//! Before it is claimed, a scrape waits for its host's turn (`politeness`): the host's in-flight
//! cap, the interval between request starts, a `Retry-After` it sent, its breaker, and its
//! robots.txt (fetched once per origin and day with a turn of its own).

use std::time::{Duration, Instant};

use fuze_shared::{
    bookmarks::{self, Refreshed, Scraped},
    config::Config,
    domain::BookmarkUrl,
    jobs::{Owner, QueueName, StageJob, records},
};
use redis::AsyncCommands;

use super::{
    Failure,
    job::{Admission, Job},
    runner::{self, Run},
};
use crate::{
    context::JobContext,
    politeness::{Lease, Turn, robots::Verdict},
    scrape::{ExtractedPage, Refetched, ScrapeError, Validators},
};

/// Fetches and extracts a saved page.
pub struct Scrape;

/// What admission found out about a scrape.
pub enum Ready {
    /// The bookmark is gone.
    Gone,
    /// A recent scrape of the same URL (by any user) is cached: no request needed.
    Cached(BookmarkUrl, ExtractedPage),
    /// The host's turn, taken: fetch now.
    Fetch(BookmarkUrl, Lease),
    /// robots.txt forbids this page.
    Disallowed,
    /// The site's robots.txt could not be read; try later.
    RobotsUnreachable,
    /// The stored URL no longer parses.
    Invalid(String),
}

/// How long a scrape waits when the database or Redis could not answer its admission.
const ADMISSION_RETRY: Duration = Duration::from_secs(1);

impl Job for Scrape {
    const QUEUE: QueueName = QueueName::Scrape;
    type Payload = StageJob;
    type Permit = Ready;

    fn concurrency(config: &Config) -> usize {
        config.worker.scrape_concurrency
    }

    fn record(job: &StageJob) -> Option<&StageJob> {
        Some(job)
    }

    async fn admit(ctx: &JobContext, run: &Run, job: &StageJob) -> Admission<Ready> {
        match admit(ctx, run.promised, job).await {
            Ok(admission) => admission,
            Err(e) => {
                tracing::warn!(job = job.job_id, error = %format!("{e:#}"), "scrape admission failed; waiting");
                Admission::Wait {
                    wait: ADMISSION_RETRY,
                    reason: "unavailable",
                }
            }
        }
    }

    async fn run(ctx: &JobContext, run: &Run, job: StageJob, ready: Ready) -> Result<(), Failure> {
        let page = match ready {
            Ready::Gone => {
                return Err(Failure::permanent(
                    "bookmark_deleted",
                    "the bookmark was deleted",
                ));
            }
            Ready::Invalid(message) => return Err(Failure::permanent("invalid_url", message)),
            Ready::Disallowed => {
                return Err(Failure::permanent(
                    "robots_disallowed",
                    "the site's robots.txt does not allow fetching this page",
                ));
            }
            Ready::RobotsUnreachable => {
                return Err(Failure::transient(
                    "robots_unavailable",
                    "the site's robots.txt could not be read",
                ));
            }
            Ready::Cached(_, page) => (
                page.bounded(ctx.scraper.field_limits()),
                Validators::default(),
            ),
            Ready::Fetch(url, lease) => {
                let known = if job.refresh {
                    known_validators(ctx, &job).await?
                } else {
                    Validators::default()
                };
                let fetched = fetch_and_extract(ctx, &url, &known).await;
                // Noted before the turn is given back: a request waiting for this host must see
                // the breaker this failure opens, not slip in between.
                let settled = settle_host(ctx, &url, fetched).await;
                lease.release().await;
                let Some((page, validators)) = settled? else {
                    // 304: the page is as it was.
                    return finish_unchanged(ctx, run, &job).await;
                };
                let page = page.bounded(ctx.scraper.field_limits());
                cache_page(ctx, &url, &page).await;
                (page, validators)
            }
        };
        let (page, validators) = page;
        let scraped = Scraped {
            title: page.title.as_deref(),
            description: page.description.as_deref(),
            canonical_url: page.canonical_url.as_deref(),
            text: &page.text,
            etag: validators.etag.as_deref(),
            last_modified: validators.last_modified.as_deref(),
        };
        let stored = if job.refresh {
            let refreshed = ctx
                .metrics
                .db
                .time(
                    "store_scraped",
                    bookmarks::store_refreshed(&ctx.db, job.user_id, job.bookmark_id, &scraped),
                )
                .await?;
            match refreshed {
                Refreshed::Unchanged => return finish_unchanged(ctx, run, &job).await,
                Refreshed::Changed => true,
                Refreshed::Gone => false,
            }
        } else {
            ctx.metrics
                .db
                .time(
                    "store_scraped",
                    bookmarks::store_scraped(&ctx.db, job.user_id, job.bookmark_id, &scraped),
                )
                .await?
        };
        if !stored {
            return Err(Failure::permanent(
                "bookmark_deleted",
                "the bookmark was deleted",
            ));
        }
        ctx.bookmark_changed(job.user_id, job.bookmark_id).await;
        // The page is cached by now, so a retry of the hand-over is cheap.
        runner::hand_off(
            ctx,
            run,
            &job.job_id,
            Owner::User(job.user_id),
            QueueName::Embed,
            &job,
        )
        .await
    }
}

/// The scrape's turn: a cached page, or its host's turn and robots.txt's blessing. `promised`:
/// the start its host promised this run when it last turned it away.
async fn admit(
    ctx: &JobContext,
    promised: Option<u64>,
    job: &StageJob,
) -> anyhow::Result<Admission<Ready>> {
    let Some(raw) = bookmarks::url_of(&ctx.db, job.user_id, job.bookmark_id).await? else {
        return Ok(Admission::Go(Ready::Gone));
    };
    // Stored URLs were validated on save; parse again to get the hash and a `Url`.
    let url = match BookmarkUrl::parse(&raw, usize::MAX) {
        Ok(url) => url,
        Err(e) => return Ok(Admission::Go(Ready::Invalid(e.to_string()))),
    };
    // A refresh asks the site itself.
    if !job.refresh
        && let Some(page) = cached_page(ctx, &url).await
    {
        return Ok(Admission::Go(Ready::Cached(url, page)));
    }
    let host = host_of(&url);
    let known = if ctx.config.politeness.respect_robots {
        ctx.robots.cached(url.as_url()).await?
    } else {
        Some(Verdict::Allowed)
    };
    let hold = ctx.config.scraper.total_timeout + ROBOTS_WAIT;
    if known.is_none() && !ctx.robots.claim_fetch(url.as_url(), hold).await? {
        // Another run is fetching this site's robots.txt: wait for its answer.
        return Ok(Admission::Wait {
            wait: ROBOTS_WAIT,
            reason: "robots",
        });
    }
    let mut lease = match turn(ctx, &host, promised).await? {
        Ok(lease) => lease,
        Err(wait) => {
            if known.is_none() {
                ctx.robots.release_fetch(url.as_url()).await;
            }
            return Ok(wait);
        }
    };
    if ctx.config.politeness.respect_robots {
        let verdict = match known {
            Some(verdict) => verdict,
            None => {
                // Fetching robots.txt was this turn's request; the page needs a turn of its own.
                let verdict = ctx.robots.fetch(&ctx.scraper, url.as_url()).await?;
                lease.release().await;
                lease = match turn(ctx, &host, None).await? {
                    Ok(lease) => lease,
                    Err(wait) => return Ok(wait),
                };
                verdict
            }
        };
        match verdict {
            Verdict::Allowed => {}
            Verdict::Disallowed => return Ok(Admission::Go(Ready::Disallowed)),
            Verdict::Unreachable => return Ok(Admission::Go(Ready::RobotsUnreachable)),
        }
    }
    Ok(Admission::Go(Ready::Fetch(url, lease)))
}

/// How long a scrape waits while another run fetches its site's robots.txt.
const ROBOTS_WAIT: Duration = Duration::from_millis(200);

/// The host's turn, or the admission that says how long to wait for it.
async fn turn(
    ctx: &JobContext,
    host: &str,
    promised: Option<u64>,
) -> redis::RedisResult<Result<Lease, Admission<Ready>>> {
    Ok(match ctx.politeness.acquire(host, promised).await? {
        Turn::Granted(lease) => Ok(lease),
        Turn::Wait { wait, reason } => {
            ctx.metrics.scheduling.host_wait(reason.as_str(), wait);
            Err(Admission::Wait {
                wait,
                reason: reason.as_str(),
            })
        }
    })
}

/// The host part politeness is kept per (`127.0.0.2` and `127.0.0.3` are different hosts; the
/// port is not part of it).
fn host_of(url: &BookmarkUrl) -> String {
    url.as_url()
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A refresh found the page as it was: the job is done, nothing to embed again.
async fn finish_unchanged(ctx: &JobContext, run: &Run, job: &StageJob) -> Result<(), Failure> {
    let settled = runner::until_written(ctx, "job_settle", || {
        records::succeed(&ctx.db, &job.job_id, &run.ticket)
    })
    .await;
    if settled == records::Settled::NotHeld {
        return Err(Failure::Superseded);
    }
    ctx.job_changed(&job.job_id).await;
    Ok(())
}

/// The validators of the page's last fetch, sent back by a refresh.
async fn known_validators(ctx: &JobContext, job: &StageJob) -> Result<Validators, Failure> {
    let stored = bookmarks::fetch_validators(&ctx.db, job.user_id, job.bookmark_id).await?;
    let (etag, last_modified) = stored.unwrap_or_default();
    Ok(Validators {
        etag,
        last_modified,
    })
}

/// Tells the host's politeness state how the fetch went, and turns the outcome into the job's.
async fn settle_host<T>(
    ctx: &JobContext,
    url: &BookmarkUrl,
    fetched: Result<T, ScrapeError>,
) -> Result<T, Failure> {
    let host = host_of(url);
    let politeness = &ctx.politeness;
    let noted = match &fetched {
        Err(ScrapeError::SlowDown { wait, .. }) => politeness.hold(&host, *wait).await.map(drop),
        Err(e) if e.is_host_failure() => match politeness.failed(&host).await {
            Ok(true) => {
                ctx.metrics.scheduling.breakers_opened.inc();
                tracing::warn!(host, "host failed repeatedly; its breaker is open");
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
        _ => {
            politeness.answered(&host).await;
            Ok(())
        }
    };
    if let Err(e) = noted {
        ctx.metrics.redis_error("politeness", &e);
    }
    Ok(fetched?)
}

/// Fetches (conditionally, when `known` has validators) and extracts; `None` for a 304.
async fn fetch_and_extract(
    ctx: &JobContext,
    url: &BookmarkUrl,
    known: &Validators,
) -> Result<Option<(ExtractedPage, Validators)>, ScrapeError> {
    let started = Instant::now();
    let fetched = ctx.scraper.fetch_if_changed(url.as_url(), known).await;
    ctx.metrics
        .scrape_duration
        .observe(started.elapsed().as_secs_f64());
    let class = match &fetched {
        Ok(Refetched::Page(_)) => "ok",
        Ok(Refetched::NotModified) => "not_modified",
        Err(e) => e.class(),
    };
    ctx.metrics.scrape_fetches.with_label_values(&[class]).inc();
    let Refetched::Page(fetched) = fetched? else {
        return Ok(None);
    };
    ctx.metrics
        .scrape_response_bytes
        .observe(fetched.bytes as f64);
    let validators = fetched.validators.clone();
    // Extraction of a large page is CPU work: keep it off the async threads.
    let page = tokio::task::spawn_blocking(move || fetched.extract())
        .await
        .map_err(|e| ScrapeError::Network(format!("extraction panicked: {e}")))?;
    Ok(Some((page, validators)))
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

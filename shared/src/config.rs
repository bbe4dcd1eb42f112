//! Configuration from the environment (12-factor), with defaults that run locally out of the box.
//! Every limit lives here so it is explicit and overridable; the README lists each variable.

use std::{num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, anyhow};

use crate::{
    allow_internal::InternalAllowList,
    cache::{CacheConfig, CacheType},
};

/// All settings of every Fuze process; each process reads the parts it needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub redis_url: String,
    /// Prefix of every Redis key and channel Fuze writes (tests use one per test).
    pub redis_prefix: String,
    pub api: ApiConfig,
    pub db: DbConfig,
    pub jobs: JobsConfig,
    pub worker: WorkerConfig,
    pub scraper: ScraperConfig,
    pub politeness: PolitenessConfig,
    pub quotas: QuotaConfig,
    pub imports: ImportConfig,
    pub embed: EmbedderConfig,
    pub ttl: TtlConfig,
    /// The layered read cache: per-type TTLs, L1 bounds, L2 compression (the key prefix is
    /// `redis_prefix`).
    pub cache: CacheConfig,
    pub clock: ClockConfig,
    pub feed: FeedConfig,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    /// Bearer token for `/api/v1/admin/*`; admin endpoints answer 401 while unset.
    pub admin_token: Option<String>,
    pub max_body_bytes: usize,
    pub max_url_len: usize,
    pub max_title_chars: usize,
    pub max_notes_chars: usize,
    pub max_project_name_chars: usize,
    /// Longest project or task description.
    pub max_description_chars: usize,
    pub max_task_title_chars: usize,
    pub page_size_default: u32,
    pub page_size_max: u32,
    /// Longest search query accepted.
    pub max_query_chars: usize,
    /// Most results one search returns.
    pub search_limit_max: u32,
    /// Candidates each of the keyword and semantic lists brings to a hybrid search's fusion.
    pub search_fusion_depth: u32,
    /// Share of the semantic list in the hybrid blend (the keyword list has the rest).
    pub search_semantic_weight: f32,
    /// Concurrent scans (database connections) one search or recommendation splits a user's rows
    /// into; about the database server's cores.
    pub search_scan_parts: NonZeroU32,
    /// How long a search waits for a worker to embed its query before falling back to keywords.
    pub query_embed_timeout: Duration,
    /// Most recommendations per request.
    pub recommend_limit_max: u32,
    /// Repeats of the same submission within this window share one piece of work.
    pub dedup_window: Duration,
    /// How long a verified bearer token is trusted without asking the database (0 disables).
    pub auth_cache_ttl: Duration,
    /// Most tokens remembered per api process.
    pub auth_cache_capacity: usize,
    /// Suggested delay between two polls of a job that is not finished.
    pub job_poll_interval: Duration,
    /// Where the API reference page's assets (the `swagger-ui-dist` package) are; by default
    /// where `scripts/setup.sh` installs them.
    pub docs_assets_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// The planner's price of a random page read, set on every connection. Fuze's working set is
    /// in memory (or on SSD), where random reads cost about what sequential ones do; at
    /// PostgreSQL's default of 4 (spinning disks) it read a large user's rows from the table
    /// rather than from the much smaller search index (docs/SEARCH.md).
    pub random_page_cost: f64,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Real cap on attempts per stage (apalis-redis ignores `max_attempts`).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long the queue's data of a run that failed its job stays in Redis (for inspection);
    /// every other run's data goes as soon as it ends.
    pub failed_retention: Duration,
    /// A job recorded as running for this long is taken back by the reconciler (its worker died
    /// or lost the database while settling it); well above the job timeout.
    pub running_stale_after: Duration,
    /// Share of turns in which bulk work goes first when interactive work waits too (percent;
    /// 0: bulk runs only when no interactive work waits).
    pub bulk_share_percent: u32,
}

impl JobsConfig {
    /// Every n-th turn goes to bulk first (0: never first).
    pub fn bulk_every(&self) -> u32 {
        match self.bulk_share_percent {
            0 => 0,
            p => (100 / p.min(100)).max(1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub metrics_host: String,
    pub metrics_port: u16,
    pub clock_metrics_port: u16,
    pub scrape_concurrency: usize,
    pub embed_concurrency: usize,
    pub analyze_concurrency: usize,
    /// Safety-net fetch interval; pushes also wake workers through pub/sub.
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent for `heartbeat_interval * missed_heartbeats` loses its jobs to the others.
    pub missed_heartbeats: usize,
    pub job_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Bookmarks embedded again per reindex run (each run then hands on to the next).
    pub reindex_batch: u32,
    /// How often a worker counts stale vectors (the gauge) and starts a reindex if none runs.
    pub reindex_check_interval: Duration,
    /// A reindex pass silent this long is taken over from its last position.
    pub reindex_stall: Duration,
}

/// Limits for one fetch. The defaults suit the production worker; tests shrink them.
#[derive(Debug, Clone)]
pub struct ScraperConfig {
    /// TCP (and TLS) connect limit per hop.
    pub connect_timeout: Duration,
    /// Limit for the whole fetch: every redirect hop plus reading the body.
    pub total_timeout: Duration,
    /// Redirects followed before giving up with `TooManyRedirects`.
    pub max_redirects: usize,
    /// Largest body accepted, counted after content decoding (so gzip bombs stop too).
    pub max_body_bytes: usize,
    /// Internal ranges and host names the operator lets the scraper reach (intranet pages, test
    /// page servers); nothing else opens loopback or private addresses. Empty by default.
    pub allow_internal: InternalAllowList,
    pub user_agent: String,
    /// Longest scraped title, description and canonical URL kept (cut at a character boundary):
    /// they are cached in every page of the user's list.
    pub max_title_chars: usize,
    pub max_description_chars: usize,
    pub max_canonical_chars: usize,
}

impl Default for ScraperConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_redirects: 5,
            max_body_bytes: 5 * 1024 * 1024,
            allow_internal: InternalAllowList::default(),
            user_agent: "FuzeBot/0.1 (+bookmark fetcher)".to_owned(),
            max_title_chars: 1_000,
            max_description_chars: 2_000,
            max_canonical_chars: 2_048,
        }
    }
}

/// How the scraper treats each host, across all worker processes.
#[derive(Debug, Clone)]
pub struct PolitenessConfig {
    /// Most requests in flight to one host (0 = no cap).
    pub host_concurrency: u32,
    /// Least time between two request starts to one host.
    pub host_interval: Duration,
    /// Failures in a row (timeouts, network errors, 5xx) that open a host's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps a host's jobs waiting.
    pub breaker_open: Duration,
    /// Longest `Retry-After` honoured; longer ones are cut to this.
    pub max_retry_after: Duration,
    /// Whether robots.txt is fetched and obeyed.
    pub respect_robots: bool,
    /// How long a fetched robots.txt is reused.
    pub robots_ttl: Duration,
}

/// Per-user limits at the api (0 turns each off).
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    pub writes: RateLimit,
    pub searches: RateLimit,
    pub recommendations: RateLimit,
    /// Most jobs a user may have queued and not yet started.
    pub max_pending_jobs: u32,
    /// Most database-heavy requests (searches, recommendations) of one user at once, per api
    /// process, so one user cannot take the whole pool.
    pub user_db_concurrency: u32,
    /// How long such a request waits for its turn before it is refused (429).
    pub user_db_wait: Duration,
}

/// Bulk imports: upload limits and how fast their crawls are fed to the bulk lane.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Largest import file (its own limit, apart from the JSON body limit).
    pub max_bytes: usize,
    /// Most entries one file may hold.
    pub max_entries: u32,
    /// Entries written to the database per statement while staging.
    pub stage_batch: usize,
    /// Most crawl jobs of one import queued or running at once; the feeder tops the window up
    /// as they finish, so pausing or cancelling an import has at most this many to take back.
    pub crawl_window: u32,
    /// Caps on an imported entry's tags.
    pub max_tags: usize,
    pub max_tag_chars: usize,
}

/// A token bucket: `per_second` tokens added, at most `burst` kept (0 per second = no limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

/// Settings for the embedder: the model folder and per-pass limits.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// Directory holding `config.json`, `model.safetensors` and `tokenizer.json`.
    pub model_dir: PathBuf,
    /// Truncation in word pieces, including `[CLS]` and `[SEP]`.
    pub max_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch_texts: usize,
    /// Most padded tokens (texts x longest text) in one forward pass.
    pub batch_token_budget: usize,
    /// Inputs are cut to this many chars before tokenizing, so huge pages cannot stall the tokenizer.
    pub max_text_chars: usize,
    /// Which forward pass computes the vectors.
    pub engine: EmbedEngine,
    /// How the Fuze engine stores its dense weights.
    pub weights: EmbedWeights,
    /// Word pieces two consecutive passages of a page share, so a sentence cut by one window is
    /// whole in the next.
    pub passage_overlap: usize,
    /// Most passages embedded per page (each costs one window's forward pass).
    pub max_passages: usize,
}

/// The BERT forward pass the worker runs; both give the same vectors up to float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbedEngine {
    /// Fuze's pass where the CPU has AVX-512 (its kernels' instruction set), candle's
    /// elsewhere: the worker decides when it loads the model.
    #[default]
    Auto,
    /// Fuze's own pass: packed batches without padding, fused projections, SIMD row kernels.
    Fuze,
    /// candle-transformers' `BertModel` on padded batches, kept for comparison.
    Stock,
}

impl FromStr for EmbedEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "fuze" => Ok(Self::Fuze),
            "stock" => Ok(Self::Stock),
            other => Err(format!(
                "unknown embedding engine {other:?} (expected auto, fuze or stock)"
            )),
        }
    }
}

impl EmbedEngine {
    /// The name `FUZE_EMBED_ENGINE` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Fuze => "fuze",
            Self::Stock => "stock",
        }
    }
}

/// Number format of the Fuze engine's dense weights (activations stay f32 except as bf16
/// operands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbedWeights {
    /// `bf16` on CPUs with AVX512-BF16 (1.7x the dense throughput of f16 on an AMD Zen 4),
    /// `f16` elsewhere: the worker decides when it loads the model.
    #[default]
    Auto,
    /// Half precision: a short text's pass reads half the bytes; vectors stay within cosine
    /// 0.9999996 of the reference on every fixture row (docs/PERFORMANCE.md).
    F16,
    /// Single precision, as the checkpoint stores them.
    F32,
    /// bfloat16 weights times bfloat16-rounded inputs, summed in f32: on CPUs with AVX512-BF16
    /// one instruction does two multiply-adds. Less exact than f16: within cosine 0.99998 of the
    /// reference on every fixture row, where 0.9999 is required (docs/PERFORMANCE.md).
    Bf16,
}

impl FromStr for EmbedWeights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f16" => Ok(Self::F16),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown weight format {other:?} (expected auto, f16, f32 or bf16)"
            )),
        }
    }
}

impl EmbedWeights {
    /// The name `FUZE_EMBED_WEIGHTS` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::F16 => "f16",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl EmbedderConfig {
    /// The model's stable name (its folder's name), part of embedding cache keys. The api, which
    /// never loads the model, derives the same name from the same setting.
    pub fn model_id(&self) -> String {
        let dir = match self.model_dir.file_name() {
            Some(_) => self.model_dir.clone(),
            None => self
                .model_dir
                .canonicalize()
                .unwrap_or_else(|_| self.model_dir.clone()),
        };
        dir.file_name()
            .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned())
    }

    /// How a page becomes vectors, as it goes into the embedding space's name: the window and
    /// the overlap decide which text each vector stands for.
    pub fn passage_scheme(&self) -> String {
        format!("passages-w{}-o{}", self.max_tokens, self.passage_overlap)
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            max_tokens: 256,
            // Packed passes cost real tokens, so more texts per pass only add work per pass; 128
            // short texts (~1,900 tokens) ran ~10 % faster than 32 (docs/PERFORMANCE.md).
            max_batch_texts: 128,
            batch_token_budget: 2_048,
            max_text_chars: 20_000,
            engine: EmbedEngine::default(),
            weights: EmbedWeights::default(),
            passage_overlap: 32,
            max_passages: 16,
        }
    }
}

/// The users' live event streams (`GET /api/v1/events`).
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// About how many recent events of a user are kept for reconnects.
    pub retain_events: u32,
    /// A user's kept events go this long after their last one.
    pub retain_for: Duration,
    /// A comment line sent on an idle stream this often, so proxies keep it open.
    pub heartbeat: Duration,
    /// Most event streams one user may hold open at once (across api instances).
    pub max_streams_per_user: u32,
    /// Events buffered per open stream before it falls back to reading the user's kept events.
    pub stream_buffer: usize,
    /// An import's progress is sent at most this often (its end always is).
    pub import_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ClockConfig {
    /// When the clock looks for jobs whose queue task was lost (six-field cron, with seconds).
    pub reconcile_schedule: String,
    /// A queued job is only checked once it has waited this long.
    pub stale_after: Duration,
    /// When the clock warms the caches of the most active users (six-field cron).
    pub warm_schedule: String,
    /// How many of the most recently seen users a scheduled or admin warm-up covers.
    pub warm_max_users: u32,
    /// Users seen within this window count as active.
    pub warm_active_within: Duration,
    /// A user's session warm-up runs at most once per this window (page reloads do not pile up).
    pub warm_session_cooldown: Duration,
}

#[derive(Debug, Clone)]
pub struct TtlConfig {
    pub scraped: Duration,
    pub embedding: Duration,
}

/// Every environment variable the configuration reads, in the order it reads them (found by
/// reading a configuration from a source that records the names asked for, so the list cannot
/// drift from [`Config::from_lookup`]).
pub fn setting_names() -> Vec<String> {
    let asked = std::cell::RefCell::new(Vec::new());
    let _ = Config::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    });
    let mut names = asked.into_inner();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The settings as a command's `--help` lists them.
pub fn settings_help() -> String {
    let mut text = String::from(
        "Settings: environment variables, also read from a .env file in the working directory\n\
         (defaults and meanings in the README's configuration table):\n",
    );
    let mut line = String::from(" ");
    for name in setting_names() {
        if line.len() + name.len() + 1 > 100 {
            text.push_str(&line);
            text.push('\n');
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(&name);
    }
    text.push_str(&line);
    text
}

impl Config {
    /// Reads `.env` if present, then the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let env = Env(&get);
        let redis_prefix = env.string("FUZE_REDIS_PREFIX", "fuze");
        Ok(Self {
            database_url: env.string("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fuze"),
            redis_url: env.string("REDIS_URL", "redis://127.0.0.1:6379"),
            cache: cache_config(&env, &redis_prefix)?,
            redis_prefix,
            api: ApiConfig {
                host: env.string("FUZE_API_HOST", "127.0.0.1"),
                port: env.parse("FUZE_API_PORT", 8080)?,
                workers: env.parse("FUZE_API_WORKERS", 2)?,
                admin_token: get("FUZE_ADMIN_TOKEN").filter(|t| !t.is_empty()),
                max_body_bytes: env.parse("FUZE_MAX_BODY_BYTES", 64 * 1024)?,
                max_url_len: env.parse("FUZE_MAX_URL_LENGTH", 2048)?,
                max_title_chars: env.parse("FUZE_MAX_TITLE_CHARS", 500)?,
                max_notes_chars: env.parse("FUZE_MAX_NOTES_CHARS", 10_000)?,
                max_project_name_chars: env.parse("FUZE_MAX_PROJECT_NAME_CHARS", 200)?,
                max_description_chars: env.parse("FUZE_MAX_DESCRIPTION_CHARS", 5_000)?,
                max_task_title_chars: env.parse("FUZE_MAX_TASK_TITLE_CHARS", 500)?,
                page_size_default: env.parse("FUZE_PAGE_SIZE_DEFAULT", 20)?,
                page_size_max: env.parse("FUZE_PAGE_SIZE_MAX", 100)?,
                job_poll_interval: env.millis("FUZE_JOB_POLL_INTERVAL_MS", 500)?,
                docs_assets_dir: get("FUZE_DOCS_ASSETS_DIR")
                    .filter(|d| !d.is_empty())
                    .map(Into::into),
                max_query_chars: env.parse("FUZE_MAX_QUERY_CHARS", 500)?,
                search_limit_max: env.parse("FUZE_SEARCH_LIMIT_MAX", 50)?,
                search_fusion_depth: env.parse("FUZE_SEARCH_FUSION_DEPTH", 50)?,
                search_semantic_weight: env.parse("FUZE_SEARCH_SEMANTIC_WEIGHT", 0.8)?,
                search_scan_parts: env
                    .parse("FUZE_SEARCH_SCAN_PARTS", NonZeroU32::MIN.saturating_add(1))?,
                query_embed_timeout: env.millis("FUZE_QUERY_EMBED_TIMEOUT_MS", 500)?,
                recommend_limit_max: env.parse("FUZE_RECOMMEND_LIMIT_MAX", 50)?,
                dedup_window: env.millis("FUZE_DEDUP_WINDOW_MS", 2_000)?,
                auth_cache_ttl: env.secs("FUZE_AUTH_CACHE_TTL_S", 60)?,
                auth_cache_capacity: env.parse("FUZE_AUTH_CACHE_CAPACITY", 100_000)?,
            },
            db: DbConfig {
                max_connections: env.parse("FUZE_DB_MAX_CONNECTIONS", 10)?,
                min_connections: env.parse("FUZE_DB_MIN_CONNECTIONS", 1)?,
                acquire_timeout: env.millis("FUZE_DB_ACQUIRE_TIMEOUT_MS", 3_000)?,
                statement_timeout: env.millis("FUZE_DB_STATEMENT_TIMEOUT_MS", 10_000)?,
                random_page_cost: env.parse("FUZE_DB_RANDOM_PAGE_COST", 1.1)?,
            },
            jobs: JobsConfig {
                max_attempts: env.parse("FUZE_JOB_MAX_ATTEMPTS", 5)?,
                backoff_base: env.millis("FUZE_JOB_BACKOFF_BASE_MS", 2_000)?,
                backoff_max: env.millis("FUZE_JOB_BACKOFF_MAX_MS", 300_000)?,
                failed_retention: env.secs("FUZE_JOB_FAILED_RETENTION_S", 86_400)?,
                running_stale_after: env.secs("FUZE_JOB_RUNNING_STALE_AFTER_S", 300)?,
                bulk_share_percent: env.parse("FUZE_BULK_SHARE_PERCENT", 10)?,
            },
            worker: WorkerConfig {
                metrics_host: env.string("FUZE_WORKER_METRICS_HOST", "127.0.0.1"),
                metrics_port: env.parse("FUZE_WORKER_METRICS_PORT", 9101)?,
                clock_metrics_port: env.parse("FUZE_CLOCK_METRICS_PORT", 9102)?,
                scrape_concurrency: env.parse("FUZE_SCRAPE_CONCURRENCY", 8)?,
                embed_concurrency: env.parse("FUZE_EMBED_CONCURRENCY", 32)?,
                analyze_concurrency: env.parse("FUZE_ANALYZE_CONCURRENCY", 4)?,
                poll_interval: env.millis("FUZE_WORKER_POLL_INTERVAL_MS", 100)?,
                heartbeat_interval: env.millis("FUZE_WORKER_HEARTBEAT_MS", 2_000)?,
                missed_heartbeats: env.parse("FUZE_WORKER_MISSED_HEARTBEATS", 5)?,
                job_timeout: env.millis("FUZE_JOB_TIMEOUT_MS", 60_000)?,
                shutdown_timeout: env.millis("FUZE_WORKER_SHUTDOWN_TIMEOUT_MS", 20_000)?,
                reindex_batch: env.parse::<u32>("FUZE_REINDEX_BATCH", 16)?.max(1),
                reindex_check_interval: env.millis("FUZE_REINDEX_CHECK_INTERVAL_MS", 30_000)?,
                reindex_stall: env.millis("FUZE_REINDEX_STALL_MS", 600_000)?,
            },
            scraper: {
                let d = ScraperConfig::default();
                ScraperConfig {
                    connect_timeout: env
                        .millis("FUZE_SCRAPE_CONNECT_TIMEOUT_MS", d.connect_timeout)?,
                    total_timeout: env.millis("FUZE_SCRAPE_TIMEOUT_MS", d.total_timeout)?,
                    max_redirects: env.parse("FUZE_SCRAPE_MAX_REDIRECTS", d.max_redirects)?,
                    max_body_bytes: env.parse("FUZE_SCRAPE_MAX_BYTES", d.max_body_bytes)?,
                    allow_internal: env.parse("FUZE_SCRAPE_ALLOW_INTERNAL", d.allow_internal)?,
                    user_agent: env.string("FUZE_SCRAPE_USER_AGENT", &d.user_agent),
                    max_title_chars: env.parse("FUZE_SCRAPE_MAX_TITLE_CHARS", d.max_title_chars)?,
                    max_description_chars: env
                        .parse("FUZE_SCRAPE_MAX_DESCRIPTION_CHARS", d.max_description_chars)?,
                    max_canonical_chars: env
                        .parse("FUZE_SCRAPE_MAX_CANONICAL_CHARS", d.max_canonical_chars)?,
                }
            },
            politeness: PolitenessConfig {
                host_concurrency: env.parse("FUZE_SCRAPE_HOST_CONCURRENCY", 2)?,
                host_interval: env.millis("FUZE_SCRAPE_HOST_INTERVAL_MS", 1_000)?,
                breaker_failures: env.parse("FUZE_SCRAPE_BREAKER_FAILURES", 5)?,
                breaker_open: env.secs("FUZE_SCRAPE_BREAKER_OPEN_S", 60)?,
                max_retry_after: env.secs("FUZE_SCRAPE_MAX_RETRY_AFTER_S", 3_600)?,
                respect_robots: env.parse("FUZE_SCRAPE_RESPECT_ROBOTS", true)?,
                robots_ttl: env.secs("FUZE_SCRAPE_ROBOTS_TTL_S", 86_400)?,
            },
            quotas: QuotaConfig {
                writes: env.rate("FUZE_RATE_WRITES", 10.0, 100)?,
                searches: env.rate("FUZE_RATE_SEARCHES", 5.0, 30)?,
                recommendations: env.rate("FUZE_RATE_RECOMMENDATIONS", 2.0, 10)?,
                max_pending_jobs: env.parse("FUZE_USER_MAX_PENDING_JOBS", 5_000)?,
                user_db_concurrency: env.parse("FUZE_USER_DB_CONCURRENCY", 2)?,
                user_db_wait: env.millis("FUZE_USER_DB_WAIT_MS", 2_000)?,
            },
            imports: ImportConfig {
                max_bytes: env.parse("FUZE_IMPORT_MAX_BYTES", 64 * 1024 * 1024)?,
                max_entries: env.parse("FUZE_IMPORT_MAX_ENTRIES", 100_000)?,
                stage_batch: env.parse::<usize>("FUZE_IMPORT_STAGE_BATCH", 1_000)?.max(1),
                crawl_window: env.parse::<u32>("FUZE_IMPORT_CRAWL_WINDOW", 64)?.max(1),
                max_tags: env.parse("FUZE_IMPORT_MAX_TAGS", 32)?,
                max_tag_chars: env.parse("FUZE_IMPORT_MAX_TAG_CHARS", 64)?,
            },
            embed: {
                let d = EmbedderConfig::default();
                EmbedderConfig {
                    model_dir: env.parse("FUZE_MODEL_DIR", d.model_dir)?,
                    max_tokens: env.parse("FUZE_EMBED_MAX_TOKENS", d.max_tokens)?,
                    max_batch_texts: env.parse("FUZE_EMBED_BATCH_TEXTS", d.max_batch_texts)?,
                    batch_token_budget: env
                        .parse("FUZE_EMBED_TOKEN_BUDGET", d.batch_token_budget)?,
                    max_text_chars: env.parse("FUZE_EMBED_MAX_TEXT_CHARS", d.max_text_chars)?,
                    engine: env.parse("FUZE_EMBED_ENGINE", d.engine)?,
                    weights: env.parse("FUZE_EMBED_WEIGHTS", d.weights)?,
                    passage_overlap: env.parse("FUZE_EMBED_PASSAGE_OVERLAP", d.passage_overlap)?,
                    max_passages: env.parse("FUZE_EMBED_MAX_PASSAGES", d.max_passages)?,
                }
            },
            ttl: TtlConfig {
                scraped: env.secs("FUZE_TTL_SCRAPED_S", 3_600)?,
                embedding: env.secs("FUZE_TTL_EMBEDDING_S", 86_400)?,
            },
            clock: ClockConfig {
                reconcile_schedule: env.string("FUZE_CLOCK_RECONCILE_SCHEDULE", "*/30 * * * * *"),
                stale_after: env.secs("FUZE_CLOCK_STALE_AFTER_S", 60)?,
                warm_schedule: env.string("FUZE_CLOCK_WARM_SCHEDULE", "0 */10 * * * *"),
                warm_max_users: env.parse("FUZE_WARM_MAX_USERS", 100)?,
                warm_active_within: env.secs("FUZE_WARM_ACTIVE_WITHIN_S", 7 * 24 * 3600)?,
                warm_session_cooldown: env.secs("FUZE_WARM_SESSION_COOLDOWN_S", 60)?,
            },
            feed: FeedConfig {
                retain_events: env.parse::<u32>("FUZE_EVENTS_RETAIN", 1_000)?.max(1),
                retain_for: env.secs("FUZE_EVENTS_RETAIN_S", 3_600)?,
                // A zero period would stop every stream's timer from starting.
                heartbeat: env
                    .millis("FUZE_EVENTS_HEARTBEAT_MS", 15_000)?
                    .max(Duration::from_millis(10)),
                max_streams_per_user: env.parse("FUZE_EVENTS_MAX_STREAMS", 8)?,
                stream_buffer: env.parse::<usize>("FUZE_EVENTS_STREAM_BUFFER", 64)?.max(1),
                import_interval: env.millis("FUZE_EVENTS_IMPORT_INTERVAL_MS", 500)?,
            },
        })
    }
}

/// Cache settings: `FUZE_TTL_<TYPE>_S` per cache type, `FUZE_L1_*` bounds, L2 compression.
fn cache_config<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    prefix: &str,
) -> anyhow::Result<CacheConfig> {
    let mut c = CacheConfig::with_prefix(prefix);
    for ty in CacheType::ALL {
        let name = format!("FUZE_TTL_{}_S", ty.env_name());
        let ttl = env.secs(&name, c.ttl(ty).as_secs())?;
        anyhow::ensure!(!ttl.is_zero(), "{name} must be at least 1 second");
        c.set_ttl(ty, ttl);
    }
    c.l1.max_entries = env.parse("FUZE_L1_MAX_ENTRIES", c.l1.max_entries)?;
    c.l1.max_bytes = env.parse("FUZE_L1_MAX_BYTES", c.l1.max_bytes)?;
    c.l1.max_entry_bytes = env.parse("FUZE_L1_MAX_ENTRY_BYTES", c.l1.max_entry_bytes)?;
    c.l1.max_ttl = env.secs("FUZE_L1_MAX_TTL_S", c.l1.max_ttl.as_secs())?;
    c.l2.compress_threshold = env.parse(
        "FUZE_CACHE_COMPRESS_THRESHOLD_BYTES",
        c.l2.compress_threshold,
    )?;
    c.l2.op_timeout = env.millis("FUZE_CACHE_REDIS_TIMEOUT_MS", c.l2.op_timeout)?;
    Ok(c)
}

/// A default for a millisecond variable, given as a number or a `Duration`.
struct Millis(u64);

impl From<u64> for Millis {
    fn from(ms: u64) -> Self {
        Self(ms)
    }
}

impl From<Duration> for Millis {
    fn from(d: Duration) -> Self {
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn string(&self, name: &str, default: &str) -> String {
        (self.0)(name).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match (self.0)(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("invalid value {raw:?} for {name}")),
        }
    }

    fn millis(&self, name: &str, default: impl Into<Millis>) -> anyhow::Result<Duration> {
        let default_ms = default.into().0;
        self.parse(name, default_ms).map(Duration::from_millis)
    }

    fn secs(&self, name: &str, default_s: u64) -> anyhow::Result<Duration> {
        self.parse(name, default_s).map(Duration::from_secs)
    }

    /// `{prefix}_PER_S` and `{prefix}_BURST`.
    fn rate(&self, prefix: &str, per_second: f64, burst: u32) -> anyhow::Result<RateLimit> {
        let per_second: f64 = self.parse(&format!("{prefix}_PER_S"), per_second)?;
        anyhow::ensure!(
            per_second.is_finite() && per_second >= 0.0,
            "{prefix}_PER_S must be a number >= 0"
        );
        Ok(RateLimit {
            per_second,
            burst: self.parse(&format!("{prefix}_BURST"), burst)?.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_limits() {
        let cfg = config_from(&[]).expect("defaults parse");
        assert_eq!(cfg.api.max_body_bytes, 65_536);
        assert_eq!(cfg.api.max_url_len, 2048);
        assert_eq!(cfg.api.max_project_name_chars, 200);
        assert_eq!(cfg.api.max_description_chars, 5_000);
        assert_eq!(cfg.api.max_task_title_chars, 500);
        assert_eq!(cfg.scraper.total_timeout, Duration::from_secs(15));
        assert_eq!(cfg.scraper.max_redirects, 5);
        assert!(cfg.scraper.allow_internal.is_empty());
        assert_eq!(cfg.politeness.host_concurrency, 2);
        assert!(cfg.politeness.respect_robots);
        assert_eq!(cfg.jobs.bulk_every(), 10);
        assert_eq!(cfg.embed.max_tokens, 256);
        assert_eq!(cfg.embed.engine, EmbedEngine::Auto);
        assert_eq!(cfg.api.admin_token, None);
    }

    #[test]
    fn embed_engine_is_chosen_by_name() {
        for (raw, want) in [
            ("auto", EmbedEngine::Auto),
            ("fuze", EmbedEngine::Fuze),
            ("stock", EmbedEngine::Stock),
            (" Stock ", EmbedEngine::Stock),
        ] {
            let cfg = config_from(&[("FUZE_EMBED_ENGINE", raw)]).expect("valid engine");
            assert_eq!(cfg.embed.engine, want, "{raw:?}");
            assert_eq!(want.name().parse::<EmbedEngine>(), Ok(want));
        }
        let err = config_from(&[("FUZE_EMBED_ENGINE", "onnx")]).expect_err("unknown engine");
        assert!(format!("{err:#}").contains("FUZE_EMBED_ENGINE"), "{err:#}");
    }

    #[test]
    fn embed_weights_default_to_auto_and_are_chosen_by_name() {
        assert_eq!(
            config_from(&[]).expect("defaults").embed.weights,
            EmbedWeights::Auto
        );
        for want in [
            EmbedWeights::Auto,
            EmbedWeights::F16,
            EmbedWeights::F32,
            EmbedWeights::Bf16,
        ] {
            let cfg = config_from(&[("FUZE_EMBED_WEIGHTS", want.name())]).expect("valid format");
            assert_eq!(cfg.embed.weights, want);
        }
        let err = config_from(&[("FUZE_EMBED_WEIGHTS", "int8")]).expect_err("unknown format");
        assert!(format!("{err:#}").contains("FUZE_EMBED_WEIGHTS"), "{err:#}");
    }

    #[test]
    fn overrides_apply_and_bad_values_name_the_variable() {
        let cfg = config_from(&[("FUZE_API_PORT", "9000"), ("FUZE_ADMIN_TOKEN", "s3cret")])
            .expect("valid overrides");
        assert_eq!(cfg.api.port, 9000);
        assert_eq!(cfg.api.admin_token.as_deref(), Some("s3cret"));
        let err = config_from(&[("FUZE_MAX_BODY_BYTES", "lots")]).expect_err("not a number");
        assert!(
            format!("{err:#}").contains("FUZE_MAX_BODY_BYTES"),
            "{err:#}"
        );
    }
}

#[cfg(test)]
mod settings_help_tests {
    use super::*;

    #[test]
    fn the_help_names_every_setting_the_configuration_reads() {
        let names = setting_names();
        for expected in [
            "DATABASE_URL",
            "REDIS_URL",
            "FUZE_EVENTS_HEARTBEAT_MS",
            "FUZE_ADMIN_TOKEN",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        let help = settings_help();
        assert!(help.contains("FUZE_MODEL_DIR"));
        assert!(help.lines().all(|l| l.len() <= 120), "{help}");
    }
}

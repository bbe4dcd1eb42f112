//! Builds the API server from config; binding port 0 lets tests learn the real port.

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix_web::{
    App, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    middleware::{Next, from_fn},
    web,
};
use anyhow::Context;
use fuze_shared::{
    cache::{DedupConfig, LayeredCache, RequestDedup},
    config::Config,
    db,
    embedding::EmbeddingSpace,
    jobs::{JobQueues, QueueName},
    keys::Keys,
    metrics::Metrics,
    query_lane::QueryLane,
    redis_conn,
};
use serde_json::json;

use crate::limits::UserLimits;
use crate::token_cache::TokenCache;
use crate::{
    error, events,
    feed::{self, Feeds, Hub},
    routes,
    state::AppState,
};
use fuze_shared::feed::{Feed, OpenStreams};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config).await?;
        // The space the workers write: search compares query vectors with its rows only.
        let space = EmbeddingSpace::current(&db, &config.embed).await?;
        let redis = redis_conn::connection_manager(&config.redis_url).await?;
        let keys = Keys::new(config.redis_prefix.clone());
        let queues = JobQueues::new(redis.clone(), keys.clone(), config.worker.clone());
        let queue_names: Vec<&str> = QueueName::ALL.iter().map(|q| q.as_str()).collect();
        let metrics = Metrics::new(&queue_names)?;
        metrics.db.watch_pool(db.clone())?;
        metrics.export_queue_gauges()?;
        let cache = Arc::new(
            LayeredCache::connect_lazy(&config.redis_url, config.cache.clone())
                .context("invalid REDIS_URL")?,
        );
        tokio::spawn(events::run_subscriber(
            cache.clone(),
            metrics.export_subscriber_up()?,
            config.redis_url.clone(),
            keys.events_channel(),
        ));
        let feeds = Feeds {
            feed: Feed::new(keys.clone(), config.feed.clone()),
            hub: Arc::new(Hub::new(config.feed.stream_buffer)),
            open: OpenStreams::new(
                keys.clone(),
                config.feed.max_streams_per_user,
                // Renewed every heartbeat; a few missed ones before a crashed instance's slot lapses.
                config.feed.heartbeat * 3,
            ),
        };
        tokio::spawn(feed::subscriber::run(
            feeds.hub.clone(),
            config.redis_url.clone(),
            keys.feed_channel(),
        ));
        let listener = TcpListener::bind((config.api.host.as_str(), config.api.port))
            .with_context(|| format!("failed to bind {}:{}", config.api.host, config.api.port))?;
        let port = listener.local_addr()?.port();
        let workers = config.api.workers.max(1);
        let body_limit = config.api.max_body_bytes;
        let dedup_window = config.api.dedup_window;
        let (auth_cache_ttl, auth_cache_capacity) =
            (config.api.auth_cache_ttl, config.api.auth_cache_capacity);
        let lane = QueryLane::start(redis.clone(), &keys, config.redis_url.clone());
        let limits = UserLimits::new(redis.clone(), keys.clone(), config.quotas.clone());
        metrics.scheduling.initialise_limits(crate::limits::ROUTES);
        // The event streams' cap is not one of the limits middleware's; exported from the start too.
        metrics
            .scheduling
            .limited
            .with_label_values(&["events", "too_many_streams"])
            .reset();
        for format in crate::imports::parse::Format::ALL {
            metrics
                .imports
                .started
                .with_label_values(&[format.as_str()]);
        }
        let state = web::Data::new(AppState {
            config,
            db,
            redis,
            keys,
            queues,
            metrics,
            cache,
            lane,
            tokens: TokenCache::new(auth_cache_ttl, auth_cache_capacity),
            recommend_dedup: RequestDedup::new(DedupConfig {
                window: dedup_window,
                ..DedupConfig::default()
            }),
            limits,
            space,
            feeds,
        });

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(body_limit)
                        .error_handler(error::json_error(body_limit)),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::PayloadConfig::default().limit(body_limit))
                .wrap(from_fn(record_metrics))
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn not_found() -> actix_web::HttpResponse {
    actix_web::HttpResponse::NotFound()
        .json(json!({ "error": { "code": "not_found", "message": "no such route" } }))
}

/// Counts every request by route template (never the raw path: ids would explode the label set).
async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        state
            .metrics
            .observe_http(&route, &method, res.status().as_u16(), started.elapsed());
    }
    Ok(res)
}

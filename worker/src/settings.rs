//! Maps the environment config onto the scraper's and the embedder's own settings.

use fuze_shared::config::Config;

use crate::{embed::EmbedderConfig, scrape::ScraperConfig};

pub fn scraper(config: &Config) -> ScraperConfig {
    let s = &config.scraper;
    ScraperConfig {
        connect_timeout: s.connect_timeout,
        total_timeout: s.total_timeout,
        max_redirects: s.max_redirects,
        max_body_bytes: s.max_body_bytes,
        allow_loopback: s.allow_loopback,
        user_agent: s.user_agent.clone(),
    }
}

pub fn embedder(config: &Config) -> EmbedderConfig {
    let e = &config.embed;
    EmbedderConfig {
        model_dir: config.model_dir.clone(),
        max_tokens: e.max_tokens,
        max_batch_texts: e.max_batch_texts,
        batch_token_budget: e.batch_token_budget,
        max_text_chars: e.max_text_chars,
    }
}

//! Operator commands that use exactly the worker's engines:
//! `fuze-worker embed` (JSON lines in, embeddings out) and `fuze-worker extract --url URL`.

use std::io::{BufRead, Read, Write};

use anyhow::Context;
use fuze_shared::config::Config;
use serde::Deserialize;
use serde_json::json;

use crate::{embed::EmbeddingModel, scrape};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedInput {
    text: String,
}

/// Reads `{"text": ...}` lines from stdin and prints `{"embedding": [...]}` lines, in order.
/// Lines are embedded in chunks so a long input streams instead of waiting for EOF.
pub fn embed(config: &Config) -> anyhow::Result<()> {
    let model = EmbeddingModel::load(&config.embed)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut dyn Write| -> anyhow::Result<()> {
        let texts: Vec<&str> = pending.iter().map(String::as_str).collect();
        for vector in model.embed(&texts)? {
            writeln!(out, "{}", json!({ "embedding": vector }))?;
        }
        pending.clear();
        out.flush()?;
        Ok(())
    };
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("failed to read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let input: EmbedInput = serde_json::from_str(&line)
            .with_context(|| format!("line {}: expected {{\"text\": \"...\"}}", n + 1))?;
        pending.push(input.text);
        if pending.len() >= 32 {
            flush(&mut pending, &mut out)?;
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut out)?;
    }
    Ok(())
}

/// Reads an HTML page from stdin and prints what the scraper would extract from it.
pub fn extract(page_url: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(page_url).with_context(|| format!("invalid --url {page_url:?}"))?;
    let mut html = String::new();
    std::io::stdin()
        .read_to_string(&mut html)
        .context("failed to read stdin")?;
    let page = scrape::extract(&html, &url);
    println!("{}", serde_json::to_string(&page)?);
    Ok(())
}

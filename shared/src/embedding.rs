//! What a stored embedding is: its length, the one place it is written in Rust (the migrations'
//! `vector(384)` columns and the search statement's cast say it in SQL), and the embedding space
//! it belongs to.
//!
//! An **embedding space** names everything that decides what a vector means: the model, the
//! exact weights (their sha256) and how a page is cut into passages. Vectors of two spaces must
//! never be compared, so every stored vector carries its space, search reads only the current
//! one, and rows of any other space are stale until the reindex job embeds them again.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::EmbedderConfig;

/// Length of every stored vector (all-MiniLM-L6-v2's output).
pub const DIMENSIONS: usize = 384;

/// Hex digits of the weights' sha256 kept in a space's name: enough to tell weights apart.
const DIGEST_CHARS: usize = 16;

/// The space this process writes and searches: its row in `embedding_spaces` and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSpace {
    pub id: i32,
    pub name: String,
}

impl EmbeddingSpace {
    /// The configured model's space, registered in the database (once per name, by whichever
    /// process starts first). Reads the weights file once to hash it (a fraction of a second).
    pub async fn current(db: &PgPool, cfg: &EmbedderConfig) -> anyhow::Result<Self> {
        let cfg = cfg.clone();
        let name = tokio::task::spawn_blocking(move || space_name(&cfg)).await??;
        let id = register(db, &name).await?;
        Ok(Self { id, name })
    }
}

/// `model@weights-digest/passage-scheme`, e.g.
/// `all-MiniLM-L6-v2@53aa51172d142c89/passages-w256-o32`.
pub fn space_name(cfg: &EmbedderConfig) -> anyhow::Result<String> {
    let weights = cfg.model_dir.join("model.safetensors");
    let digest = file_sha256(&weights)
        .with_context(|| format!("hashing the model weights {}", weights.display()))?;
    Ok(format!(
        "{}@{}/{}",
        cfg.model_id(),
        &digest[..DIGEST_CHARS],
        cfg.passage_scheme()
    ))
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// The id of the space named `name`, created on first use.
pub async fn register(db: &PgPool, name: &str) -> sqlx::Result<i32> {
    // DO UPDATE (a no-op) rather than DO NOTHING, so the existing row's id is returned.
    sqlx::query_scalar(
        "INSERT INTO embedding_spaces (name) VALUES ($1) \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(name)
    .fetch_one(db)
    .await
}

/// Bookmarks whose vectors belong to another space than `space` (to be embedded again).
pub async fn stale_count(db: &PgPool, space: &EmbeddingSpace) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE embedding_model IS DISTINCT FROM $1) FROM saved_content \
         WHERE embedding IS NOT NULL",
    )
    .bind(&space.name)
    .fetch_one(db)
    .await
}

/// How many embedded bookmarks each space name holds (`None`: embedded before spaces existed
/// with no name recorded), most first.
pub async fn bookmarks_per_space(db: &PgPool) -> sqlx::Result<Vec<(Option<String>, i64)>> {
    sqlx::query_as(
        "SELECT embedding_model, count(*) FROM saved_content WHERE embedding IS NOT NULL \
         GROUP BY embedding_model ORDER BY count(*) DESC, embedding_model",
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_space_names_model_weights_and_passage_scheme() {
        let dir = std::env::temp_dir().join(format!("fuze-space-{}", std::process::id()));
        let model_dir = dir.join("tiny-model");
        std::fs::create_dir_all(&model_dir).expect("temp dir");
        std::fs::write(model_dir.join("model.safetensors"), b"weights").expect("write");
        let cfg = EmbedderConfig {
            model_dir: model_dir.clone(),
            ..EmbedderConfig::default()
        };
        let name = space_name(&cfg).expect("space name");
        // sha256("weights") starts with these hex digits.
        let digest = hex::encode(Sha256::digest(b"weights"));
        assert_eq!(
            name,
            format!("tiny-model@{}/passages-w256-o32", &digest[..DIGEST_CHARS])
        );
        let other_overlap = EmbedderConfig {
            passage_overlap: 64,
            ..cfg.clone()
        };
        assert_ne!(space_name(&other_overlap).expect("space name"), name);
        std::fs::write(model_dir.join("model.safetensors"), b"other").expect("write");
        assert_ne!(space_name(&cfg).expect("space name"), name);
        std::fs::remove_dir_all(&dir).expect("clean up");

        let missing = EmbedderConfig {
            model_dir: dir.join("absent"),
            ..EmbedderConfig::default()
        };
        let err = space_name(&missing).expect_err("no weights");
        assert!(format!("{err:#}").contains("model.safetensors"), "{err:#}");
    }
}

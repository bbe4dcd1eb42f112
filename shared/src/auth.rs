//! Bearer tokens: random, shown once, stored only as a sha256 hash.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const TOKEN_PREFIX: &str = "fz_";

/// A new random token (256 bits), the only time it exists in clear.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Tokens are high-entropy, so a plain sha256 is enough (no slow KDF needed) and allows an indexed lookup.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time comparison for the admin token, so timing does not leak its prefix.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("not an email address: {0:?}")]
    InvalidEmail(String),
    #[error("a user with email {0} already exists")]
    Exists(String),
    #[error("failed to insert user")]
    Db(#[from] sqlx::Error),
}

/// Creates a user and returns its id and new token.
pub async fn create_user(pool: &PgPool, email: &str) -> Result<(Uuid, String), CreateUserError> {
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(local, host)| !local.is_empty() && !host.is_empty())
        && !email.contains(|c: char| c.is_whitespace() || c.is_control());
    if !plausible {
        return Err(CreateUserError::InvalidEmail(email));
    }
    let id = Uuid::new_v4();
    let token = generate_token();
    let inserted = sqlx::query("INSERT INTO users (id, email, token_hash) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(&email)
        .bind(hash_token(&token))
        .execute(pool)
        .await;
    match inserted {
        Ok(_) => Ok((id, token)),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(CreateUserError::Exists(email))
        }
        Err(e) => Err(e.into()),
    }
}

/// The user a token belongs to, if any.
pub async fn user_for_token(pool: &PgPool, token: &str) -> sqlx::Result<Option<Uuid>> {
    user_for_token_hash(pool, &hash_token(token)).await
}

/// [`user_for_token`] for a token already hashed with [`hash_token`].
pub async fn user_for_token_hash(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM users WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(pool)
        .await
}

/// Records that the user started a session now.
pub async fn touch_session(pool: &PgPool, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_seen_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(pool)
        .await
        .map(drop)
}

/// Up to `limit` users seen within `within`, most recent first.
pub async fn recently_seen_users(
    pool: &PgPool,
    within: std::time::Duration,
    limit: u32,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM users WHERE last_seen_at > now() - make_interval(secs => $1) \
         ORDER BY last_seen_at DESC LIMIT $2",
    )
    .bind(within.as_secs_f64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() > 40);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn admin_comparison() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }
}

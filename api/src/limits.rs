//! Per-user limits, one middleware inside authentication:
//! - token buckets (GCRA, one Lua step in Redis, so every api instance shares them) on writes,
//!   searches and recommendations: `429 rate_limited` with `Retry-After`;
//! - at most `FUZE_USER_DB_CONCURRENCY` searches and recommendations of one user at once in this
//!   process (each can take several pooled connections): one user cannot take the whole pool.
//!   A request waits up to `FUZE_USER_DB_WAIT_MS` for its turn, then gets `429 rate_limited`.
//!
//! The pending-jobs cap lives with the save (`routes/bookmarks.rs`): it needs the transaction.
//! A limiter that cannot reach Redis lets the request through (and counts the error): an outage
//! of the limiter must not become an outage of the api.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use actix_web::{
    HttpMessage, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web,
};
use dashmap::DashMap;
use fuze_shared::{
    clock::now_ms,
    config::{QuotaConfig, RateLimit},
    keys::Keys,
};
use redis::{Script, aio::ConnectionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::{auth::AuthUser, error::ApiError, state::AppState};

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClass {
    Writes,
    Searches,
    Recommendations,
}

impl LimitClass {
    fn of(req: &ServiceRequest) -> Option<Self> {
        let path = req.path();
        if path.starts_with("/api/v1/admin/") {
            return None;
        }
        if path.starts_with("/api/v1/search") {
            Some(Self::Searches)
        } else if path.starts_with("/api/v1/recommendations") {
            Some(Self::Recommendations)
        } else if req.method() == Method::GET || req.method() == Method::HEAD {
            None
        } else {
            Some(Self::Writes)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Writes => "writes",
            Self::Searches => "searches",
            Self::Recommendations => "recommendations",
        }
    }

    fn rate(self, quotas: &QuotaConfig) -> RateLimit {
        match self {
            Self::Writes => quotas.writes,
            Self::Searches => quotas.searches,
            Self::Recommendations => quotas.recommendations,
        }
    }

    /// Whether requests of this class take the user's database turn.
    fn uses_database_heavily(self) -> bool {
        matches!(self, Self::Searches | Self::Recommendations)
    }
}

/// The routes limits apply to, as metric labels (the first path segment after `/api/v1`;
/// anything else is `other`, so labels stay bounded).
pub const ROUTES: &[&str] = &[
    "bookmarks",
    "projects",
    "search",
    "recommendations",
    "session",
    "jobs",
    "other",
];

fn route_label(path: &str) -> &'static str {
    let segment = path
        .strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    ROUTES
        .iter()
        .find(|r| **r == segment)
        .copied()
        .unwrap_or("other")
}

/// The per-user limits of this api process.
pub struct UserLimits {
    conn: ConnectionManager,
    keys: Keys,
    quotas: QuotaConfig,
    /// One semaphore per user with a request in flight; removed when the last one ends.
    database_turns: DashMap<Uuid, Arc<Semaphore>>,
}

impl UserLimits {
    pub fn new(conn: ConnectionManager, keys: Keys, quotas: QuotaConfig) -> Self {
        Self {
            conn,
            keys,
            quotas,
            database_turns: DashMap::new(),
        }
    }

    /// Takes one token of `class` for `user`; `Err(retry after)` when the bucket is empty.
    pub async fn take_token(
        &self,
        class: LimitClass,
        user: Uuid,
    ) -> redis::RedisResult<Result<(), Duration>> {
        static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));
        let rate = class.rate(&self.quotas);
        if rate.is_off() {
            return Ok(Ok(()));
        }
        let interval_ms = 1000.0 / rate.per_second;
        let tolerance_ms = interval_ms * f64::from(rate.burst.saturating_sub(1));
        let mut conn = self.conn.clone();
        let wait_ms: f64 = GCRA
            .key(self.keys.rate_limit(class.as_str(), user))
            .arg(now_ms())
            .arg(interval_ms)
            .arg(tolerance_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(if wait_ms > 0.0 {
            Err(Duration::from_secs_f64(wait_ms / 1000.0))
        } else {
            Ok(())
        })
    }

    /// Waits for one of the user's database turns; `None` when none came within the wait.
    pub async fn database_turn(&self, user: Uuid) -> Option<DatabaseTurn<'_>> {
        let cap = self.quotas.user_db_concurrency;
        if cap == 0 {
            return Some(DatabaseTurn {
                limits: self,
                user,
                permit: None,
            });
        }
        let semaphore = self
            .database_turns
            .entry(user)
            .or_insert_with(|| Arc::new(Semaphore::new(cap as usize)))
            .clone();
        let acquired =
            tokio::time::timeout(self.quotas.user_db_wait, semaphore.acquire_owned()).await;
        let turn = DatabaseTurn {
            limits: self,
            user,
            permit: acquired.ok().and_then(Result::ok),
        };
        turn.permit.is_some().then_some(turn)
    }
}

/// One database-heavy request's turn; gives it back when dropped.
pub struct DatabaseTurn<'a> {
    limits: &'a UserLimits,
    user: Uuid,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for DatabaseTurn<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Forget the user's semaphore once nobody holds or waits for it (the map stays as large
        // as the users with requests in flight).
        self.limits
            .database_turns
            .remove_if(&self.user, |_, s| Arc::strong_count(s) == 1);
    }
}

/// The middleware: checks the request's limits, then runs it (holding its database turn).
pub async fn per_user<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let (Some(class), Some(user), Some(state)) = (
        LimitClass::of(&req),
        req.extensions().get::<AuthUser>().copied(),
        req.app_data::<web::Data<AppState>>().cloned(),
    ) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let limits = &state.limits;
    let refuse = |req: ServiceRequest, reason: &str, wait: Duration| {
        state
            .metrics
            .scheduling
            .limited
            .with_label_values(&[route_label(req.path()), reason])
            .inc();
        let error = ApiError::Limited {
            code: "rate_limited",
            message: format!(
                "too many {} requests; retry in {} s",
                class.as_str(),
                wait.as_secs_f64().ceil()
            ),
            retry_after_s: wait.as_secs_f64().ceil() as u64,
        };
        Ok(req
            .into_response(error.error_response())
            .map_into_right_body())
    };
    match limits.take_token(class, user.0).await {
        Ok(Ok(())) => {}
        Ok(Err(wait)) => return refuse(req, "rate_limited", wait),
        Err(e) => state.metrics.redis_error("rate_limit", &e),
    }
    if !class.uses_database_heavily() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(turn) = limits.database_turn(user.0).await else {
        return refuse(req, "db_busy", Duration::from_secs(1));
    };
    let res = next.call(req).await;
    drop(turn);
    Ok(res?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/api/v1/bookmarks/123"), "bookmarks");
        assert_eq!(route_label("/api/v1/search"), "search");
        assert_eq!(route_label("/api/v1/anything-else"), "other");
        assert_eq!(route_label("/elsewhere"), "other");
    }
}

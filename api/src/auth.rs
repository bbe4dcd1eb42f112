//! Bearer-token authentication as actix extractors.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Uuid);

/// A request carrying the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then(|| token.to_owned())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("app state missing")))
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = state(req);
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let state = state?;
            fuze_shared::auth::user_for_token(&state.db, &token)
                .await?
                .map(AuthUser)
                .ok_or(ApiError::Unauthorized)
        })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ok = match (bearer(req), state(req)) {
            (Some(token), Ok(state)) => state
                .config
                .api
                .admin_token
                .as_deref()
                .is_some_and(|admin| fuze_shared::auth::tokens_equal(admin, &token)),
            _ => false,
        };
        std::future::ready(if ok { Ok(Admin) } else { Err(ApiError::Unauthorized) })
    }
}

//! Bearer-token authentication. A middleware on `/api/v1` authenticates every request before any
//! body is read (so an unauthenticated caller learns nothing about validation), and stores the
//! result in the request; the extractors below only read it.

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Uuid);

/// A request carrying the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then(|| token.to_owned())
}

/// Admin routes take the admin token; every other route a user token. Refusals are answered here
/// (not raised as errors) so outer middleware still sees and counts the response.
pub async fn authenticate<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match identify(&req).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

async fn identify(req: &ServiceRequest) -> Result<(), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("app state missing")))?;
    let token = bearer(req).ok_or(ApiError::Unauthorized)?;
    if req.path().starts_with("/api/v1/admin/") {
        let admin = state.config.api.admin_token.as_deref();
        if !admin.is_some_and(|admin| fuze_shared::auth::tokens_equal(admin, &token)) {
            return Err(ApiError::Unauthorized);
        }
        req.extensions_mut().insert(Admin);
    } else {
        let hash = fuze_shared::auth::hash_token(&token);
        let user = match state.tokens.get(&hash) {
            Some(user) => user,
            None => {
                let user = fuze_shared::auth::user_for_token_hash(&state.db, &hash)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                state.tokens.insert(hash, user);
                user
            }
        };
        req.extensions_mut().insert(AuthUser(user));
    }
    Ok(())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<AuthUser>()
                .copied()
                .ok_or(ApiError::Unauthorized),
        )
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Admin>()
                .copied()
                .ok_or(ApiError::Unauthorized),
        )
    }
}

//! `/api/v1/bookmarks`: save (and enqueue scraping), list, get, edit, delete.

use super::table::Routes;
use actix_web::{HttpRequest, HttpResponse, web};
use fuze_shared::{
    bookmarks::{self, Bookmark, BookmarkDetail, Changes, ListedBookmark, UpdateError},
    cache::CacheType,
    domain::{BookmarkUrl, JobKind},
    events::{self, Event},
    feed::{BookmarkChange, FeedEvent},
    jobs::{Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id, records},
    views,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    read::cached_json,
    routes::{
        common::{ListQuery, Page, optional_text, present},
        jobs::JobView,
    },
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(save, list, get, edit, remove))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/bookmarks", |m| m.post(save).get(list));
    r.resource("/bookmarks/{id}", |m| m.get(get).patch(edit).delete(remove));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SaveRequest {
    /// An http(s) link; normalized before it is stored.
    url: String,
    title: Option<String>,
    notes: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct SaveResponse {
    bookmark: Bookmark,
    job: Option<JobView>,
}

/// Saves a link. New: 202 with the queued job. Already saved by this user: 200 with the existing
/// bookmark and its latest job. If the job cannot be enqueued the save is undone (503).
#[utoipa::path(
    post, path = "/api/v1/bookmarks", tag = "bookmarks",
    request_body = SaveRequest,
    responses(
        (status = 202, description = "Saved; the scrape job is queued", body = SaveResponse),
        (status = 200, description = "Already saved: the bookmark and its latest job", body = SaveResponse),
        (status = 422, description = "`url_invalid`, `url_too_long`, `url_scheme`, `url_no_host`, `url_credentials`, `invalid_body`, `invalid_field`", body = ErrorBody),
        (status = 429, description = "`too_many_pending_jobs` (or a per-user limit)", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip(state, body), fields(user = %user.0))]
async fn save(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<SaveRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let url = BookmarkUrl::parse(&body.url, limits.max_url_len)
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let title = optional_text("title", body.title.as_deref(), limits.max_title_chars)?;
    let notes = optional_text("notes", body.notes.as_deref(), limits.max_notes_chars)?;

    let hash = url.hash();
    if let Some(bookmark) = saved_before(&state, user.0, &hash).await? {
        return already_saved(&state, bookmark).await;
    }

    let mut tx = state.metrics.db.begin(&state.db).await?;
    let cap = state.config.quotas.max_pending_jobs;
    if cap > 0 {
        // One user's saves take turns here, so concurrent saves cannot all pass the count.
        records::lock_user_enqueues(&mut *tx, user.0).await?;
        if records::not_started(&mut *tx, user.0, cap).await? >= i64::from(cap) {
            tx.rollback().await?;
            return Err(too_many_pending_jobs(&state, cap));
        }
    }
    let inserted = bookmarks::insert_or_get(
        &mut tx,
        user.0,
        url.as_str(),
        &hash,
        title.as_deref(),
        notes.as_deref(),
    );
    let (bookmark, created) = state.metrics.db.time("bookmark_save", inserted).await?;
    if !created {
        tx.rollback().await?;
        return already_saved(&state, bookmark).await;
    }

    let job_id = new_task_id();
    let job = records::insert(
        &mut *tx,
        &records::NewJob {
            id: &job_id,
            user_id: user.0,
            kind: JobKind::Ingest.as_str(),
            stage: QueueName::Scrape.as_str(),
            bookmark_id: Some(bookmark.id),
            max_attempts: i32::try_from(state.config.jobs.max_attempts).unwrap_or(i32::MAX),
            lane: Lane::Interactive,
        },
    )
    .await?;
    tx.commit().await?;
    // Told before the enqueue, so no worker's news of the job can come first.
    let feeds = &state.feeds;
    feeds
        .tell(&state.redis, user.0, &FeedEvent::job(&job))
        .await;
    feeds
        .bookmark(&state.redis, user.0, bookmark.id, BookmarkChange::Updated)
        .await;
    // Commit first, so the worker always finds the record of the ticket it receives.
    let payload = StageJob {
        job_id: job_id.clone(),
        user_id: user.0,
        bookmark_id: bookmark.id,
        refresh: false,
    };
    let ticket = Ticket {
        queue: QueueName::Scrape,
        id: &job_id,
        owner: Owner::User(user.0),
        lane: Lane::Interactive,
    };
    if let Err(e) = state.queues.enqueue(ticket, &payload, None).await {
        tracing::error!(error = ?e, "enqueue failed; undoing the save");
        state
            .metrics
            .redis_errors
            .with_label_values(&["queue"])
            .inc();
        undo_save(&state, &job_id, bookmark.id).await;
        feeds
            .bookmark(&state.redis, user.0, bookmark.id, BookmarkChange::Deleted)
            .await;
        return Err(ApiError::Unavailable(
            "job queue unavailable; nothing was saved, retry shortly",
        ));
    }
    state
        .metrics
        .jobs_enqueued
        .with_label_values(&["scrape"])
        .inc();
    publish_change(&state, user.0).await;
    Ok(HttpResponse::Accepted().json(SaveResponse {
        bookmark,
        job: Some(JobView::new(job, &state)),
    }))
}

/// The user's bookmark of this URL if the cached set of their saved URLs has it. A cache that
/// cannot answer is no answer: the insert below settles duplicates by the unique index anyway.
async fn saved_before(
    state: &AppState,
    user_id: Uuid,
    hash: &[u8],
) -> Result<Option<Bookmark>, ApiError> {
    let set = state
        .cache
        .get_or_load(
            CacheType::UserBookmarks,
            Some(user_id),
            views::URL_SET_KEY,
            views::url_set(&state.db, user_id),
        )
        .await;
    match set {
        // Deleted meanwhile, before the set was refreshed: saved anew below.
        Ok((set, _layer)) if views::url_set_contains(&set, hash) => {
            Ok(bookmarks::find_by_hash(&state.db, user_id, hash).await?)
        }
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "saved-URL set unavailable");
            Ok(None)
        }
    }
}

/// 200 with the existing bookmark and its latest job: a save of a URL the user already has.
async fn already_saved(state: &AppState, bookmark: Bookmark) -> Result<HttpResponse, ApiError> {
    state
        .metrics
        .jobs_deduplicated
        .with_label_values(&["scrape"])
        .inc();
    let job = records::latest_for_bookmark(&state.db, bookmark.id).await?;
    let job = job.map(|j| JobView::new(j, state));
    Ok(HttpResponse::Ok().json(SaveResponse { bookmark, job }))
}

/// 429 `too_many_pending_jobs`: the user already has `cap` jobs waiting to start.
fn too_many_pending_jobs(state: &AppState, cap: u32) -> ApiError {
    state
        .metrics
        .scheduling
        .limited
        .with_label_values(&["/api/v1/bookmarks", "too_many_pending_jobs"])
        .inc();
    ApiError::Limited {
        code: "too_many_pending_jobs",
        message: format!(
            "{cap} of your links are still waiting to be fetched; save more once some are done"
        ),
        retry_after_s: 10,
    }
}

/// Best effort: if this fails too, the clock's reconciler enqueues the orphaned job later.
async fn undo_save(state: &AppState, job_id: &str, bookmark_id: Uuid) {
    let undone = async {
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job_id)
            .execute(&state.db)
            .await?;
        sqlx::query("DELETE FROM saved_content WHERE id = $1")
            .bind(bookmark_id)
            .execute(&state.db)
            .await
    };
    if let Err(e) = undone.await {
        tracing::error!(error = %e, job = job_id, "failed to undo a save whose job was not enqueued");
    }
}

/// After a committed change of the user's bookmarks that leaves their analyses as they were.
pub(crate) async fn publish_change(state: &AppState, user_id: Uuid) {
    announce(state, &Event::BookmarksChanged { user_id }).await;
}

async fn announce(state: &AppState, event: &Event) {
    let mut conn = state.redis.clone();
    events::announce(&state.cache, &mut conn, &state.keys.events_channel(), event).await;
}

/// Newest first, keyset-paginated: `next_cursor` fetches the following page. Pages are served from
/// the read cache as ready-made JSON with an ETag (304 on `If-None-Match`).
#[utoipa::path(
    get, path = "/api/v1/bookmarks", tag = "bookmarks",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of bookmarks, newest first", body = Page<ListedBookmark>),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = query.page(&state.config.api)?;
    let key = views::bookmark_page_key(limit, after);
    let (page, _layer) = state
        .cache
        .get_or_load_value(CacheType::UserBookmarks, Some(user.0), &key, async {
            views::bookmark_page(&state.db, user.0, limit, after)
                .await
                .map_err(ApiError::from_load)
        })
        .await?;
    Ok(cached_json(&req, page))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// `embedding` adds the stored vector to the reply.
    include: Option<String>,
}

/// One bookmark with its extracted text.
#[utoipa::path(
    get, path = "/api/v1/bookmarks/{id}", tag = "bookmarks",
    params(("id" = Uuid, Path, description = "The bookmark"), GetQuery),
    responses(
        (status = 200, description = "The bookmark with its text", body = BookmarkDetail),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such bookmark of this user", body = ErrorBody),
    ),
)]
async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    let with_embedding = match query.include.as_deref() {
        None | Some("") => false,
        Some("embedding") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("cannot include {other:?}"),
            ));
        }
    };
    let detail = bookmarks::get(&state.db, user.0, *id, with_embedding)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Absent fields stay as they are; `null` clears a title or notes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EditRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    notes: Option<Option<String>>,
    /// A new address: the page is fetched anew from it (a refresh job).
    url: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct EditResponse {
    #[serde(flatten)]
    bookmark: Bookmark,
    /// The refresh job, when the URL changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<JobView>,
}

/// Edits the title, notes or URL; a new URL is fetched again by a refresh job.
#[utoipa::path(
    patch, path = "/api/v1/bookmarks/{id}", tag = "bookmarks",
    params(("id" = Uuid, Path, description = "The bookmark")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "The edited bookmark (with the refresh job when the URL changed)", body = EditResponse),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the user already has that URL, or a job of the bookmark is under way", body = ErrorBody),
        (status = 422, description = "`empty_patch`, `invalid_field`, `invalid_body`, or a `url_*` code", body = ErrorBody),
    ),
)]
async fn edit(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<EditRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let field =
        |name, v: &Option<Option<String>>, max| -> Result<Option<Option<String>>, ApiError> {
            match v {
                None => Ok(None),
                Some(inner) => Ok(Some(optional_text(name, inner.as_deref(), max)?)),
            }
        };
    let url = body
        .url
        .as_deref()
        .map(|raw| BookmarkUrl::parse(raw, limits.max_url_len))
        .transpose()
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let changes = Changes {
        title: field("title", &body.title, limits.max_title_chars)?,
        notes: field("notes", &body.notes, limits.max_notes_chars)?,
        url: url.map(|u| (u.as_str().to_owned(), u.hash())),
    };
    if changes.title.is_none() && changes.notes.is_none() && changes.url.is_none() {
        return Err(ApiError::unprocessable(
            "empty_patch",
            "nothing to change: send title, notes and/or url",
        ));
    }
    if changes.url.is_some() {
        // The new page is fetched by a refresh, which waits for no other job of the bookmark.
        super::refresh::ensure_idle(&state, *id).await?;
    }
    let bookmark = bookmarks::update(&state.db, user.0, *id, &changes)
        .await
        .map_err(|e| match e {
            UpdateError::UrlTaken => ApiError::Conflict(e.to_string()),
            UpdateError::Db(db) => db.into(),
        })?
        .ok_or(ApiError::NotFound)?;
    publish_change(&state, user.0).await;
    state
        .feeds
        .bookmark(&state.redis, user.0, bookmark.id, BookmarkChange::Updated)
        .await;
    let job = match changes.url {
        Some(_) => Some(JobView::new(
            super::refresh::start(&state, user.0, bookmark.id).await?,
            &state,
        )),
        None => None,
    };
    Ok(HttpResponse::Ok().json(EditResponse { bookmark, job }))
}

/// Deletes the bookmark and everything derived from it.
#[utoipa::path(
    delete, path = "/api/v1/bookmarks/{id}", tag = "bookmarks",
    params(("id" = Uuid, Path, description = "The bookmark")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn remove(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !bookmarks::delete(&state.db, user.0, *id).await? {
        return Err(ApiError::NotFound);
    }
    // Its cached analysis goes with it.
    announce(&state, &Event::AnalysesChanged { user_id: user.0 }).await;
    state
        .feeds
        .bookmark(&state.redis, user.0, *id, BookmarkChange::Deleted)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

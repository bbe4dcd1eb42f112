//! `/api/v1/imports`: upload an export file, follow its progress and items, control its crawl.

use super::table::Routes;
use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, ETag, EntityTag},
    web,
};
use chrono::{DateTime, Utc};
use fuze_shared::imports::{
    ImportState, ItemState,
    control::{self, Changed, ControlError},
    feed,
    progress::{self, Counts, ImportRecord, ItemView, Pace},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    imports::{
        parse::Format,
        upload::{self, Options, UploadError},
    },
    routes::{
        bookmarks::publish_change,
        common::{Page, cursor, not_modified, page_size},
    },
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, items, pause, resume, cancel, retry_failed),
    components(schemas(ItemState))
)]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/imports", |m| m.post(create).get(list));
    r.resource("/imports/{id}", |m| m.get(get));
    r.resource("/imports/{id}/items", |m| m.get(items));
    r.resource("/imports/{id}/pause", |m| m.post(pause));
    r.resource("/imports/{id}/resume", |m| m.post(resume));
    r.resource("/imports/{id}/cancel", |m| m.post(cancel));
    r.resource("/imports/{id}/retry-failed", |m| m.post(retry_failed));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CreateQuery {
    /// One of the formats' names (`netscape`, `pocket_html`, `pocket_csv`, `raindrop_csv`,
    /// `csv`, `pinboard_json`, `url_list`); detected from the file when absent.
    format: Option<String>,
    /// Fetch and embed each page (default), or save titles, tags and dates only.
    crawl: Option<bool>,
    /// Comma-separated tags added to every item.
    tags: Option<String>,
}

/// An import with its progress, as every import route answers it.
#[derive(Debug, Serialize, ToSchema)]
struct ImportView {
    #[serde(flatten)]
    import: ImportRecord,
    counts: Counts,
    items_per_s: f64,
    eta_s: Option<f64>,
    /// Suggested delay before the next poll; `null` once nothing moves without the user.
    poll_after_ms: Option<u64>,
}

impl ImportView {
    /// Sends the import's progress to its owner's event streams.
    async fn tell(&self, state: &AppState, user_id: Uuid) {
        let event = progress::feed_event(&self.import, &self.counts);
        state.feeds.tell(&state.redis, user_id, &event).await;
    }

    async fn load(state: &AppState, user_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        let import = progress::find(&state.db, user_id, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let counts = progress::counts(&state.db, id).await?;
        Ok(Self::new(state, import, counts, Utc::now()))
    }

    fn new(state: &AppState, import: ImportRecord, counts: Counts, now: DateTime<Utc>) -> Self {
        let pace = Pace::of(&import, &counts, now);
        let poll_after_ms = (import.state == ImportState::Running).then(|| {
            u64::try_from(state.config.api.job_poll_interval.as_millis()).unwrap_or(u64::MAX)
        });
        Self {
            import,
            counts,
            items_per_s: pace.items_per_s,
            eta_s: pace.eta_s,
            poll_after_ms,
        }
    }

    /// Changes whenever the state or any count changes (the rate alone does not make a poll new).
    fn etag(&self) -> EntityTag {
        let c = &self.counts;
        EntityTag::new_strong(format!(
            "{}-{}-{}-{}-{}-{}-{}-{}",
            self.import.id,
            self.import.state.as_str(),
            c.staged,
            c.saved,
            c.duplicate,
            c.crawled,
            c.failed,
            c.skipped
        ))
    }
}

/// Uploads an export file (the raw body; options in the query string). 202 once every entry is
/// staged and visible in the bookmark list; the crawl goes on in the bulk lane.
#[utoipa::path(
    post, path = "/api/v1/imports", tag = "imports",
    params(CreateQuery),
    request_body(content = Vec<u8>, description = "The export file, as it is", content_type = "application/octet-stream"),
    responses(
        (status = 202, description = "Every entry is staged; the crawl goes on", body = ImportView),
        (status = 400, description = "`invalid_query`, `invalid_format`, `upload_interrupted`", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over `FUZE_IMPORT_MAX_BYTES`", body = ErrorBody),
        (status = 422, description = "`malformed_import`, `too_many_entries`", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip(state, body, query), fields(user = %user.0))]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<CreateQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.config.imports.max_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let options = options(&query, &state)?;
    let staged = upload::receive(&state, user.0, body, options)
        .await
        .map_err(upload_error)?;
    state
        .metrics
        .imports
        .started
        .with_label_values(&[staged.format.as_str()])
        .inc();
    publish_change(&state, user.0).await;
    if staged.state == ImportState::Running {
        start_feeding(&state, staged.id).await;
    }
    let view = ImportView::load(&state, user.0, staged.id).await?;
    view.tell(&state, user.0).await;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/imports/{}", staged.id)))
        .json(view))
}

fn options(query: &CreateQuery, state: &AppState) -> Result<Options, ApiError> {
    let format = query
        .format
        .as_deref()
        .map(|name| {
            Format::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                ApiError::bad_request(
                    "invalid_format",
                    format!("format must be one of {}", known.join(", ")),
                )
            })
        })
        .transpose()?;
    let config = &state.config.imports;
    let mut tags: Vec<String> = Vec::new();
    for tag in query.tags.as_deref().unwrap_or("").split(',') {
        let tag = tag.split_whitespace().collect::<Vec<_>>().join(" ");
        if tag.is_empty() || tags.contains(&tag) {
            continue;
        }
        if tag.chars().count() > config.max_tag_chars || tag.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("a tag is at most {} characters", config.max_tag_chars),
            ));
        }
        tags.push(tag);
    }
    if tags.len() > config.max_tags {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {} tags", config.max_tags),
        ));
    }
    Ok(Options {
        format,
        crawl: query.crawl.unwrap_or(true),
        tags,
    })
}

fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::TooLarge { limit } => ApiError::TooLarge { limit },
        UploadError::TooManyEntries { .. } => {
            ApiError::unprocessable("too_many_entries", e.to_string())
        }
        UploadError::Malformed { format, error } => {
            let mut message = format!("the file is not a valid {format} export: {}", error.message);
            if let Some(line) = error.line {
                message.push_str(&format!(" (line {line}"));
                if let Some(column) = error.column {
                    message.push_str(&format!(", column {column}"));
                }
                message.push(')');
            } else if let Some(byte) = error.byte {
                message.push_str(&format!(" (byte {byte})"));
            }
            ApiError::unprocessable("malformed_import", message)
        }
        UploadError::Interrupted(reason) => ApiError::bad_request("upload_interrupted", reason),
        UploadError::Db(db) => db.into(),
    }
}

/// Starts the import's first window of crawls. A failure here is not the upload's: the clock's
/// feeder starts any running import that has nothing queued.
async fn start_feeding(state: &AppState, import_id: Uuid) {
    let fed = feed::feed(
        &state.db,
        &state.queues,
        import_id,
        state.config.imports.crawl_window,
        i32::try_from(state.config.jobs.max_attempts).unwrap_or(i32::MAX),
    )
    .await;
    if let Err(e) = fed {
        tracing::warn!(import = %import_id, error = %format!("{e:#}"), "import crawl not started; the clock will");
    }
}

/// The import and its progress; poll after `poll_after_ms` (also `Retry-After`), or follow the
/// `import` events.
#[utoipa::path(
    get, path = "/api/v1/imports/{id}", tag = "imports",
    params(("id" = Uuid, Path, description = "The import")),
    responses(
        (status = 200, description = "The import", body = ImportView),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = ImportView::load(&state, user.0, *id).await?;
    let etag = view.etag();
    let unchanged = not_modified(&req, &etag);
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header(ETag(etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if let Some(ms) = view.poll_after_ms {
        res.insert_header((header::RETRY_AFTER, ms.div_ceil(1000).to_string()));
    }
    Ok(if unchanged {
        res.finish()
    } else {
        res.json(view)
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListImportsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/imports", tag = "imports",
    params(ListImportsQuery),
    responses(
        (status = 200, description = "The user's imports, newest first", body = Page<ImportView>),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ListImportsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.config.api)?;
    let after = cursor(query.cursor.as_deref(), |raw| {
        fuze_shared::keyset::decode(raw).and_then(|(at, id)| Some((at, id.parse::<Uuid>().ok()?)))
    })?;
    let imports = progress::list(&state.db, user.0, after, limit).await?;
    let next_cursor = (imports.len() == limit as usize)
        .then(|| imports.last())
        .flatten()
        .map(|last| fuze_shared::keyset::encode(last.created_at, &last.id.to_string()));
    let now = Utc::now();
    let mut views = Vec::with_capacity(imports.len());
    for import in imports {
        let counts = progress::counts(&state.db, import.id).await?;
        views.push(ImportView::new(&state, import, counts, now));
    }
    Ok(HttpResponse::Ok().json(Page {
        items: views,
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ItemsQuery {
    /// Only items in this state.
    #[param(value_type = Option<ItemState>)]
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct ItemsPage {
    items: Vec<ItemView>,
    next_cursor: Option<String>,
}

/// The import's items in file order, e.g. `?state=failed` for what did not make it.
#[utoipa::path(
    get, path = "/api/v1/imports/{id}/items", tag = "imports",
    params(("id" = Uuid, Path, description = "The import"), ItemsQuery),
    responses(
        (status = 200, description = "A page of items", body = ItemsPage),
        (status = 400, description = "`invalid_query`, `invalid_limit`, `invalid_cursor`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn items(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.config.api)?;
    let item_state = query
        .state
        .as_deref()
        .map(|name| {
            ItemState::parse(name).ok_or_else(|| {
                let known: Vec<&str> = ItemState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(
                    "invalid_query",
                    format!("state must be one of {}", known.join(", ")),
                )
            })
        })
        .transpose()?;
    // Item cursors are positions in the file.
    let after = query
        .cursor
        .as_deref()
        .map(|raw| {
            raw.parse::<i32>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not valid"))
        })
        .transpose()?;
    progress::find(&state.db, user.0, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let items = progress::items(&state.db, *id, item_state, after, limit).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last())
        .flatten()
        .map(|last| last.seq.to_string());
    Ok(HttpResponse::Ok().json(ItemsPage { items, next_cursor }))
}

/// Pauses the crawl; saved items stay.
#[utoipa::path(
    post, path = "/api/v1/imports/{id}/pause", tag = "imports",
    params(("id" = Uuid, Path, description = "The import")),
    responses(
        (status = 200, description = "The import after the change", body = ImportView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the import's state does not allow it", body = ErrorBody),
    ),
)]
async fn pause(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let changed = control::pause(&state.db, user.0, *id).await;
    answer_control(&state, user.0, *id, changed).await
}

/// Resumes a paused import.
#[utoipa::path(
    post, path = "/api/v1/imports/{id}/resume", tag = "imports",
    params(("id" = Uuid, Path, description = "The import")),
    responses(
        (status = 200, description = "The import after the change", body = ImportView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the import's state does not allow it", body = ErrorBody),
    ),
)]
async fn resume(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let changed = control::resume(&state.db, user.0, *id).await;
    answer_control(&state, user.0, *id, changed).await
}

/// Cancels what is not crawled yet.
#[utoipa::path(
    post, path = "/api/v1/imports/{id}/cancel", tag = "imports",
    params(("id" = Uuid, Path, description = "The import")),
    responses(
        (status = 200, description = "The import after the change", body = ImportView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the import's state does not allow it", body = ErrorBody),
    ),
)]
async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let changed = control::cancel(&state.db, user.0, *id).await;
    answer_control(&state, user.0, *id, changed).await
}

/// Crawls the import's failed items again.
#[utoipa::path(
    post, path = "/api/v1/imports/{id}/retry-failed", tag = "imports",
    params(("id" = Uuid, Path, description = "The import")),
    responses(
        (status = 200, description = "The import after the change", body = ImportView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the import's state does not allow it", body = ErrorBody),
    ),
)]
async fn retry_failed(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let changed = control::retry_failed(&state.db, user.0, *id).await;
    answer_control(&state, user.0, *id, changed).await
}

/// 200 with the import after the change; 404 for another user's; 409 when its state forbids it.
async fn answer_control(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    changed: Result<Changed, ControlError>,
) -> Result<HttpResponse, ApiError> {
    let changed = changed.map_err(|e| match e {
        ControlError::NotFound => ApiError::NotFound,
        ControlError::Conflict(_) => ApiError::Conflict(e.to_string()),
        ControlError::Db(db) => db.into(),
    })?;
    if changed.feed {
        start_feeding(state, id).await;
    }
    if changed.items > 0 {
        publish_change(state, user_id).await;
    }
    let view = ImportView::load(state, user_id, id).await?;
    view.tell(state, user_id).await;
    Ok(HttpResponse::Ok().json(view))
}

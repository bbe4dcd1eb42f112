//! `/api/v1/projects` and `/api/v1/projects/{id}/tasks`: create, list, get, edit, delete.
//! A project that is not the caller's is 404 on every route, its tasks included.

use super::table::Routes;
use actix_web::{HttpResponse, web};
use fuze_shared::{
    domain::bounded_text,
    events::{self, Event},
    projects::{self, Project, ProjectChanges, Task, TaskChanges},
};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    routes::common::{ListQuery, Page, invalid_field, optional_text, present},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(
    create_project,
    list_projects,
    get_project,
    edit_project,
    remove_project,
    create_task,
    list_tasks,
    get_task,
    edit_task,
    remove_task
))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/projects", |m| m.post(create_project).get(list_projects));
    r.resource("/projects/{id}", |m| {
        m.get(get_project)
            .patch(edit_project)
            .delete(remove_project)
    });
    r.resource("/projects/{id}/tasks", |m| {
        m.post(create_task).get(list_tasks)
    });
    r.resource("/projects/{id}/tasks/{task_id}", |m| {
        m.get(get_task).patch(edit_task).delete(remove_task)
    });
}

/// Trimmed, bounded and not empty.
fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, ApiError> {
    let text = bounded_text(field, raw, max).map_err(invalid_field)?;
    if text.is_empty() {
        return Err(invalid_field(format!("{field} must not be empty")));
    }
    Ok(text)
}

/// A PATCH of a field that cannot be cleared: `null` is refused.
fn not_null<T>(field: &'static str, v: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match v {
        Some(None) => Err(invalid_field(format!("{field} cannot be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// A PATCH of an optional text field: validated when set, `Some(None)` clears it.
fn patch_optional_text(
    field: &'static str,
    v: Option<Option<String>>,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    v.map(|inner| optional_text(field, inner.as_deref(), max))
        .transpose()
}

async fn publish_change(state: &AppState, user_id: Uuid, project_id: Uuid) {
    let mut conn = state.redis.clone();
    events::announce(
        &state.cache,
        &mut conn,
        &state.keys.events_channel(),
        &Event::ProjectChanged {
            user_id,
            project_id,
        },
    )
    .await;
}

// ---- projects ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
    description: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/projects", tag = "projects",
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = Project),
        (status = 422, description = "`invalid_field`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn create_project(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let name = required_text("name", &body.name, limits.max_project_name_chars)?;
    let description = optional_text(
        "description",
        body.description.as_deref(),
        limits.max_description_chars,
    )?;
    let project =
        projects::create_project(&state.db, user.0, &name, description.as_deref()).await?;
    publish_change(&state, user.0, project.id).await;
    Ok(HttpResponse::Created().json(project))
}

/// Newest first, keyset-paginated: `next_cursor` fetches the following page.
#[utoipa::path(
    get, path = "/api/v1/projects", tag = "projects",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of projects", body = Page<Project>),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn list_projects(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = query.page(&state.config.api)?;
    let items = projects::list_projects(&state.db, user.0, after, limit).await?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, Project::cursor)))
}

/// The project.
#[utoipa::path(
    get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project")),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get_project(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = projects::get_project(&state.db, user.0, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(project))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EditProject {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

/// Edits the name or description (`null` clears the description).
#[utoipa::path(
    patch, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project")),
    request_body = EditProject,
    responses(
        (status = 200, description = "The edited project", body = Project),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`empty_patch`, `invalid_field`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn edit_project(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<EditProject>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let body = body.into_inner();
    let changes = ProjectChanges {
        name: not_null("name", body.name)?
            .map(|n| required_text("name", &n, limits.max_project_name_chars))
            .transpose()?,
        description: patch_optional_text(
            "description",
            body.description,
            limits.max_description_chars,
        )?,
    };
    if changes.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_patch",
            "nothing to change: send name and/or description",
        ));
    }
    let project = projects::update_project(&state.db, user.0, *id, &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    publish_change(&state, user.0, project.id).await;
    Ok(HttpResponse::Ok().json(project))
}

/// Deletes the project with all its tasks.
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project")),
    responses(
        (status = 204, description = "Deleted with its tasks"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn remove_project(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !projects::delete_project(&state.db, user.0, *id).await? {
        return Err(ApiError::NotFound);
    }
    publish_change(&state, user.0, *id).await;
    Ok(HttpResponse::NoContent().finish())
}

// ---- tasks ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    title: String,
    description: Option<String>,
    #[serde(default)]
    done: bool,
}

/// Adds a task to the project.
#[utoipa::path(
    post, path = "/api/v1/projects/{id}/tasks", tag = "projects",
    params(("id" = Uuid, Path, description = "The project")),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = Task),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn create_task(
    state: web::Data<AppState>,
    user: AuthUser,
    project_id: web::Path<Uuid>,
    body: web::Json<CreateTask>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let title = required_text("title", &body.title, limits.max_task_title_chars)?;
    let description = optional_text(
        "description",
        body.description.as_deref(),
        limits.max_description_chars,
    )?;
    let task = projects::create_task(
        &state.db,
        user.0,
        *project_id,
        &title,
        description.as_deref(),
        body.done,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    publish_change(&state, user.0, task.project_id).await;
    Ok(HttpResponse::Created().json(task))
}

/// Newest first, keyset-paginated: `next_cursor` fetches the following page.
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/tasks", tag = "projects",
    params(("id" = Uuid, Path, description = "The project"), ListQuery),
    responses(
        (status = 200, description = "A page of tasks", body = Page<Task>),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn list_tasks(
    state: web::Data<AppState>,
    user: AuthUser,
    project_id: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = query.page(&state.config.api)?;
    let mut conn = state.db.acquire().await?;
    let items = projects::list_tasks(&mut conn, user.0, *project_id, after, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, Task::cursor)))
}

/// The task.
#[utoipa::path(
    get, path = "/api/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get_task(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, id) = path.into_inner();
    let task = projects::get_task(&state.db, user.0, project_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(task))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EditTask {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    done: Option<Option<bool>>,
}

/// Edits the task (`null` clears the description).
#[utoipa::path(
    patch, path = "/api/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    request_body = EditTask,
    responses(
        (status = 200, description = "The edited task", body = Task),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`empty_patch`, `invalid_field`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn edit_task(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<EditTask>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, id) = path.into_inner();
    let limits = &state.config.api;
    let body = body.into_inner();
    let changes = TaskChanges {
        title: not_null("title", body.title)?
            .map(|t| required_text("title", &t, limits.max_task_title_chars))
            .transpose()?,
        description: patch_optional_text(
            "description",
            body.description,
            limits.max_description_chars,
        )?,
        done: not_null("done", body.done)?,
    };
    if changes.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_patch",
            "nothing to change: send title, description and/or done",
        ));
    }
    let task = projects::update_task(&state.db, user.0, project_id, id, &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    publish_change(&state, user.0, project_id).await;
    Ok(HttpResponse::Ok().json(task))
}

/// Deletes the task.
#[utoipa::path(
    delete, path = "/api/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = Uuid, Path, description = "The project"), ("task_id" = Uuid, Path, description = "The task")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn remove_task(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, id) = path.into_inner();
    if !projects::delete_task(&state.db, user.0, project_id, id).await? {
        return Err(ApiError::NotFound);
    }
    publish_change(&state, user.0, project_id).await;
    Ok(HttpResponse::NoContent().finish())
}

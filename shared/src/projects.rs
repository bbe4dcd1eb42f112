//! Project and task storage (`projects`, `tasks`). Every query is scoped by `user_id`: tasks have
//! no owner column, so each task query joins its project and filters on the project's owner.
//!
//! Lists are newest first and keyset-paginated with [`Cursor`] (its `saved_at` holds `created_at`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

pub use crate::bookmarks::Cursor;

#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Project {
    /// The cursor of the page that follows this project.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            saved_at: self.created_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// The cursor of the page that follows this task.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            saved_at: self.created_at,
            id: self.id,
        }
    }
}

const PROJECT_COLUMNS: &str = "id, name, description, created_at, updated_at";
const TASK_COLUMNS: &str =
    "t.id, t.project_id, t.title, t.description, t.done, t.created_at, t.updated_at";

pub async fn create_project(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> sqlx::Result<Project> {
    sqlx::query_as(&format!(
        "INSERT INTO projects (id, user_id, name, description) VALUES ($1, $2, $3, $4) \
         RETURNING {PROJECT_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(name)
    .bind(description)
    .fetch_one(db)
    .await
}

pub async fn get_project(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Newest first; one indexed range scan (`projects_user_created`) whatever the page.
pub async fn list_projects(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    after: Option<Cursor>,
    limit: u32,
) -> sqlx::Result<Vec<Project>> {
    sqlx::query_as(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE user_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(after.map(|c| c.saved_at))
    .bind(after.map(|c| c.id))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// A project PATCH: `None` leaves a field; `Some(None)` clears an optional one.
#[derive(Debug, Default)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

impl ProjectChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none()
    }
}

pub async fn update_project(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    changes: &ProjectChanges,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(&format!(
        "UPDATE projects SET \
           name = COALESCE($3, name), \
           description = CASE WHEN $4 THEN $5 ELSE description END, \
           updated_at = now() \
         WHERE user_id = $1 AND id = $2 RETURNING {PROJECT_COLUMNS}"
    ))
    .bind(user_id)
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .fetch_optional(db)
    .await
}

/// Deletes the project and (by cascade) its tasks.
pub async fn delete_project(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM projects WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A new task of one of the user's projects; `None` if the project is not theirs (or is gone).
pub async fn create_task(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    project_id: Uuid,
    title: &str,
    description: Option<&str>,
    done: bool,
) -> sqlx::Result<Option<Task>> {
    // One statement: the ownership check and the insert cannot be split by a concurrent delete.
    sqlx::query_as(&format!(
        "INSERT INTO tasks AS t (id, project_id, title, description, done) \
         SELECT $3, p.id, $4, $5, $6 FROM projects p WHERE p.user_id = $1 AND p.id = $2 \
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(Uuid::new_v4())
    .bind(title)
    .bind(description)
    .bind(done)
    .fetch_optional(db)
    .await
}

pub async fn get_task(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    project_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Task>> {
    sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN projects p ON p.id = t.project_id \
         WHERE p.user_id = $1 AND t.project_id = $2 AND t.id = $3"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Newest first, keyset-paginated (`tasks_project_created`). `None` if the project is not the
/// user's, so an empty page of a foreign project cannot pass for an empty project.
pub async fn list_tasks(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    project_id: Uuid,
    after: Option<Cursor>,
    limit: u32,
) -> sqlx::Result<Option<Vec<Task>>> {
    let tasks: Vec<Task> = sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks t JOIN projects p ON p.id = t.project_id \
         WHERE p.user_id = $1 AND t.project_id = $2 \
         AND ($3::timestamptz IS NULL OR (t.created_at, t.id) < ($3, $4)) \
         ORDER BY t.created_at DESC, t.id DESC LIMIT $5"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(after.map(|c| c.saved_at))
    .bind(after.map(|c| c.id))
    .bind(i64::from(limit))
    .fetch_all(&mut *db)
    .await?;
    if !tasks.is_empty() {
        return Ok(Some(tasks));
    }
    // An empty page: tell "no (more) tasks" from "not your project".
    let owned = get_project(&mut *db, user_id, project_id).await?.is_some();
    Ok(owned.then_some(tasks))
}

/// A task PATCH: `None` leaves a field; `Some(None)` clears the description.
#[derive(Debug, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub done: Option<bool>,
}

impl TaskChanges {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.done.is_none()
    }
}

pub async fn update_task(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    project_id: Uuid,
    id: Uuid,
    changes: &TaskChanges,
) -> sqlx::Result<Option<Task>> {
    sqlx::query_as(&format!(
        "UPDATE tasks t SET \
           title = COALESCE($4, t.title), \
           description = CASE WHEN $5 THEN $6 ELSE t.description END, \
           done = COALESCE($7, t.done), \
           updated_at = now() \
         FROM projects p \
         WHERE p.id = t.project_id AND p.user_id = $1 AND t.project_id = $2 AND t.id = $3 \
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(id)
    .bind(changes.title.as_deref())
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.done)
    .fetch_optional(db)
    .await
}

pub async fn delete_task(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    project_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "DELETE FROM tasks t USING projects p \
         WHERE p.id = t.project_id AND p.user_id = $1 AND t.project_id = $2 AND t.id = $3",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

//! Every hot query uses an index, and a list costs one query whatever its page size: checked on a
//! seeded table (20k bookmarks over 20 users with analyses, 5k more users, projects, tasks and
//! jobs), by running the real query functions on one database connection and reading that
//! table's scan counters (`pg_stat_user_tables`) before and after each.

#[path = "../src/vector_seed.rs"]
mod vector_seed;

use std::num::NonZeroU32;

use fuze_shared::{
    analysis, auth, bookmarks, embedding, jobs::records, projects, recommend, search, views,
};
use fuze_tests::TestEnv;
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

/// Search and recommendations in two parts, as the api runs them by default.
const TWO: NonZeroU32 = NonZeroU32::MIN.saturating_add(1);

/// (table, sequential scans, index scans) for the tables hot queries read.
async fn scans(pool: &PgPool) -> Vec<(String, i64, i64)> {
    // Pending counters of this backend are flushed at the end of the next statement.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await
        .expect("flush");
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await
        .expect("snapshot");
    sqlx::query_as(
        "SELECT relname::text, COALESCE(seq_scan, 0), COALESCE(idx_scan, 0) FROM pg_stat_user_tables \
         WHERE relname IN ('users', 'saved_content', 'bookmark_passages', 'content_analysis', 'projects', \
           'tasks', 'jobs') \
         ORDER BY relname",
    )
    .fetch_all(pool)
    .await
    .expect("stats")
}

/// Runs `query` and fails if it scanned any hot table sequentially, or used no index at all.
async fn assert_indexed<F, Fut, T>(pool: &PgPool, what: &str, query: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let before = scans(pool).await;
    let out = query().await;
    let after = scans(pool).await;
    let mut index_scans = 0;
    for ((table, seq_before, idx_before), (_, seq_after, idx_after)) in before.iter().zip(&after) {
        // `scans` itself reads no user table; the delta is the query's alone.
        assert_eq!(
            seq_after - seq_before,
            0,
            "{what}: sequential scan of {table} ({before:?} -> {after:?})"
        );
        index_scans += idx_after - idx_before;
    }
    assert!(index_scans > 0, "{what}: no index used");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_indexes_on_a_seeded_table() {
    let env = TestEnv::new().await;
    let sizes = vector_seed::skewed_sizes(20, 20_000, 5_000);
    let corpus = vector_seed::seed(&env.pool, &sizes, 100, 10, 11).await;
    seed_the_rest(&env.pool, &corpus).await;

    // One connection: the scan counters read are those of the queries just run.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&env.database_url)
        .await
        .expect("pool");
    let large = corpus.user_near(5_000).id;
    let small = corpus.user_near(300).id;
    let query = corpus.queries(corpus.user_near(5_000), 1, 3).remove(0).0;

    for (user, label) in [(large, "large"), (small, "small")] {
        let page = assert_indexed(&pool, &format!("{label}: list page"), || {
            bookmarks::list(&pool, user, None, 50)
        })
        .await
        .expect("list");
        assert_eq!(page.len(), 50);
        assert!(
            page.iter().all(|b| !b.tags.is_empty()),
            "analyses joined in"
        );
        let last = page.last().expect("last");
        let cursor = bookmarks::Cursor {
            saved_at: last.bookmark.saved_at,
            id: last.bookmark.id,
        };
        assert_indexed(&pool, &format!("{label}: next page"), || {
            bookmarks::list(&pool, user, Some(cursor), 50)
        })
        .await
        .expect("list");
        let id = page[0].bookmark.id;
        assert_indexed(&pool, &format!("{label}: get"), || {
            bookmarks::get(&pool, user, id, false)
        })
        .await
        .expect("get");
        let ids: Vec<Uuid> = page.iter().map(|b| b.bookmark.id).collect();
        assert_indexed(&pool, &format!("{label}: by ids"), || {
            bookmarks::by_ids(&pool, user, &ids)
        })
        .await
        .expect("by ids");
        assert_indexed(&pool, &format!("{label}: analysis"), || {
            analysis::find(&pool, user, id)
        })
        .await
        .expect("analysis");
        assert_indexed(&pool, &format!("{label}: newest analyses"), || {
            analysis::newest_for_user(&pool, user, 20)
        })
        .await
        .expect("newest analyses");
        assert_indexed(&pool, &format!("{label}: search"), || {
            search::nearest_bookmarks(&pool, &corpus.space, user, &query, 10, TWO)
        })
        .await
        .expect("search");
        // A word of one bookmark's URL (its id's first group): one match, found by the index.
        let url_word = page[0].bookmark.id.simple().to_string()[..8].to_owned();
        let found = assert_indexed(&pool, &format!("{label}: keyword search"), || {
            search::keyword::keyword_ranked(&pool, user, &url_word, 10)
        })
        .await
        .expect("keyword search");
        assert_eq!(found.first().map(|hit| hit.id), Some(page[0].bookmark.id));
        assert_indexed(
            &pool,
            &format!("{label}: recommendation candidates"),
            || recommend::candidates(&pool, &corpus.space, user, &query, 50, TWO),
        )
        .await
        .expect("candidates");
        let hash = assert_indexed(&pool, &format!("{label}: saved URL set"), || {
            bookmarks::url_hashes(&pool, user)
        })
        .await
        .expect("url set")
        .remove(0);
        assert_indexed(&pool, &format!("{label}: by URL"), || {
            bookmarks::find_by_hash(&pool, user, &hash)
        })
        .await
        .expect("by url");
        assert_indexed(&pool, &format!("{label}: projects"), || {
            projects::list_projects(&pool, user, None, 20)
        })
        .await
        .expect("projects");
    }

    // A project's tasks, the user's job, token lookup, the warm-up's user list.
    let (project_id,): (Uuid,) =
        sqlx::query_as("SELECT id FROM projects WHERE user_id = $1 LIMIT 1")
            .bind(large)
            .fetch_one(&pool)
            .await
            .expect("project");
    let listed = assert_indexed(&pool, "tasks", || async {
        let mut conn = pool.acquire().await?;
        projects::list_tasks(&mut conn, large, project_id, None, 20).await
    })
    .await
    .expect("tasks");
    assert!(listed.is_some_and(|t| !t.is_empty()));
    let (job_id,): (String,) = sqlx::query_as("SELECT id FROM jobs WHERE user_id = $1 LIMIT 1")
        .bind(large)
        .fetch_one(&pool)
        .await
        .expect("job");
    assert_indexed(&pool, "job for user", || {
        records::find_for_user(&pool, &job_id, large)
    })
    .await
    .expect("job");
    assert_indexed(&pool, "token", || auth::user_for_token(&pool, "fz_nobody"))
        .await
        .expect("token");
    assert_indexed(&pool, "recently seen users", || {
        auth::recently_seen_users(&pool, std::time::Duration::from_secs(3600), 100)
    })
    .await
    .expect("seen");
    // The stale gauge's count reads the partial index of embedded rows.
    let stale = assert_indexed(&pool, "stale vectors", || {
        embedding::stale_count(&pool, &corpus.space)
    })
    .await
    .expect("stale count");
    assert_eq!(stale, 0, "seeded rows are of the current space");
    // The cached page view is the same single query.
    assert_indexed(&pool, "page view", || {
        views::bookmark_page(&pool, large, 20, None)
    })
    .await
    .expect("page view");
}

/// Analyses for every bookmark, 5k users seen over the last days, projects with tasks, jobs.
async fn seed_the_rest(pool: &PgPool, corpus: &vector_seed::Corpus) {
    let mut conn = vector_seed::admin_conn(pool).await;
    for sql in [
        "INSERT INTO content_analysis (content_id, keywords, tags, word_count, reading_time_s, language, quality_score) \
         SELECT id, '{a,b}', '{databases}', 500, 126, 'eng', 0.7 FROM saved_content",
        "INSERT INTO users (id, email, token_hash, last_seen_at) \
         SELECT gen_random_uuid(), 'u' || g || '@seed.test', sha256(g::text::bytea), \
                now() - g * interval '1 minute' FROM generate_series(1, 5000) g",
        "INSERT INTO projects (id, user_id, name) \
         SELECT gen_random_uuid(), u.id, 'project ' || g FROM users u, generate_series(1, 20) g \
         WHERE u.email LIKE '%@bench.test'",
        "INSERT INTO tasks (id, project_id, title) \
         SELECT gen_random_uuid(), p.id, 'task ' || g FROM projects p, generate_series(1, 10) g",
        "INSERT INTO jobs (id, user_id, kind, stage, state, max_attempts, bookmark_id, task_id) \
         SELECT md5(s.id::text), s.user_id, 'ingest', 'analyze', 'succeeded', 5, s.id, md5(s.id::text) \
         FROM saved_content s",
    ] {
        sqlx::raw_sql(sql).execute(&mut *conn).await.expect(sql);
    }
    for table in [
        "users",
        "content_analysis",
        "projects",
        "tasks",
        "jobs",
        "saved_content",
    ] {
        sqlx::raw_sql(&format!("VACUUM ANALYZE {table}"))
            .execute(&mut *conn)
            .await
            .expect("analyze");
    }
    assert!(!corpus.users.is_empty());
}

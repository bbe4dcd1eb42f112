//! Analysis, recommendations, session warm-ups and the clock's warm schedule, end to end on the
//! real services with a real worker (model included).

use std::time::Duration;

use fuze_shared::{
    cache::CacheType,
    jobs::{JobQueues, QueueName},
    keys::Keys,
    views,
};
use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use redis::AsyncCommands;
use serde_json::{Value, json};
use uuid::Uuid;

const BREAD: (&str, &str) = (
    "Sourdough bread at home",
    "Feed the sourdough starter with flour and water, let the dough rise overnight, shape the loaf \
     and bake the bread in a hot oven until the crust is dark. Good bread needs a lively starter, \
     patience while the dough ferments, and a hot baking stone for the loaf.",
);
const CLUSTER: (&str, &str) = (
    "Kubernetes cluster autoscaling",
    "The cluster autoscaler adds nodes when pods cannot be scheduled and removes underused nodes; \
     the horizontal pod autoscaler scales deployments on CPU usage of the containers.",
);
const MARATHON: (&str, &str) = (
    "Marathon training plan",
    "Build weekly mileage slowly, add one long run each weekend, include tempo runs and rest days, \
     and taper in the last three weeks before the race.",
);
const DATABASE: (&str, &str) = (
    "How PostgreSQL indexes speed up queries",
    "A PostgreSQL index lets the database find rows without reading the whole table. A btree \
     index keeps keys sorted, so range queries and ORDER BY can use it; the query planner \
     compares the cost of an index scan with a sequential scan. Too many indexes slow down \
     writes, because every insert must update each index of the table. Use EXPLAIN ANALYZE to \
     see which plan the planner chose for a SQL query and whether the index was used.",
);

/// Saves a page and waits until its job (scrape, embed, analyze) succeeded; returns the bookmark id.
async fn save_ready(api: &TestApi, pages: &PageServer, token: &str, doc: (&str, &str)) -> String {
    let (_, saved) = api.save(token, &pages.doc_url(doc.0, doc.1)).await;
    let job = api
        .wait_for_job(
            token,
            saved["job"]["id"].as_str().expect("job id"),
            Duration::from_secs(40),
        )
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["stage"], "analyze", "{job}");
    saved["bookmark"]["id"].as_str().expect("id").to_owned()
}

async fn get_json(api: &TestApi, path: &str, token: &str) -> (u16, Value) {
    let res = api.get(path, token).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn type_stat(stats: &Value, ty: &str, field: &str) -> u64 {
    stats["types"]
        .as_array()
        .and_then(|types| types.iter().find(|t| t["cache_type"] == ty))
        .and_then(|t| t[field].as_u64())
        .unwrap_or_else(|| panic!("no {ty}.{field} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_is_stored_after_embedding_cached_and_private() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;

    // Before any worker runs, the bookmark exists but has no analysis yet.
    let (_, pending) = api.save(&alice, &pages.doc_url("Pending", "not yet")).await;
    let pending_id = pending["bookmark"]["id"].as_str().expect("id");
    let (status, body) = get_json(
        &api,
        &format!("/api/v1/bookmarks/{pending_id}/analysis"),
        &alice,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("analysis_not_ready"))
    );

    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let id = save_ready(&api, &pages, &alice, DATABASE).await;
    let path = format!("/api/v1/bookmarks/{id}/analysis");
    let (status, analysis) = get_json(&api, &path, &alice).await;
    assert_eq!(status, 200, "{analysis}");
    assert_eq!(analysis["bookmark_id"], json!(id));
    let words = analysis["word_count"].as_u64().expect("word_count");
    let (_, detail) = get_json(&api, &format!("/api/v1/bookmarks/{id}"), &alice).await;
    let stored = detail["text"].as_str().expect("text");
    assert_eq!(
        words,
        stored.split_whitespace().count() as u64,
        "{analysis}"
    );
    assert!(words >= 80, "{analysis}");
    assert_eq!(
        analysis["reading_time_s"],
        json!((words * 60).div_ceil(238))
    );
    assert_eq!(analysis["language"], "eng", "{analysis}");
    let keywords: Vec<&str> = analysis["keywords"]
        .as_array()
        .expect("keywords")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        keywords
            .iter()
            .any(|k| k.contains("index") || k.contains("postgresql")),
        "{analysis}"
    );
    let tags = analysis["tags"].as_array().expect("tags");
    assert_eq!(tags.first(), Some(&json!("databases")), "{analysis}");
    let quality = analysis["quality_score"].as_f64().expect("quality");
    assert!(quality > 0.3 && quality <= 1.0, "{analysis}");

    // Cached with an ETag: the second read is a 304 from L1.
    let first = api.get(&path, &alice).send().await.expect("get");
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let again = api
        .get(&path, &alice)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 304);

    // The list carries each bookmark's analysis headline, from the same single query.
    let (_, list) = get_json(&api, "/api/v1/bookmarks", &alice).await;
    let listed = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["id"] == json!(id))
        .expect("listed")
        .clone();
    assert_eq!(listed["tags"], analysis["tags"], "{listed}");
    assert_eq!(listed["reading_time_s"], analysis["reading_time_s"]);

    // Another user, or no such bookmark: 404 either way.
    assert_eq!(get_json(&api, &path, &bob).await.0, 404);
    let missing = format!("/api/v1/bookmarks/{}/analysis", Uuid::new_v4());
    assert_eq!(get_json(&api, &missing, &alice).await.0, 404);
}

async fn recommend(api: &TestApi, token: &str, query: &str) -> (u16, Value) {
    get_json(api, &format!("/api/v1/recommendations?{query}"), token).await
}

/// `fuze_requests_deduplicated_total` from the api's /metrics.
async fn deduplicated_total(api: &TestApi) -> f64 {
    api.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("fuze_requests_deduplicated_total "))
        .expect("fuze_requests_deduplicated_total is exported")
        .trim()
        .parse()
        .expect("a number")
}

fn titles(results: &Value) -> Vec<String> {
    results["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["bookmark"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_follow_the_project_skip_duplicates_and_stay_private() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    for doc in [BREAD, CLUSTER, MARATHON] {
        save_ready(&api, &pages, &alice, doc).await;
    }
    // The same article under another URL: a near-duplicate that must not be recommended twice.
    save_ready(
        &api,
        &pages,
        &alice,
        ("Sourdough bread at home (mirror)", BREAD.1),
    )
    .await;

    let res = api
        .post("/api/v1/projects", &alice)
        .json(&json!({"name": "Bake at home", "description": "learn to bake a loaf of bread"}))
        .send()
        .await
        .expect("create project");
    assert_eq!(res.status(), 201);
    let project: Value = res.json().await.expect("json");
    let project_id = project["id"].as_str().expect("id").to_owned();
    let res = api
        .post(&format!("/api/v1/projects/{project_id}/tasks"), &alice)
        .json(&json!({"title": "buy flour and feed the sourdough starter"}))
        .send()
        .await
        .expect("create task");
    assert_eq!(res.status(), 201);

    let by_project = format!("project_id={project_id}&limit=3");
    let (status, results) = recommend(&api, &alice, &by_project).await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results["mode"], "semantic", "{results}");
    let found = titles(&results);
    assert!(found[0].starts_with("Sourdough bread at home"), "{results}");
    assert_eq!(
        found.iter().filter(|t| t.starts_with("Sourdough")).count(),
        1,
        "near-duplicates are skipped: {results}"
    );
    assert_eq!(found.len(), 3, "{results}");

    // Served from the cache the second time.
    let before = api.cache_stats().await;
    let (_, again) = recommend(&api, &alice, &by_project).await;
    assert_eq!(again, results);
    let after = api.cache_stats().await;
    assert_eq!(
        type_stat(&after, "recommendations", "loads"),
        type_stat(&before, "recommendations", "loads")
    );

    // A project change makes the cached answer unreachable: the next one follows the new project.
    let res = api
        .patch(&format!("/api/v1/projects/{project_id}"), &alice)
        .json(
            &json!({"name": "Run a marathon", "description": "long runs, tempo runs and a taper"}),
        )
        .send()
        .await
        .expect("rename");
    assert_eq!(res.status(), 200);
    let res = api
        .get(&format!("/api/v1/projects/{project_id}/tasks"), &alice)
        .send()
        .await
        .expect("tasks");
    let tasks: Value = res.json().await.expect("json");
    let task_id = tasks["items"][0]["id"].as_str().expect("task");
    let res = api
        .delete(
            &format!("/api/v1/projects/{project_id}/tasks/{task_id}"),
            &alice,
        )
        .send()
        .await
        .expect("delete task");
    assert_eq!(res.status(), 204);
    let (_, changed) = recommend(&api, &alice, &by_project).await;
    assert_eq!(titles(&changed)[0], "Marathon training plan", "{changed}");

    // A burst of one submission (the user clicking several times) does the work once; the
    // absorbed copies are counted on /metrics.
    let before_burst = deduplicated_total(&api).await;
    let burst = "q=long%20distance%20running&limit=2";
    let (a, b, c, d) = tokio::join!(
        recommend(&api, &alice, burst),
        recommend(&api, &alice, burst),
        recommend(&api, &alice, burst),
        recommend(&api, &alice, burst),
    );
    assert_eq!(a.0, 200, "{}", a.1);
    assert!(b == a && c == a && d == a, "one answer for all copies");
    assert_eq!(deduplicated_total(&api).await - before_burst, 3.0);

    // By query.
    let (status, by_query) = recommend(&api, &alice, "q=scaling%20containers&limit=1").await;
    assert_eq!(status, 200, "{by_query}");
    assert_eq!(titles(&by_query), vec!["Kubernetes cluster autoscaling"]);

    // Bob cannot use Alice's project, and has nothing to be recommended.
    assert_eq!(recommend(&api, &bob, &by_project).await.0, 404);
    let (_, empty) = recommend(&api, &bob, "q=bread").await;
    assert_eq!(empty["items"], json!([]), "{empty}");

    for bad in [
        String::new(),
        format!("project_id={project_id}&q=bread"),
        "q=".to_owned(),
        "q=bread&limit=0".to_owned(),
        "q=bread&limit=51".to_owned(),
        "project_id=not-a-uuid".to_owned(),
    ] {
        assert_eq!(recommend(&api, &alice, &bad).await.0, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_start_warms_the_first_page_into_redis() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (user, token) = env.user().await;
    save_ready(&api, &pages, &token, MARATHON).await;

    let res = api
        .post("/api/v1/session", &token)
        .send()
        .await
        .expect("session");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["warming"], "enqueued", "{body}");
    let res = api
        .post("/api/v1/session", &token)
        .send()
        .await
        .expect("session");
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["warming"], "recent",
        "a reload within the cooldown: {body}"
    );
    assert_eq!(
        api.post("/api/v1/session", "fz_wrong")
            .send()
            .await
            .expect("session")
            .status(),
        401
    );

    // The warm job writes the page under the user's current generation of bookmark pages.
    let mut redis = redis::Client::open(env.redis_url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let generation: Option<u64> = redis
        .get(format!(
            "{}:gen:{user}:{}",
            env.prefix,
            CacheType::UserBookmarks.as_str()
        ))
        .await
        .expect("gen");
    let limit = 20;
    let key = format!(
        "{}:{}:{user}:g{}:{}",
        env.prefix,
        CacheType::UserBookmarks.as_str(),
        generation.unwrap_or(0),
        views::bookmark_page_key(limit, None)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !redis.exists::<_, bool>(&key).await.expect("exists") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} was never warmed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The api's first read is then an L2 hit, never a database load, and the bytes are the ones
    // the api itself would have produced.
    let before = api.cache_stats().await;
    let res = api
        .get("/api/v1/bookmarks", &token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);
    let served = res.bytes().await.expect("body");
    let after = api.cache_stats().await;
    assert_eq!(
        type_stat(&after, "user_bookmarks", "l2_hits"),
        type_stat(&before, "user_bookmarks", "l2_hits") + 1,
        "{after}"
    );
    assert_eq!(
        type_stat(&after, "user_bookmarks", "loads"),
        type_stat(&before, "user_bookmarks", "loads")
    );
    let fresh = views::bookmark_page(&env.pool, user, limit, None)
        .await
        .expect("page");
    assert_eq!(served, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clocks_enqueue_one_warm_up_per_tick_and_admins_can_ask_for_one() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let every_second = [("FUZE_CLOCK_WARM_SCHEDULE", "* * * * * *")];
    let mut a = WorkerProcess::spawn_mode(&env, "clock", &every_second).await;
    let mut b = WorkerProcess::spawn_mode(&env, "clock", &every_second).await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    a.kill();
    b.kill();

    let mut redis = redis::Client::open(env.redis_url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let tick_keys: Vec<String> = redis
        .keys(format!("{}:warm:tick:*", env.prefix))
        .await
        .expect("keys");
    let config = env.config(&[]);
    let queues = JobQueues::new(
        redis::aio::ConnectionManager::new(redis::Client::open(env.redis_url.as_str()).expect("c"))
            .await
            .expect("manager"),
        Keys::new(env.prefix.clone()),
        config.worker.clone(),
    );
    // Warm-ups wait in the bulk lane of the warm queue (no worker runs here).
    let waiting = || async {
        let [_, bulk] = queues
            .fair()
            .pending(QueueName::Warm)
            .await
            .expect("pending");
        usize::try_from(bulk.ready).expect("count")
    };
    let tasks = waiting().await;
    assert!(tick_keys.len() >= 2, "ticks seen: {tick_keys:?}");
    assert_eq!(
        tasks,
        tick_keys.len(),
        "one warm-up per tick with two clocks"
    );

    let res = api
        .post("/api/v1/admin/cache/warm", "test-admin-token")
        .send()
        .await
        .expect("warm");
    assert_eq!(res.status(), 202);
    let (_, user_token) = env.user().await;
    let refused = api
        .post("/api/v1/admin/cache/warm", &user_token)
        .send()
        .await
        .expect("warm");
    assert_eq!(refused.status(), 401);
    assert_eq!(waiting().await, tasks + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_check_of_a_save_reads_the_cached_url_set() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let url = pages.url("/page/once");

    let (status, first) = api.save(&alice, &url).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = api.save(&alice, &url).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["bookmark"]["id"], first["bookmark"]["id"]);
    assert_eq!(again["job"]["id"], first["job"]["id"]);

    // The set is cached now: a third save of the same URL loads nothing from the database.
    let before = api.cache_stats().await;
    let (status, third) = api.save(&alice, &url).await;
    assert_eq!(status, 200, "{third}");
    let after = api.cache_stats().await;
    assert_eq!(
        type_stat(&after, "user_bookmarks", "loads"),
        type_stat(&before, "user_bookmarks", "loads"),
        "{after}"
    );
    assert_eq!(
        type_stat(&after, "user_bookmarks", "l1_hits"),
        type_stat(&before, "user_bookmarks", "l1_hits") + 1
    );

    // Another user's set is their own; a deleted bookmark can be saved anew.
    assert_eq!(api.save(&bob, &url).await.0, 202);
    let id = first["bookmark"]["id"].as_str().expect("id");
    let res = api
        .delete(&format!("/api/v1/bookmarks/{id}"), &alice)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    let (status, anew) = api.save(&alice, &url).await;
    assert_eq!(status, 202, "{anew}");
    assert_ne!(anew["bookmark"]["id"], first["bookmark"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_edit_keeps_cached_analyses_and_a_new_bookmark_drops_cached_searches() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (_, alice) = env.user().await;
    let bread = save_ready(&api, &pages, &alice, BREAD).await;
    let analysis = format!("/api/v1/bookmarks/{bread}/analysis");
    let search = "/api/v1/search?q=bread";
    for path in [analysis.as_str(), search] {
        let (status, body) = get_json(&api, path, &alice).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let loads = |stats: &Value| {
        (
            type_stat(stats, "content_analysis", "loads"),
            type_stat(stats, "query", "loads"),
        )
    };

    // A note edit: the analysis is still served from the cache, the search is loaded again
    // (results show notes).
    let before = loads(&api.cache_stats().await);
    let res = api
        .patch(&format!("/api/v1/bookmarks/{bread}"), &alice)
        .json(&json!({"notes": "try rye next time"}))
        .send()
        .await
        .expect("edit");
    assert_eq!(res.status(), 200);
    for path in [analysis.as_str(), search] {
        get_json(&api, path, &alice).await;
    }
    let after = loads(&api.cache_stats().await);
    assert_eq!(after.0, before.0, "the analysis was loaded again");
    assert_eq!(after.1, before.1 + 1, "the search was served stale");

    // A new bookmark, scraped, embedded and analysed: the search is loaded again, the first
    // bookmark's analysis is still served from the cache.
    let before = loads(&api.cache_stats().await);
    save_ready(&api, &pages, &alice, MARATHON).await;
    for path in [analysis.as_str(), search] {
        get_json(&api, path, &alice).await;
    }
    let after = loads(&api.cache_stats().await);
    assert_eq!(after.0, before.0, "the analysis was loaded again");
    assert_eq!(after.1, before.1 + 1, "the search was served stale");
}

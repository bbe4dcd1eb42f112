//! `GET /api/v1/admin/jobs` and `POST /api/v1/admin/jobs/{id}/retry`: an operator sees failed jobs
//! with their errors, page by page, and puts one back in its queue, where it then succeeds.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use serde_json::Value;

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const ADMIN: &str = "test-admin-token";
const WAIT: Duration = Duration::from_secs(30);

async fn admin_jobs(api: &TestApi, query: &str) -> (u16, Value) {
    let res = api
        .get(&format!("/api/v1/admin/jobs{query}"), ADMIN)
        .send()
        .await
        .expect("admin jobs");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON"))
}

async fn retry(api: &TestApi, id: &str, token: &str) -> (u16, Value) {
    let res = api
        .post(&format!("/api/v1/admin/jobs/{id}/retry"), token)
        .send()
        .await
        .expect("retry");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Saves `url` and waits until its job has finished; returns (job id, bookmark id, final job).
async fn save_and_finish(api: &TestApi, token: &str, url: &str) -> (String, String, Value) {
    let (status, saved) = api.save(token, url).await;
    assert_eq!(status, 202, "{saved}");
    let id = saved["job"]["id"].as_str().expect("job id").to_owned();
    let bookmark = saved["bookmark"]["id"]
        .as_str()
        .expect("bookmark")
        .to_owned();
    let job = api.wait_for_job(token, &id, WAIT).await;
    (id, bookmark, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_are_listed_with_errors_and_a_retry_makes_them_succeed() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // One attempt per stage: a single 503 fails the job for good.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;

    // Fails once with 503, then serves the article.
    let (flaky, bookmark, job) =
        save_and_finish(&api, &token, &pages.url("/flaky/1/retried")).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "http_5xx", "{job}");
    let (gone, _, job) = save_and_finish(&api, &token, &pages.url("/status/404")).await;
    assert_eq!(job["state"], "failed", "{job}");

    // Admin only.
    let res = api
        .get("/api/v1/admin/jobs", &token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    let (status, body) = retry(&api, &flaky, &token).await;
    assert_eq!(status, 401, "{body}");

    let (status, all) = admin_jobs(&api, "").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["jobs"]["scrape"]["failed"], 2, "{all}");
    for queue in ["scrape", "embed"] {
        let q = &all["queues"][queue];
        for field in ["ready", "scheduled", "dead"] {
            assert!(q[field].as_i64().is_some(), "{queue}.{field}: {all}");
        }
        assert_eq!(q["live_workers"], 1, "{all}");
    }
    let items = all["failed"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{all}");
    // Newest failure first, with the error that ended it.
    assert_eq!(items[0]["id"], gone.as_str(), "{all}");
    assert_eq!(items[0]["error"]["code"], "http_4xx");
    assert_eq!(items[1]["id"], flaky.as_str());
    assert_eq!(items[1]["error"]["code"], "http_5xx");
    assert!(
        items[1]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("503")),
        "{all}"
    );
    assert_eq!(items[1]["stage"], "scrape");
    assert_eq!(items[1]["bookmark_id"], bookmark.as_str());

    // Keyset pages of one.
    let (_, first) = admin_jobs(&api, "?limit=1").await;
    assert_eq!(first["failed"]["items"][0]["id"], gone.as_str(), "{first}");
    let cursor = first["failed"]["next_cursor"].as_str().expect("cursor");
    let (_, second) = admin_jobs(&api, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(
        second["failed"]["items"][0]["id"],
        flaky.as_str(),
        "{second}"
    );
    let cursor = second["failed"]["next_cursor"].as_str().expect("cursor");
    let (_, third) = admin_jobs(&api, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(third["failed"]["items"], serde_json::json!([]), "{third}");
    assert!(third["failed"]["next_cursor"].is_null());
    for (query, code) in [
        ("?limit=0", "invalid_limit"),
        ("?cursor=nope", "invalid_cursor"),
    ] {
        let (status, body) = admin_jobs(&api, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }

    // Retry: queued again with a fresh attempt budget, then it succeeds (the page answers now).
    let (status, body) = retry(&api, &flaky, ADMIN).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "queued", "{body}");
    assert_eq!(body["attempts"], 0);
    assert!(body["error"].is_null(), "{body}");
    let job = api.wait_for_job(&token, &flaky, WAIT).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let res = api
        .get(&format!("/api/v1/bookmarks/{bookmark}"), &token)
        .send()
        .await
        .expect("bookmark");
    let saved: Value = res.json().await.expect("JSON");
    assert_eq!(saved["status"], "ready", "{saved}");

    let (_, after) = admin_jobs(&api, "").await;
    let ids: Vec<&str> = after["failed"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, vec![gone.as_str()], "{after}");
    assert_eq!(after["jobs"]["analyze"]["succeeded"], 1, "{after}");

    // Only failed jobs can be retried; unknown ids are 404.
    let (status, body) = retry(&api, &flaky, ADMIN).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = retry(&api, "01KNOSUCHJOB0000000000000", ADMIN).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

//! `POST /api/v1/bookmarks/{id}/refresh`: the page is asked for again with the validators of the
//! last fetch. Unchanged (304), nothing is embedded again; changed, the new text is stored and
//! embedded; a failing refresh keeps the last good content.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use serde_json::Value;
use uuid::Uuid;

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(60);

async fn refresh(api: &TestApi, token: &str, bookmark: &str) -> (u16, Value) {
    let res = api
        .post(&format!("/api/v1/bookmarks/{bookmark}/refresh"), token)
        .send()
        .await
        .expect("refresh");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON"))
}

async fn bookmark(api: &TestApi, token: &str, id: &str) -> Value {
    let res = api
        .get(&format!("/api/v1/bookmarks/{id}"), token)
        .send()
        .await
        .expect("bookmark");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

/// The row versions of the bookmark's passages: new ones once it is embedded again.
async fn passage_versions(env: &TestEnv, id: &str) -> Vec<String> {
    let id: Uuid = id.parse().expect("uuid");
    sqlx::query_scalar(
        "SELECT xmin::text FROM bookmark_passages WHERE bookmark_id = $1 ORDER BY ordinal",
    )
    .bind(id)
    .fetch_all(&env.pool)
    .await
    .expect("passages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_re_embeds_only_a_changed_page_and_keeps_the_last_good_one() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // One attempt per stage: a failing refresh fails at once.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK, ("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let (_, token) = env.user().await;
    let (_, stranger) = env.user().await;

    pages.set_version(
        "kiwi",
        "Kiwi birds cannot fly and live in the forests of New Zealand.",
    );
    let id = api
        .save_ready(&token, &pages.url("/versioned/kiwi"), WAIT)
        .await;
    let first = passage_versions(&env, &id).await;
    assert!(!first.is_empty());

    // Unchanged: the site answers 304 to the stored ETag; the job ends at the scrape stage.
    let (status, job) = refresh(&api, &token, &id).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "refresh");
    let job = api
        .wait_for_job(&token, job["id"].as_str().expect("id"), WAIT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["stage"], "scrape", "nothing embedded again: {job}");
    assert_eq!(pages.hits("/versioned/kiwi#304"), 1);
    assert_eq!(passage_versions(&env, &id).await, first);

    // Changed: the new text is stored and embedded.
    pages.set_version(
        "kiwi",
        "Emperor penguins dive in the cold Antarctic sea to catch krill.",
    );
    let (status, job) = refresh(&api, &token, &id).await;
    assert_eq!(status, 202, "{job}");
    let job = api
        .wait_for_job(&token, job["id"].as_str().expect("id"), WAIT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["stage"], "analyze", "{job}");
    let changed = bookmark(&api, &token, &id).await;
    assert!(
        changed["text"]
            .as_str()
            .unwrap_or_default()
            .contains("penguins"),
        "{changed}"
    );
    assert_eq!(changed["status"], "ready");
    let second = passage_versions(&env, &id).await;
    assert!(!second.is_empty() && second != first, "embedded again");

    // Failing: the job fails, the page keeps its last good content and stays ready.
    pages.set_failing("kiwi", true);
    let (status, job) = refresh(&api, &token, &id).await;
    assert_eq!(status, 202, "{job}");
    let job = api
        .wait_for_job(&token, job["id"].as_str().expect("id"), WAIT)
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "http_5xx", "{job}");
    let kept = bookmark(&api, &token, &id).await;
    assert_eq!(kept["text"], changed["text"]);
    assert_eq!(kept["status"], "ready", "{kept}");
    assert_eq!(passage_versions(&env, &id).await, second);

    // A new URL: the page is fetched from there at once (a refresh job), its text replaced.
    pages.set_version(
        "moa",
        "The moa were giant flightless birds hunted to extinction.",
    );
    let moa = pages.url("/versioned/moa");
    let res = api
        .patch(&format!("/api/v1/bookmarks/{id}"), &token)
        .json(&serde_json::json!({ "url": moa }))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let moved: Value = res.json().await.expect("JSON");
    assert_eq!(moved["url"], moa.as_str(), "{moved}");
    assert_eq!(moved["job"]["kind"], "refresh", "{moved}");
    let job = api
        .wait_for_job(&token, moved["job"]["id"].as_str().expect("id"), WAIT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let now = bookmark(&api, &token, &id).await;
    assert!(
        now["text"]
            .as_str()
            .unwrap_or_default()
            .contains("giant flightless"),
        "{now}"
    );
    // Another bookmark cannot take an address the user already saved; a bad one is refused.
    let other = api
        .save_ready(&token, &pages.url("/page/other"), WAIT)
        .await;
    for (url, status) in [(moa.as_str(), 409), ("ftp://example.com/", 422)] {
        let res = api
            .patch(&format!("/api/v1/bookmarks/{other}"), &token)
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await
            .expect("patch");
        assert_eq!(res.status(), status, "{url}");
    }

    // Only the owner refreshes; unknown bookmarks are 404.
    let (status, body) = refresh(&api, &stranger, &id).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = refresh(&api, &token, &Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
}

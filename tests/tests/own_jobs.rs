//! A user's own jobs: `GET /api/v1/jobs` lists them newest first, page by page, by state; the
//! user retries a failed one (`POST /api/v1/jobs/{id}/retry`), which then succeeds and is pushed
//! on the user's event stream; nobody sees or retries another user's jobs.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess, sse};
use serde_json::Value;

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(30);

async fn get(api: &TestApi, path: &str, token: &str) -> (u16, Value) {
    let res = api.get(path, token).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON"))
}

async fn retry(api: &TestApi, id: &str, token: &str) -> (u16, Value) {
    let res = api
        .post(&format!("/api/v1/jobs/{id}/retry"), token)
        .send()
        .await
        .expect("retry");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_their_jobs_and_retry_their_failed_ones() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // One attempt per stage: a single 503 fails the job for good.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;
    let (_, stranger) = env.user().await;

    let mut saved = Vec::new();
    for path in ["/page/one", "/flaky/1/two", "/page/three"] {
        let (status, body) = api.save(&token, &pages.url(path)).await;
        assert_eq!(status, 202, "{body}");
        let id = body["job"]["id"].as_str().expect("job id").to_owned();
        api.wait_for_job(&token, &id, WAIT).await;
        saved.push(id);
    }
    let flaky = saved[1].clone();

    // Newest first, two per page, then the rest.
    let (status, first) = get(&api, "/api/v1/jobs?limit=2", &token).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), vec![saved[2].clone(), saved[1].clone()]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = get(
        &api,
        &format!("/api/v1/jobs?limit=2&cursor={cursor}"),
        &token,
    )
    .await;
    assert_eq!(ids(&second), vec![saved[0].clone()]);
    assert!(second["next_cursor"].is_null(), "{second}");

    let (_, failed) = get(&api, "/api/v1/jobs?state=failed&kind=ingest", &token).await;
    assert_eq!(ids(&failed), vec![flaky.clone()], "{failed}");
    assert_eq!(failed["items"][0]["error"]["code"], "http_5xx", "{failed}");
    let (_, theirs) = get(&api, "/api/v1/jobs", &stranger).await;
    assert!(ids(&theirs).is_empty(), "{theirs}");
    for bad in [
        "state=lost",
        "kind=mystery",
        "limit=0",
        "cursor=%21%21",
        "colour=red",
    ] {
        let (status, body) = get(&api, &format!("/api/v1/jobs?{bad}"), &token).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // Another user can neither see nor retry it; a job that did not fail cannot be retried.
    let (status, body) = retry(&api, &flaky, &stranger).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = retry(&api, &saved[0], &token).await;
    assert_eq!(status, 409, "{body}");

    // The owner's retry: queued with a fresh budget, pushed on the stream, then it succeeds.
    let mut events = sse::open(&api.http, &api.url("/api/v1/events"), &token, None)
        .await
        .unwrap_or_else(|res| panic!("events: {}", res.status()));
    assert_eq!(events.next(WAIT).await.expect("ready").event, "ready");
    let (status, body) = retry(&api, &flaky, &token).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "queued", "{body}");
    let job = api.wait_for_job(&token, &flaky, WAIT).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let mut states = Vec::new();
    while let Some(event) = events.next_named("job", Duration::from_secs(2)).await {
        let data = event.json();
        assert_eq!(data["job_id"], flaky.as_str(), "{data}");
        states.push(data["state"].as_str().unwrap_or_default().to_owned());
        if data["state"] == "succeeded" {
            break;
        }
    }
    assert_eq!(
        states.first().map(String::as_str),
        Some("queued"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{states:?}"
    );
}

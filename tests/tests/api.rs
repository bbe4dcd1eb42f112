//! The HTTP contract: authentication, validation (bad input writes nothing), per-user isolation,
//! pagination and cheap job polling. No worker runs here: jobs stay queued.

use fuze_tests::{TestApi, TestEnv};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn error_code(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.expect("errors are JSON");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, code)
}

async fn counts(env: &TestEnv) -> (i64, i64) {
    (env.count("saved_content").await, env.count("jobs").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_requires_a_valid_token() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let id = uuid::Uuid::new_v4();
    let routes = [
        ("GET", "/api/v1/bookmarks".to_owned()),
        ("POST", "/api/v1/bookmarks".to_owned()),
        ("GET", format!("/api/v1/bookmarks/{id}")),
        ("PATCH", format!("/api/v1/bookmarks/{id}")),
        ("DELETE", format!("/api/v1/bookmarks/{id}")),
        ("GET", "/api/v1/jobs/01M891HFZ9WJJ2AKJFPPFNKCS6".to_owned()),
        ("POST", "/api/v1/admin/users".to_owned()),
    ];
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Basic Zm9vOmJhcg=="),
            Some("Bearer "),
        ] {
            let mut req = api
                .http
                .request(method.parse().expect("method"), api.url(path))
                .json(&json!({}));
            if let Some(value) = auth {
                req = req.header("authorization", value);
            }
            let res = req.send().await.expect("request");
            assert_eq!(
                res.headers().get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{method} {path} {auth:?}"
            );
            assert_eq!(
                error_code(res).await,
                (StatusCode::UNAUTHORIZED, "unauthorized".into()),
                "{method} {path} {auth:?}"
            );
        }
    }
    // A user token is not an admin token.
    let (_, token) = env.user().await;
    let res = api
        .post("/api/v1/admin/users", &token)
        .json(&json!({"email": "x@y.z"}))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 401);
    assert_eq!(env.count("users").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_saves_get_clear_errors_and_write_nothing() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[("FUZE_MAX_BODY_BYTES", "4096")]).await;
    let (_, token) = env.user().await;
    let long_url = format!("https://example.com/{}", "a".repeat(2100));
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"url": "ftp://example.com/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_scheme",
        ),
        (
            json!({"url": "javascript:alert(1)"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_scheme",
        ),
        (
            json!({"url": "not a url"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_invalid",
        ),
        (
            json!({"url": "http://"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_invalid",
        ),
        (
            json!({"url": "https://u:p@example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_credentials",
        ),
        (
            json!({"url": long_url}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_too_long",
        ),
        (
            json!({"url": "https://example.com/", "title": "t".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"url": "https://example.com/", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"title": "no url"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"url": 42}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!(["https://example.com/"]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let res = api
            .post("/api/v1/bookmarks", &token)
            .json(&body)
            .send()
            .await
            .expect("req");
        assert_eq!(error_code(res).await, (status, code.to_owned()), "{body}");
    }
    let raw_cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "application/json",
            "{\"url\": ".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "application/json",
            "not json".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "text/plain",
            "{\"url\": \"https://example.com/\"}".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "application/json",
            format!(
                "{{\"url\": \"https://example.com/\", \"notes\": \"{}\"}}",
                "n".repeat(5000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (content_type, body, status, code) in raw_cases {
        let res = api
            .post("/api/v1/bookmarks", &token)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (status, code.to_owned()),
            "{content_type} {}",
            &body[..body.len().min(40)]
        );
    }
    assert_eq!(counts(&env).await, (0, 0), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_enqueue_undoes_the_save() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;
    // Break the queue: the fair queue's ticket hash becomes a string, so every enqueue fails
    // with WRONGTYPE.
    let data_key = format!(
        "{}:items",
        fuze_shared::keys::Keys::new(env.prefix.clone()).fair("scrape")
    );
    let mut conn = fuze_shared::redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");
    let _: () = redis::AsyncCommands::set(&mut conn, &data_key, "not a hash")
        .await
        .expect("set");

    let res = api
        .post("/api/v1/bookmarks", &token)
        .json(&json!({"url": "https://example.com/"}))
        .send()
        .await
        .expect("req");
    assert_eq!(
        error_code(res).await,
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into())
    );
    assert_eq!(counts(&env).await, (0, 0), "the save was undone");

    // Once the queue works again, the same save goes through.
    let _: () = redis::AsyncCommands::del(&mut conn, &data_key)
        .await
        .expect("del");
    let (status, _) = api.save(&token, "https://example.com/").await;
    assert_eq!(status, 202);
    assert_eq!(counts(&env).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_never_see_each_others_bookmarks_or_jobs() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let (status, saved) = api.save(&alice, "https://example.com/private").await;
    assert_eq!(status, 202);
    let bookmark = saved["bookmark"]["id"].as_str().expect("id").to_owned();
    let job = saved["job"]["id"].as_str().expect("id").to_owned();

    let not_found = [
        api.get(&format!("/api/v1/bookmarks/{bookmark}"), &bob),
        api.patch(&format!("/api/v1/bookmarks/{bookmark}"), &bob)
            .json(&json!({"title": "mine now"})),
        api.delete(&format!("/api/v1/bookmarks/{bookmark}"), &bob),
        api.get(&format!("/api/v1/jobs/{job}"), &bob),
        api.get("/api/v1/bookmarks/not-a-uuid", &alice),
        api.get("/api/v1/jobs/no-such-job", &alice),
    ];
    for req in not_found {
        let res = req.send().await.expect("req");
        assert_eq!(
            error_code(res).await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }
    let list: Value = api
        .get("/api/v1/bookmarks", &bob)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"], json!([]), "bob's list is empty");
    // Bob saving the same URL gets his own bookmark, not Alice's.
    let (status, his) = api.save(&bob, "https://example.com/private").await;
    assert_eq!(status, 202);
    assert_ne!(his["bookmark"]["id"], saved["bookmark"]["id"]);
    // Alice's bookmark is untouched.
    let mine: Value = api
        .get(&format!("/api/v1/bookmarks/{bookmark}"), &alice)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(mine["title"], Value::Null);
    assert_eq!(env.count("saved_content").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_can_be_edited_listed_in_pages_and_deleted() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, saved) = api.save(&token, &format!("https://example.com/{i}")).await;
        assert_eq!(status, 202);
        ids.push(saved["bookmark"]["id"].as_str().expect("id").to_owned());
    }
    // Keyset pages of 2, newest first, no overlap, no gap.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/bookmarks?limit=2&cursor={c}"),
            None => "/api/v1/bookmarks?limit=2".to_owned(),
        };
        let page: Value = api
            .get(&path, &token)
            .send()
            .await
            .expect("req")
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().expect("items");
        seen.extend(
            items
                .iter()
                .map(|b| b["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    for bad in [
        "/api/v1/bookmarks?limit=0",
        "/api/v1/bookmarks?limit=1000",
        "/api/v1/bookmarks?cursor=xyz",
        "/api/v1/bookmarks?limit=abc",
    ] {
        let res = api.get(bad, &token).send().await.expect("req");
        assert_eq!(error_code(res).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // PATCH: set, clear with null, reject unknown fields and empty patches.
    let path = format!("/api/v1/bookmarks/{}", ids[0]);
    let edited: Value = api
        .patch(&path, &token)
        .json(&json!({"title": "Mine", "notes": "read later"}))
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (edited["title"].as_str(), edited["notes"].as_str()),
        (Some("Mine"), Some("read later"))
    );
    let cleared: Value = api
        .patch(&path, &token)
        .json(&json!({"notes": null}))
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (cleared["title"].as_str(), cleared["notes"].as_str()),
        (Some("Mine"), None)
    );
    for (body, code) in [
        (json!({}), "empty_patch"),
        (json!({"colour": "red"}), "invalid_body"),
        (json!({"title": "t".repeat(501)}), "invalid_field"),
    ] {
        let res = api
            .patch(&path, &token)
            .json(&body)
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (StatusCode::UNPROCESSABLE_ENTITY, code.to_owned()),
            "{body}"
        );
    }
    let unchanged: Value = api
        .get(&path, &token)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(
        unchanged["title"], "Mine",
        "rejected patches changed nothing"
    );

    let res = api.delete(&path, &token).send().await.expect("req");
    assert_eq!(res.status(), 204);
    let res = api.get(&path, &token).send().await.expect("req");
    assert_eq!(res.status(), 404);
    assert_eq!(env.count("saved_content").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_polling_is_cheap_with_etags() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[("FUZE_JOB_POLL_INTERVAL_MS", "750")]).await;
    let (_, token) = env.user().await;
    let (_, saved) = api.save(&token, "https://example.com/etag").await;
    let job_id = saved["job"]["id"].as_str().expect("id");
    let path = format!("/api/v1/jobs/{job_id}");

    let first = api.get(&path, &token).send().await.expect("req");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-cache");
    assert_eq!(first.headers()["retry-after"], "1");
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let body: Value = first.json().await.expect("json");
    for field in [
        "id",
        "kind",
        "state",
        "attempts",
        "error",
        "created_at",
        "updated_at",
        "bookmark_id",
    ] {
        assert!(body.get(field).is_some(), "job has {field}: {body}");
    }
    assert_eq!(body["state"], "queued");
    assert_eq!(body["poll_after_ms"], 750);

    let again = api
        .get(&path, &token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("req");
    assert_eq!(again.status(), 304);
    assert_eq!(again.text().await.expect("body"), "");

    // Any change to the job changes its ETag.
    sqlx::query(
        "UPDATE jobs SET state = 'running', attempts = 1, updated_at = now() WHERE id = $1",
    )
    .bind(job_id)
    .execute(&env.pool)
    .await
    .expect("update");
    let changed = api
        .get(&path, &token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("req");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_users_and_health_endpoints_answer() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let created = api
        .post("/api/v1/admin/users", "test-admin-token")
        .json(&json!({"email": "New@Example.com"}))
        .send()
        .await
        .expect("req");
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.expect("json");
    let token = user["token"].as_str().expect("token");
    let res = api
        .get("/api/v1/bookmarks", token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200, "the new token works");
    let dup = api
        .post("/api/v1/admin/users", "test-admin-token")
        .json(&json!({"email": "new@example.com"}))
        .send()
        .await
        .expect("req");
    assert_eq!(
        error_code(dup).await,
        (StatusCode::CONFLICT, "conflict".into())
    );
    let bad = api
        .post("/api/v1/admin/users", "test-admin-token")
        .json(&json!({"email": "nope"}))
        .send()
        .await
        .expect("req");
    assert_eq!(
        error_code(bad).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email".into())
    );

    assert_eq!(
        api.http
            .get(api.url("/healthz"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        api.http
            .get(api.url("/readyz"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    let metrics = api.metrics_text().await;
    assert!(
        metrics.contains("fuze_http_requests_total{method=\"POST\",route=\"/api/v1/admin/users\",status=\"201\"} 1"),
        "{metrics}"
    );
    let missing = api.http.get(api.url("/nope")).send().await.expect("req");
    assert_eq!(
        error_code(missing).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}

/// NUL characters and forged cursors are the client's mistake: a clear 4xx, never a 500, and
/// nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_and_forged_cursors_get_clear_errors() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;
    let before = counts(&env).await;
    for body in [
        json!({"url": "https://example.com/a", "title": "nul\u{0}title"}),
        json!({"url": "https://example.com/b", "notes": "nul\u{0}notes"}),
    ] {
        let res = api
            .post("/api/v1/bookmarks", &token)
            .json(&body)
            .send()
            .await
            .expect("save");
        let (status, code) = error_code(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "{body}"
        );
    }
    let res = api
        .post("/api/v1/projects", &token)
        .json(&json!({"name": "nul\u{0}name"}))
        .send()
        .await
        .expect("project");
    let (status, code) = error_code(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    for path in ["/api/v1/search?q=a%00b", "/api/v1/recommendations?q=a%00b"] {
        let (status, code) = error_code(api.get(path, &token).send().await.expect("query")).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{path}"
        );
    }
    let res = api
        .post("/api/v1/admin/users", "test-admin-token")
        .json(&json!({"email": "a\u{0}@example.com"}))
        .send()
        .await
        .expect("admin");
    let (status, code) = error_code(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email")
    );
    assert_eq!(counts(&env).await, before, "nothing was written");

    // Cursors are opaque, but a client can still forge one: a time PostgreSQL cannot store, or
    // an id with a NUL in it.
    let ancient = chrono::DateTime::from_timestamp(-300_000_000_000, 0).expect("chrono allows it");
    let now = chrono::Utc::now();
    let forged = [
        fuze_shared::keyset::encode(ancient, &uuid::Uuid::new_v4().to_string()),
        fuze_shared::keyset::encode(now, "01M94KKBTRG4GBQA9XHC\u{0}ZHK79C"),
    ];
    for cursor in &forged {
        for path in ["/api/v1/bookmarks", "/api/v1/projects"] {
            let res = api
                .get(&format!("{path}?cursor={cursor}"), &token)
                .send()
                .await
                .expect("list");
            let (status, code) = error_code(res).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::BAD_REQUEST, "invalid_cursor"),
                "{path}"
            );
        }
        let res = api
            .get(
                &format!("/api/v1/admin/jobs?cursor={cursor}"),
                "test-admin-token",
            )
            .send()
            .await
            .expect("admin jobs");
        let (status, code) = error_code(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_cursor")
        );
    }
}

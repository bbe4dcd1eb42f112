//! Projects and their tasks over HTTP: CRUD, keyset pagination, validation (bad input writes
//! nothing), per-user isolation on every route, cascade on delete and invalidation events.

use std::{sync::mpsc, time::Duration};

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
    (status, code)
}

/// Sends the request, checks the status and returns the JSON reply.
async fn expect_json(req: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let res = req.send().await.expect("request");
    let got = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn create_project(api: &TestApi, token: &str, body: Value) -> Value {
    expect_json(
        api.post("/api/v1/projects", token).json(&body),
        StatusCode::CREATED,
    )
    .await
}

async fn create_task(api: &TestApi, token: &str, project: &str, body: Value) -> Value {
    expect_json(
        api.post(&format!("/api/v1/projects/{project}/tasks"), token)
            .json(&body),
        StatusCode::CREATED,
    )
    .await
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

async fn counts(env: &TestEnv) -> (i64, i64) {
    (env.count("projects").await, env.count("tasks").await)
}

/// Follows `next_cursor` with pages of `limit`; returns the ids in order.
async fn walk(api: &TestApi, token: &str, path: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let page = expect_json(api.get(&url, token), StatusCode::OK).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit as usize, "{page}");
        seen.extend(items.iter().map(id));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_and_tasks_round_trip() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;

    let project = create_project(
        &api,
        &token,
        json!({"name": "  Garden  ", "description": "spring jobs"}),
    )
    .await;
    assert_eq!(project["name"], "Garden", "names are trimmed");
    assert_eq!(project["description"], "spring jobs");
    for field in ["id", "created_at", "updated_at"] {
        assert!(project.get(field).is_some(), "{field} in {project}");
    }
    let pid = id(&project);
    let ppath = format!("/api/v1/projects/{pid}");
    assert_eq!(
        expect_json(api.get(&ppath, &token), StatusCode::OK).await,
        project
    );

    // PATCH: absent leaves, a value sets, null clears.
    let renamed = expect_json(
        api.patch(&ppath, &token)
            .json(&json!({"name": "Allotment"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&renamed["name"], &renamed["description"]),
        (&json!("Allotment"), &json!("spring jobs"))
    );
    let cleared = expect_json(
        api.patch(&ppath, &token)
            .json(&json!({"description": null})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&cleared["name"], &cleared["description"]),
        (&json!("Allotment"), &Value::Null)
    );
    assert_eq!(
        expect_json(api.get(&ppath, &token), StatusCode::OK).await,
        cleared
    );

    // Tasks.
    let task = create_task(&api, &token, &pid, json!({"title": "Dig"})).await;
    assert_eq!(task["title"], "Dig");
    assert_eq!(task["done"], false, "done defaults to false");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["project_id"], json!(pid));
    let other = create_task(
        &api,
        &token,
        &pid,
        json!({"title": "Sow", "description": "carrots", "done": true}),
    )
    .await;
    assert_eq!(
        (&other["done"], &other["description"]),
        (&json!(true), &json!("carrots"))
    );
    let tpath = format!("/api/v1/projects/{pid}/tasks/{}", id(&task));
    assert_eq!(
        expect_json(api.get(&tpath, &token), StatusCode::OK).await,
        task
    );
    let done = expect_json(
        api.patch(&tpath, &token)
            .json(&json!({"done": true, "description": "deep"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&done["title"], &done["done"], &done["description"]),
        (&json!("Dig"), &json!(true), &json!("deep"))
    );
    let retitled = expect_json(
        api.patch(&tpath, &token)
            .json(&json!({"title": "Dig deeper", "description": null, "done": false})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            &retitled["title"],
            &retitled["done"],
            &retitled["description"]
        ),
        (&json!("Dig deeper"), &json!(false), &Value::Null)
    );
    let list = expect_json(
        api.get(&format!("/api/v1/projects/{pid}/tasks"), &token),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"], json!([other, retitled]), "newest first");
    assert_eq!(list["next_cursor"], Value::Null);

    let res = api.delete(&tpath, &token).send().await.expect("req");
    assert_eq!(res.status(), 204);
    for req in [
        api.get(&tpath, &token),
        api.patch(&tpath, &token).json(&json!({"done": true})),
        api.delete(&tpath, &token),
    ] {
        let res = req.send().await.expect("req");
        assert_eq!(
            error_code(res).await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }
    assert_eq!(counts(&env).await, (1, 1));

    let projects = expect_json(api.get("/api/v1/projects", &token), StatusCode::OK).await;
    assert_eq!(projects["items"], json!([cleared]));
    let res = api.delete(&ppath, &token).send().await.expect("req");
    assert_eq!(res.status(), 204);
    let res = api.get(&ppath, &token).send().await.expect("req");
    assert_eq!(res.status(), 404);
    assert_eq!(counts(&env).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_and_tasks_list_in_pages_without_gaps_or_overlap() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;
    let mut projects = Vec::new();
    for i in 0..5 {
        projects.push(id(&create_project(
            &api,
            &token,
            json!({"name": format!("p{i}")}),
        )
        .await));
    }
    // Same created_at for several rows: the id breaks the tie, so nothing is skipped or repeated.
    sqlx::query(
        "UPDATE projects SET created_at = '2026-01-01T00:00:00Z' WHERE name IN ('p1', 'p2', 'p3')",
    )
    .execute(&env.pool)
    .await
    .expect("update");
    let seen = walk(&api, &token, "/api/v1/projects", 2).await;
    let expected: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM projects ORDER BY created_at DESC, id DESC")
            .fetch_all(&env.pool)
            .await
            .expect("ids");
    assert_eq!(seen, expected);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "every project exactly once");
    assert_eq!(walk(&api, &token, "/api/v1/projects", 5).await, seen);
    assert_eq!(walk(&api, &token, "/api/v1/projects", 100).await, seen);

    let pid = &projects[0];
    let tasks_path = format!("/api/v1/projects/{pid}/tasks");
    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(id(&create_task(
            &api,
            &token,
            pid,
            json!({"title": format!("t{i}")}),
        )
        .await));
    }
    // Tasks of another project never show up here.
    create_task(&api, &token, &projects[1], json!({"title": "elsewhere"})).await;
    let newest_first: Vec<String> = tasks.iter().rev().cloned().collect();
    assert_eq!(walk(&api, &token, &tasks_path, 2).await, newest_first);
    assert_eq!(walk(&api, &token, &tasks_path, 1).await, newest_first);
    assert_eq!(walk(&api, &token, &tasks_path, 5).await, newest_first);

    // An empty project lists as an empty page.
    let empty = &projects[4];
    let page = expect_json(
        api.get(&format!("/api/v1/projects/{empty}/tasks"), &token),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page, json!({"items": [], "next_cursor": null}));

    for base in ["/api/v1/projects".to_owned(), tasks_path] {
        for bad in [
            "limit=0",
            "limit=1000",
            "cursor=xyz",
            "limit=abc",
            "colour=red",
        ] {
            let res = api
                .get(&format!("{base}?{bad}"), &token)
                .send()
                .await
                .expect("req");
            assert_eq!(
                error_code(res).await.0,
                StatusCode::BAD_REQUEST,
                "{base}?{bad}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_gets_clear_errors_and_writes_nothing() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(
        &env,
        &[
            ("FUZE_MAX_PROJECT_NAME_CHARS", "10"),
            ("FUZE_MAX_DESCRIPTION_CHARS", "20"),
            ("FUZE_MAX_TASK_TITLE_CHARS", "15"),
        ],
    )
    .await;
    let (_, token) = env.user().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;

    let bad_projects: Vec<(Value, &str)> = vec![
        (json!({}), "invalid_body"),
        (json!({"name": null}), "invalid_body"),
        (json!({"name": 42}), "invalid_body"),
        (json!({"name": "ok", "colour": "red"}), "invalid_body"),
        (json!(["ok"]), "invalid_body"),
        (json!({"name": ""}), "invalid_field"),
        (json!({"name": "   "}), "invalid_field"),
        (json!({"name": "n".repeat(11)}), "invalid_field"),
        (
            json!({"name": "ok", "description": "d".repeat(21)}),
            "invalid_field",
        ),
    ];
    for (body, code) in &bad_projects {
        let res = api
            .post("/api/v1/projects", &token)
            .json(body)
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (unprocessable, (*code).to_owned()),
            "{body}"
        );
    }
    let res = api
        .post("/api/v1/projects", &token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("req");
    assert_eq!(
        error_code(res).await,
        (StatusCode::BAD_REQUEST, "malformed_json".into())
    );
    assert_eq!(counts(&env).await, (0, 0), "nothing was written");

    // The limits are the configured ones: exactly at the bound is fine.
    let project = create_project(
        &api,
        &token,
        json!({"name": "n".repeat(10), "description": "d".repeat(20)}),
    )
    .await;
    let pid = id(&project);
    let ppath = format!("/api/v1/projects/{pid}");
    let tasks_path = format!("{ppath}/tasks");

    let bad_tasks: Vec<(Value, &str)> = vec![
        (json!({}), "invalid_body"),
        (json!({"title": null}), "invalid_body"),
        (json!({"title": "ok", "done": "yes"}), "invalid_body"),
        (json!({"title": "ok", "project_id": pid}), "invalid_body"),
        (json!({"title": " "}), "invalid_field"),
        (json!({"title": "t".repeat(16)}), "invalid_field"),
        (
            json!({"title": "ok", "description": "d".repeat(21)}),
            "invalid_field",
        ),
    ];
    for (body, code) in &bad_tasks {
        let res = api
            .post(&tasks_path, &token)
            .json(body)
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (unprocessable, (*code).to_owned()),
            "{body}"
        );
    }
    assert_eq!(counts(&env).await, (1, 0), "no task was written");
    let task = create_task(&api, &token, &pid, json!({"title": "t".repeat(15)})).await;
    let tpath = format!("{tasks_path}/{}", id(&task));

    let bad_project_patches: Vec<(Value, &str)> = vec![
        (json!({}), "empty_patch"),
        (json!({"name": null}), "invalid_field"),
        (json!({"name": ""}), "invalid_field"),
        (json!({"name": "n".repeat(11)}), "invalid_field"),
        (json!({"description": "d".repeat(21)}), "invalid_field"),
        (json!({"name": "ok", "user_id": pid}), "invalid_body"),
        (json!({"name": 1}), "invalid_body"),
    ];
    for (body, code) in &bad_project_patches {
        let res = api
            .patch(&ppath, &token)
            .json(body)
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (unprocessable, (*code).to_owned()),
            "{body}"
        );
    }
    let bad_task_patches: Vec<(Value, &str)> = vec![
        (json!({}), "empty_patch"),
        (json!({"title": null}), "invalid_field"),
        (json!({"done": null}), "invalid_field"),
        (json!({"title": "  "}), "invalid_field"),
        (json!({"title": "t".repeat(16)}), "invalid_field"),
        (json!({"description": "d".repeat(21)}), "invalid_field"),
        (json!({"done": "yes"}), "invalid_body"),
        (json!({"done": true, "project_id": pid}), "invalid_body"),
    ];
    for (body, code) in &bad_task_patches {
        let res = api
            .patch(&tpath, &token)
            .json(body)
            .send()
            .await
            .expect("req");
        assert_eq!(
            error_code(res).await,
            (unprocessable, (*code).to_owned()),
            "{body}"
        );
    }
    // Rejected requests changed nothing.
    assert_eq!(counts(&env).await, (1, 1));
    assert_eq!(
        expect_json(api.get(&ppath, &token), StatusCode::OK).await,
        project
    );
    assert_eq!(
        expect_json(api.get(&tpath, &token), StatusCode::OK).await,
        task
    );
    // A malformed id names nothing.
    for path in [
        "/api/v1/projects/not-a-uuid".to_owned(),
        "/api/v1/projects/not-a-uuid/tasks".to_owned(),
        format!("{tasks_path}/not-a-uuid"),
    ] {
        let res = api.get(&path, &token).send().await.expect("req");
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_projects_and_tasks_are_not_found_on_every_route() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let project = create_project(&api, &alice, json!({"name": "secret"})).await;
    let pid = id(&project);
    let task = create_task(&api, &alice, &pid, json!({"title": "hidden"})).await;
    let tid = id(&task);
    let bobs = create_project(&api, &bob, json!({"name": "bob's"})).await;
    let bobs_pid = id(&bobs);
    let ppath = format!("/api/v1/projects/{pid}");
    let tasks_path = format!("{ppath}/tasks");
    let tpath = format!("{tasks_path}/{tid}");
    // Alice's task under Bob's project: the pair must match too.
    let crossed = format!("/api/v1/projects/{bobs_pid}/tasks/{tid}");

    let not_found = [
        api.get(&ppath, &bob),
        api.patch(&ppath, &bob).json(&json!({"name": "mine now"})),
        api.delete(&ppath, &bob),
        api.get(&tasks_path, &bob),
        api.post(&tasks_path, &bob)
            .json(&json!({"title": "planted"})),
        api.get(&tpath, &bob),
        api.patch(&tpath, &bob).json(&json!({"done": true})),
        api.delete(&tpath, &bob),
        api.get(&crossed, &bob),
        api.patch(&crossed, &bob).json(&json!({"done": true})),
        api.delete(&crossed, &bob),
        api.get(&format!("/api/v1/projects/{bobs_pid}/tasks/{tid}"), &alice),
    ];
    for req in not_found {
        let req = req.build().expect("request");
        let what = format!("{} {}", req.method(), req.url().path());
        let res = api.http.execute(req).await.expect("req");
        assert_eq!(
            error_code(res).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "{what}"
        );
    }
    let list = expect_json(api.get("/api/v1/projects", &bob), StatusCode::OK).await;
    assert_eq!(list["items"], json!([bobs]), "bob sees only his project");
    let list = expect_json(
        api.get(&format!("/api/v1/projects/{bobs_pid}/tasks"), &bob),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"], json!([]));

    // Alice's data is untouched.
    assert_eq!(counts(&env).await, (2, 1));
    assert_eq!(
        expect_json(api.get(&ppath, &alice), StatusCode::OK).await,
        project
    );
    assert_eq!(
        expect_json(api.get(&tpath, &alice), StatusCode::OK).await,
        task
    );
    // And the routes require a token at all.
    for path in [&ppath, &tasks_path, &tpath] {
        let res = api.http.get(api.url(path)).send().await.expect("req");
        assert_eq!(res.status(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_project_deletes_its_tasks() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (_, token) = env.user().await;
    let doomed = id(&create_project(&api, &token, json!({"name": "doomed"})).await);
    let kept = id(&create_project(&api, &token, json!({"name": "kept"})).await);
    let mut doomed_tasks = Vec::new();
    for i in 0..3 {
        doomed_tasks.push(id(&create_task(
            &api,
            &token,
            &doomed,
            json!({"title": format!("t{i}")}),
        )
        .await));
    }
    let kept_task = id(&create_task(&api, &token, &kept, json!({"title": "stays"})).await);
    assert_eq!(counts(&env).await, (2, 4));

    let res = api
        .delete(&format!("/api/v1/projects/{doomed}"), &token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 204);
    assert_eq!(counts(&env).await, (1, 1));
    let left: Vec<String> = sqlx::query_scalar("SELECT id::text FROM tasks")
        .fetch_all(&env.pool)
        .await
        .expect("tasks");
    assert_eq!(left, vec![kept_task]);
    let res = api
        .get(&format!("/api/v1/projects/{doomed}/tasks"), &token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 404);
    let res = api
        .get(
            &format!("/api/v1/projects/{doomed}/tasks/{}", doomed_tasks[0]),
            &token,
        )
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 404);
    let res = api
        .delete(&format!("/api/v1/projects/{doomed}"), &token)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 404, "deleting twice finds nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_publish_project_changed_events() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let (user_id, token) = env.user().await;
    let channel = fuze_shared::keys::Keys::new(env.prefix.clone()).events_channel();

    // A blocking subscriber on its own thread (the sync client needs no extra dependency).
    let (ready_tx, ready_rx) = mpsc::channel();
    let (msg_tx, msg_rx) = mpsc::channel::<String>();
    let client = redis::Client::open(env.redis_url.as_str()).expect("redis url");
    std::thread::spawn(move || {
        let mut conn = client.get_connection().expect("redis");
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&channel).expect("subscribe");
        pubsub
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        ready_tx.send(()).expect("ready");
        while let Ok(msg) = pubsub.get_message() {
            let payload: String = msg.get_payload().expect("payload");
            if msg_tx.send(payload).is_err() {
                break;
            }
        }
    });
    tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("subscribed");

    let pid = id(&create_project(&api, &token, json!({"name": "p"})).await);
    let tid = id(&create_task(&api, &token, &pid, json!({"title": "t"})).await);
    let tpath = format!("/api/v1/projects/{pid}/tasks/{tid}");
    let ppath = format!("/api/v1/projects/{pid}");
    expect_json(
        api.patch(&tpath, &token).json(&json!({"done": true})),
        StatusCode::OK,
    )
    .await;
    expect_json(
        api.patch(&ppath, &token).json(&json!({"name": "q"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        api.delete(&tpath, &token)
            .send()
            .await
            .expect("req")
            .status(),
        204
    );
    assert_eq!(
        api.delete(&ppath, &token)
            .send()
            .await
            .expect("req")
            .status(),
        204
    );

    let got = tokio::task::spawn_blocking(move || {
        (0..6)
            .map(|_| msg_rx.recv_timeout(Duration::from_secs(10)).expect("event"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    let expected = json!({"type": "project_changed", "user_id": user_id, "project_id": pid});
    for payload in got {
        let event: Value = serde_json::from_str(&payload).expect("event JSON");
        assert_eq!(event, expected);
    }
}

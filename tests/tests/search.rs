//! Search: the query is embedded by a worker over the query lane and fused with the indexed
//! keyword ranking (exact titles first); results are per user and cached; with no worker the api
//! answers from the keyword index and says so.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use serde_json::Value;

const PAGES: [(&str, &str); 3] = [
    (
        "Sourdough bread at home",
        "Feed the starter with flour and water, let the dough rise overnight, shape the loaf and bake it in a hot oven until the crust is dark.",
    ),
    (
        "Kubernetes cluster autoscaling",
        "The cluster autoscaler adds nodes when pods cannot be scheduled and removes underused nodes; the horizontal pod autoscaler scales deployments on CPU.",
    ),
    (
        "Marathon training plan",
        "Build weekly mileage slowly, add one long run each weekend, include tempo runs and rest days, and taper in the last three weeks before the race.",
    ),
];

async fn search(api: &TestApi, token: &str, q: &str) -> (u16, Value) {
    search_with(api, token, q, "").await
}

/// A search with more parameters (`&mode=...`).
async fn search_with(api: &TestApi, token: &str, q: &str, more: &str) -> (u16, Value) {
    let res = api
        .get(
            &format!(
                "/api/v1/search?q={}{more}",
                url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            ),
            token,
        )
        .send()
        .await
        .expect("search");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_the_closest_bookmark_per_user_and_caches_it() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    for (title, body) in PAGES {
        api.save_ready(&alice, &pages.doc_url(title, body), Duration::from_secs(30))
            .await;
    }

    for (q, expected) in [
        ("how do I bake bread", "Sourdough bread at home"),
        (
            "scaling container workloads",
            "Kubernetes cluster autoscaling",
        ),
        ("running a long distance race", "Marathon training plan"),
    ] {
        let (status, results) = search_with(&api, &alice, q, "&mode=semantic").await;
        assert_eq!(status, 200, "{results}");
        assert_eq!(results["mode"], "semantic", "{results}");
        assert_eq!(
            results["items"][0]["bookmark"]["title"], expected,
            "{q}: {results}"
        );
        assert_eq!(results["items"].as_array().map(Vec::len), Some(3));
        let top = results["items"][0]["score"].as_f64().expect("score");
        let second = results["items"][1]["score"].as_f64().expect("score");
        assert!(top > second, "{results}");
    }

    // Hybrid, the default, finds the same pages first.
    let (_, hybrid) = search(&api, &alice, "how do I bake bread").await;
    assert_eq!(hybrid["mode"], "hybrid", "{hybrid}");
    assert_eq!(
        hybrid["items"][0]["bookmark"]["title"],
        "Sourdough bread at home"
    );

    // The same query again comes from the cache.
    let before: Value = api
        .get("/api/v1/admin/cache/stats", "test-admin-token")
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let (_, again) = search(&api, &alice, "how do I bake bread").await;
    assert_eq!(
        again["items"][0]["bookmark"]["title"],
        "Sourdough bread at home"
    );
    let after: Value = api
        .get("/api/v1/admin/cache/stats", "test-admin-token")
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert!(
        after["l1"]["hits"].as_u64() > before["l1"]["hits"].as_u64(),
        "{after}"
    );

    // Bob has no bookmarks: his search finds nothing of Alice's.
    let (status, theirs) = search(&api, &bob, "how do I bake bread").await;
    assert_eq!(status, 200);
    assert_eq!(theirs["items"], serde_json::json!([]), "{theirs}");

    for bad in [
        "/api/v1/search?q=",
        "/api/v1/search?q=x&limit=0",
        "/api/v1/search?q=x&limit=51",
        "/api/v1/search",
        "/api/v1/search?q=x&mode=fuzzy",
    ] {
        let res = api.get(bad, &alice).send().await.expect("search");
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_workers_search_falls_back_to_keywords_and_says_so() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[("FUZE_QUERY_EMBED_TIMEOUT_MS", "200")]).await;
    let (_, alice) = env.user().await;
    {
        let worker =
            WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
        for (title, body) in PAGES {
            let (_, saved) = api.save(&alice, &pages.doc_url(title, body)).await;
            api.wait_for_job(
                &alice,
                saved["job"]["id"].as_str().expect("id"),
                Duration::from_secs(30),
            )
            .await;
        }
        drop(worker);
    }
    let started = std::time::Instant::now();
    let (status, results) = search(&api, &alice, "sourdough starter").await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results["mode"], "keyword", "{results}");
    assert_eq!(
        results["items"][0]["bookmark"]["title"],
        "Sourdough bread at home"
    );
    assert_eq!(
        results["items"].as_array().map(Vec::len),
        Some(1),
        "{results}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fallback does not wait long"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_title_ranks_first_in_hybrid_mode_and_explain_says_why() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (_, alice) = env.user().await;
    // The band's page says "sourdough" once, in its title; the bread pages say it throughout,
    // so both rankings put bread first.
    let band = (
        "Sourdough",
        "The band announced a tour of twelve cities this spring, with new songs on a record out in May.",
    );
    let bread = (
        "Sourdough starter guide",
        "A sourdough starter is flour and water; feed the sourdough starter daily and bake sourdough bread when it bubbles.",
    );
    for (title, body) in [band, bread, PAGES[0], PAGES[1]] {
        api.save_ready(&alice, &pages.doc_url(title, body), Duration::from_secs(30))
            .await;
    }

    let (_, semantic) = search_with(&api, &alice, "sourdough", "&mode=semantic").await;
    assert_ne!(
        semantic["items"][0]["bookmark"]["title"], "Sourdough",
        "the test needs a page that semantic search alone does not put first: {semantic}"
    );
    let (status, hybrid) = search_with(&api, &alice, "Sourdough", "&explain=true").await;
    assert_eq!(status, 200, "{hybrid}");
    assert_eq!(hybrid["mode"], "hybrid", "{hybrid}");
    let top = &hybrid["items"][0];
    assert_eq!(top["bookmark"]["title"], "Sourdough", "{hybrid}");
    assert_eq!(top["explain"]["title_match"], 1.0, "{hybrid}");
    let second = &hybrid["items"][1]["explain"];
    assert!(second["keyword_rank"].as_u64().is_some(), "{hybrid}");
    assert!(second["semantic_similarity"].as_f64().is_some(), "{hybrid}");
    assert!(second["fused_score"].as_f64().is_some(), "{hybrid}");

    // Keyword mode: only pages with the word, titles first, no embedding involved.
    let (status, keyword) = search_with(&api, &alice, "sourdough", "&mode=keyword").await;
    assert_eq!(status, 200, "{keyword}");
    assert_eq!(keyword["mode"], "keyword", "{keyword}");
    let titles: Vec<&str> = keyword["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|hit| hit["bookmark"]["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles[0], "Sourdough", "{keyword}");
    assert_eq!(titles.len(), 3, "band, starter and bread pages: {keyword}");
    assert!(keyword["items"][0].get("explain").is_none(), "{keyword}");
}

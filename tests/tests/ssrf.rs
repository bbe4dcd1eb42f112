//! The scraper never reaches private, loopback or link-local targets, also after redirects.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

async fn assert_blocked(api: &TestApi, token: &str, url: &str) {
    let (status, saved) = api.save(token, url).await;
    assert_eq!(status, 202, "{url} is a valid URL to save: {saved}");
    let job = api
        .wait_for_job(
            token,
            saved["job"]["id"].as_str().expect("id"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["state"], "failed", "{url}: {job}");
    assert_eq!(job["error"]["code"], "blocked_target", "{url}: {job}");
    assert_eq!(
        job["attempts"], 1,
        "blocked targets are not retried: {url}: {job}"
    );
    // What users see names no internal address (the worker's log has the details).
    let message = job["error"]["message"].as_str().expect("error message");
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    for internal in [
        host.as_str(),
        "127.0.0.1",
        "::1",
        "169.254",
        "10.0.0.1",
        "resolves to",
    ] {
        assert!(
            internal.is_empty() || !message.contains(internal),
            "{url}: the message names {internal:?}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_targets_fail_with_blocked_target() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[]).await; // no allow-list (the default)
    let (_, token) = env.user().await;
    let pages = PageServer::start().await;
    let forbidden = [
        pages.url("/page/local"), // a real server on 127.0.0.1: still refused
        "http://127.0.0.1/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://2130706433/".to_owned(),
        "http://0177.0.0.1/".to_owned(),
        "http://0x7f.1/".to_owned(),
        "http://localhost/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
    ];
    for (i, url) in forbidden.iter().enumerate() {
        // Several spellings normalize to one URL; a distinct query keeps them distinct bookmarks.
        assert_blocked(&api, &token, &format!("{url}?case={i}")).await;
    }
    assert_eq!(
        pages.hits("/page/local"),
        0,
        "the local server was never contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_forbidden_targets_are_refused() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    // Loopback allowed so the local server can play the public site; its redirects must still be checked.
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (_, token) = env.user().await;
    let pages = PageServer::start().await;
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://[::ffff:10.0.0.1]/",
    ] {
        assert_blocked(&api, &token, &pages.url(&format!("/redirect?to={target}"))).await;
    }
    // The same server with a redirect to an allowed page works, so the refusals above are the guard's.
    let (_, saved) = api
        .save(&token, &pages.url("/redirect?to=/page/fine"))
        .await;
    let job = api
        .wait_for_job(
            &token,
            saved["job"]["id"].as_str().expect("id"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_the_allow_list_names_is_reachable() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.2/32")]).await;
    let (_, token) = env.user().await;
    let listed = PageServer::start_on("127.0.0.2").await;
    let unlisted = PageServer::start_on("127.0.0.1").await;

    let (status, saved) = api.save(&token, &listed.url("/page/intranet")).await;
    assert_eq!(status, 202, "{saved}");
    let job = api
        .wait_for_job(
            &token,
            saved["job"]["id"].as_str().expect("id"),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        job["state"], "succeeded",
        "the listed address is reachable: {job}"
    );
    assert_eq!(listed.hits("/page/intranet"), 1);

    assert_blocked(&api, &token, &unlisted.url("/page/other")).await;
    assert_blocked(&api, &token, &listed.url("/redirect?to=http://127.0.0.1/")).await;
    assert_eq!(
        unlisted.hits("/page/other"),
        0,
        "the unlisted server was never contacted"
    );
}

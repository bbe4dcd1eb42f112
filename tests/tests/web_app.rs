//! The web app in a real browser (Debian's headless Chromium over WebDriver) against the real
//! api, worker, Postgres and Redis: sign in, save a link and watch it become ready without a
//! reload, import a file to 100 %, search, retry a failed job, and fit a phone's width. Each step
//! leaves a screenshot in `target/ui-screenshots/`.

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess, browser::Browser};
use serde_json::Value;

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const ONE_ATTEMPT: (&str, &str) = ("FUZE_JOB_MAX_ATTEMPTS", "1");
/// WebDriver's Enter key.
const ENTER: char = '\u{E007}';

/// Every stage label a bookmark row showed, in order, as the page changed it.
const RECORD_STAGES: &str = r#"
    window.fuzeSeenStages = [];
    window.fuzeNotReloaded = true;
    const list = document.getElementById('bookmarks');
    new MutationObserver(() => {
        for (const stage of list.querySelectorAll('.stage')) {
            const last = window.fuzeSeenStages[window.fuzeSeenStages.length - 1];
            if (stage.textContent && stage.textContent !== last) window.fuzeSeenStages.push(stage.textContent);
        }
    }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
    return true;
"#;

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// The bookmark's row shows `stage` as its label (`ready` once its job has finished).
fn labelled(url: &str, stage: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#bookmarks li.bookmark')]
            .some(li => li.textContent.includes({url:?}) && li.querySelector('.stage').textContent === {stage:?});"
    )
}

fn row_with(url: &str, status: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#bookmarks li.bookmark[data-status=\"{status}\"]')]
            .some(li => li.textContent.includes({url:?}));"
    )
}

/// Every resource the page loaded came from the api's own origin.
async fn assert_only_own_origin(browser: &Browser, api: &TestApi) {
    let origins = browser
        .eval(
            "return [...new Set(performance.getEntriesByType('resource')
                 .map(e => new URL(e.name).origin))];",
        )
        .await;
    assert_eq!(
        origins,
        serde_json::json!([api.base]),
        "requests went elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_saves_watches_imports_searches_and_retries_in_a_real_browser() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[ONE_ATTEMPT]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK, ONE_ATTEMPT]).await;
    let (_, token) = env.user().await;
    let browser = Browser::start(1280, 900).await;

    // Sign in.
    browser
        .client
        .goto(&api.url("/"))
        .await
        .expect("open the app");
    browser.find("#signin #token").await;
    browser.shot("01-sign-in").await;
    // Signing in and saving by keyboard alone: type, then Enter.
    type_into(&browser, "#token", &format!("{token}{ENTER}")).await;
    browser
        .wait_for(
            "the app after signing in",
            "return !document.getElementById('app').hidden;",
        )
        .await;
    browser
        .wait_for(
            "the event stream",
            "return document.getElementById('live-status').textContent === 'live';",
        )
        .await;

    // Save a link and watch it become ready, with no reload.
    browser.eval(RECORD_STAGES).await;
    let glacier = pages.doc_url(
        "Glacier travel for beginners",
        "Crampons and an ice axe keep you steady on a glacier. Rope teams cross snow bridges \
         over crevasses, and the leader probes the snow ahead with a pole.",
    );
    type_into(&browser, "#save-url", &format!("{glacier}{ENTER}")).await;
    browser.shot("02-saving").await;
    browser
        .wait_for("the saved link to be ready", &row_with(&glacier, "ready"))
        .await;
    browser
        .wait_for("its job to finish", &labelled(&glacier, "ready"))
        .await;
    browser
        .wait_for(
            "the save form to say so",
            "return document.getElementById('save-status').textContent === 'Saved and ready.';",
        )
        .await;
    browser.shot("03-saved-ready").await;
    let not_reloaded = browser
        .eval("return window.fuzeNotReloaded === true;")
        .await;
    assert_eq!(not_reloaded, Value::Bool(true), "the page was reloaded");
    let seen = browser.eval("return window.fuzeSeenStages;").await;
    let seen: Vec<String> = serde_json::from_value(seen).expect("stage labels");
    assert!(
        seen.iter().any(|s| !s.starts_with("ready")),
        "no stage before ready was shown: {seen:?}"
    );
    assert!(
        seen.last().is_some_and(|s| s.starts_with("ready")),
        "{seen:?}"
    );

    // Import a small file: the bar reaches 100 % and the items appear.
    let sourdough = pages.doc_url(
        "Keeping a sourdough starter",
        "Feed the starter flour and water every day; a warm kitchen makes the yeast rise faster.",
    );
    let tides = pages.doc_url(
        "Tide pools of Brittany",
        "At low tide the rock pools hold crabs, anemones and small fish until the sea returns.",
    );
    let file = std::env::temp_dir().join(format!("fuze-import-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("{sourdough}\n{tides}\n")).expect("import file");
    browser
        .find("#import-file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("choose the file");
    browser.click("#import-form button[type=submit]").await;
    browser
        .wait_for(
            "the import bar at 100 %",
            "const bar = document.getElementById('import-progress');
             return !document.getElementById('import-box').hidden && bar.value === 100 && bar.max === 100;",
        )
        .await;
    let status = browser
        .eval("return document.getElementById('import-status').textContent;")
        .await;
    browser.shot("04-import-done").await;
    let _ = std::fs::remove_file(&file);
    assert!(
        status.as_str().is_some_and(|s| s.contains("2")),
        "import status: {status}"
    );
    browser
        .wait_for("the imported pages in the list", &row_with(&tides, "ready"))
        .await;

    // Search by meaning, then by keyword with the mode switch.
    type_into(&browser, "#search-q", "walking on ice with an axe").await;
    browser
        .wait_for(
            "a semantic hit",
            "return document.querySelector('#search-results li')?.textContent.includes('Glacier travel');",
        )
        .await;
    browser.shot("05-search").await;
    browser.click("#search-mode option[value=keyword]").await;
    type_into(&browser, "#search-q", "anemones").await;
    browser
        .wait_for(
            "a keyword hit",
            "const status = document.getElementById('search-status').textContent;
             return status.includes('keyword')
                 && document.querySelector('#search-results li')?.textContent.includes('Tide pools');",
        )
        .await;

    // A link whose site fails: its job shows up failed with a retry button; retried after the
    // site recovers, the bookmark becomes ready.
    pages.set_version(
        "flaky",
        "A page about flaky servers that answer errors for a while.",
    );
    pages.set_failing("flaky", true);
    let flaky = pages.url("/versioned/flaky");
    type_into(&browser, "#save-url", &flaky).await;
    browser.click("#save-form button[type=submit]").await;
    browser
        .wait_for("the failed save", &row_with(&flaky, "failed"))
        .await;
    browser.click("#jobs-state option[value=failed]").await;
    browser.find("#jobs button.retry").await;
    browser.shot("06-failed-job").await;
    pages.set_failing("flaky", false);
    browser.click("#jobs button.retry").await;
    browser
        .wait_for("the retried link to be ready", &row_with(&flaky, "ready"))
        .await;
    browser.shot("07-retried").await;
    browser
        .eval("window.scrollTo({top: 0, behavior: 'instant'}); return true;")
        .await;
    browser.shot("08-overview").await;

    // Nothing but the app's own origin was asked for anything.
    assert_only_own_origin(&browser, &api).await;

    // A phone's width: one column, nothing wider than the screen.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    let overflow = browser
        .wait_for(
            "the phone layout",
            "return window.innerWidth <= 400 ? [document.documentElement.scrollWidth, window.innerWidth] : null;",
        )
        .await;
    browser.shot("09-phone").await;
    assert!(
        overflow[0].as_u64() <= overflow[1].as_u64(),
        "the page scrolls sideways on a phone: {overflow}"
    );
    browser.close().await;
}

/// The API reference renders the document offline, from the locally installed Swagger UI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_renders_without_the_internet() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let browser = Browser::start(1280, 900).await;
    browser
        .client
        .goto(&api.url("/docs"))
        .await
        .expect("open /docs");
    browser
        .wait_for(
            "the rendered reference",
            "return document.querySelectorAll('.opblock').length;",
        )
        .await;
    let operations = browser
        .eval("return document.querySelectorAll('.opblock').length;")
        .await;
    assert!(operations.as_u64() > Some(40), "{operations}");
    browser.shot("10-api-reference").await;
    assert_only_own_origin(&browser, &api).await;
    browser.close().await;
}

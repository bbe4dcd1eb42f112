//! A local HTTP server with the pages the scraper fetches in tests.
//!
//! Routes: `/page/{name}` an article titled `name`; `/slow/{ms}/{name}` the same after a delay;
//! `/status/{code}`; `/flaky/{n}/{name}` 503 for the first `n` requests, then the article;
//! `/limited/{secs}/{n}/{name}` 429 with `Retry-After: secs` for the first `n` requests, then
//! the article; `/redirect?to=URL` a 302; `/image` a PNG; `/doc?title=&body=` a page with that
//! content; `/odd` a page with NUL characters and a 100,000-character description, `/odd.txt`
//! plain text with a NUL character;
//! `/long?title=&fact=` a long article (about 1,500 words on railway history) with the `fact`
//! paragraph three quarters of the way in;
//! `/robots.txt` whatever [`PageServer::set_robots`] set (404 until then);
//! `/versioned/{name}` the body [`PageServer::set_version`] set, with an `ETag` of its version,
//! 304 to a request that names that version, 500 while [`PageServer::set_failing`] says so.
//!
//! Each server counts requests per path and how many it was answering at once (the most ever).

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

pub struct PageServer {
    pub base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    load: Arc<Load>,
    robots: Arc<Mutex<Option<String>>>,
    versions: Versions,
}

/// The body and version number of each `/versioned/{name}` page, and whether it fails now.
#[derive(Debug, Clone, Default)]
struct Version {
    body: String,
    n: u32,
    failing: bool,
}

type Versions = Arc<Mutex<HashMap<String, Version>>>;

/// Requests being answered now, and the most at once so far.
#[derive(Default)]
struct Load {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts one request as in flight until dropped.
struct InFlight(Arc<Load>);

impl InFlight {
    fn start(load: &Arc<Load>) -> Self {
        let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
        load.peak.fetch_max(now, Ordering::SeqCst);
        Self(load.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn count_in_flight(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let load = req
        .app_data::<web::Data<Arc<Load>>>()
        .map(|l| l.get_ref().clone())
        .expect("load registered");
    let _in_flight = InFlight::start(&load);
    next.call(req).await
}

pub fn article(name: &str) -> String {
    format!(
        "<!doctype html><html><head><title>{name}</title>\
         <meta name=\"description\" content=\"About {name}\">\
         <link rel=\"canonical\" href=\"/canonical/{name}\"></head>\
         <body><nav><a href=\"/\">Home</a> | <a href=\"/about\">About</a></nav>\
         <article><h1>{name}</h1>\
         <p>{name} is the subject of this article. Async runtimes poll futures until they are ready; \
         a waker tells the executor when a task can make progress again.</p>\
         <p>Reactors wait on sockets with epoll, timers live in a wheel, and work-stealing schedulers \
         move tasks between threads so that every core stays busy.</p>\
         <p>Backpressure keeps queues bounded, and cancellation drops futures at their next await point.</p>\
         </article><footer>Copyright 2026</footer></body></html>"
    )
}

impl PageServer {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// A server on another loopback address (`127.0.0.2`, ...): a different host to the scraper.
    pub async fn start_on(ip: &str) -> Self {
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let load: Arc<Load> = Arc::default();
        let robots: Arc<Mutex<Option<String>>> = Arc::default();
        let versions: Versions = Arc::default();
        let versions_data = web::Data::new(versions.clone());
        let listener = TcpListener::bind((ip, 0)).expect("bind page server");
        let base = format!(
            "http://{ip}:{}",
            listener.local_addr().expect("addr").port()
        );
        let data = web::Data::new(hits.clone());
        let load_data = web::Data::new(load.clone());
        let robots_data = web::Data::new(robots.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(load_data.clone())
                .app_data(robots_data.clone())
                .app_data(versions_data.clone())
                .wrap(actix_web::middleware::from_fn(count_in_flight))
                .route("/robots.txt", web::get().to(robots_txt))
                .route("/limited/{secs}/{n}/{name}", web::get().to(limited))
                .route("/odd", web::get().to(odd))
                .route("/odd.txt", web::get().to(odd_text))
                .route("/page/{name}", web::get().to(page))
                .route("/slow/{ms}/{name}", web::get().to(slow))
                .route("/status/{code}", web::get().to(status))
                .route("/flaky/{n}/{name}", web::get().to(flaky))
                .route("/redirect", web::get().to(redirect))
                .route("/image", web::get().to(image))
                .route("/doc", web::get().to(doc))
                .route("/long", web::get().to(long))
                .route("/versioned/{name}", web::get().to(versioned))
        })
        .workers(1)
        // Many slow requests at once must all be in flight together: the politeness tests
        // count them, and a small backlog would queue them in the kernel instead.
        .max_connections(10_000)
        .backlog(4096)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            base,
            hits,
            load,
            robots,
            versions,
        }
    }

    /// `/versioned/{name}` serves this body from now on, under a new `ETag`.
    pub fn set_version(&self, name: &str, body: &str) {
        let mut versions = self.versions.lock().expect("versions lock");
        let version = versions.entry(name.to_owned()).or_default();
        version.body = body.to_owned();
        version.n += 1;
    }

    /// While `failing`, `/versioned/{name}` answers 500.
    pub fn set_failing(&self, name: &str, failing: bool) {
        let mut versions = self.versions.lock().expect("versions lock");
        versions.entry(name.to_owned()).or_default().failing = failing;
    }

    /// Serves this robots.txt from now on.
    pub fn set_robots(&self, text: &str) {
        *self.robots.lock().expect("robots lock") = Some(text.to_owned());
    }

    /// The most requests this server was answering at one time.
    pub fn peak_in_flight(&self) -> usize {
        self.load.peak.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A generated article page (`/doc`) with this title and body.
    pub fn doc_url(&self, title: &str, body: &str) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("title", title)
            .append_pair("body", body)
            .finish();
        self.url(&format!("/doc?{q}"))
    }

    /// A long generated article (`/long`) with `fact` in its second half.
    pub fn long_url(&self, title: &str, fact: &str) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("title", title)
            .append_pair("fact", fact)
            .finish();
        self.url(&format!("/long?{q}"))
    }

    /// How many times a path was requested.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .map(|h| h.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

type Hits = web::Data<Arc<Mutex<HashMap<String, usize>>>>;

fn count(hits: &Hits, req: &actix_web::HttpRequest) -> usize {
    let mut map = hits.lock().expect("hits lock");
    let n = map.entry(req.path().to_owned()).or_default();
    *n += 1;
    *n
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

async fn page(hits: Hits, req: actix_web::HttpRequest, name: web::Path<String>) -> HttpResponse {
    count(&hits, &req);
    html(article(&name))
}

async fn slow(
    hits: Hits,
    req: actix_web::HttpRequest,
    path: web::Path<(u64, String)>,
) -> HttpResponse {
    count(&hits, &req);
    tokio::time::sleep(Duration::from_millis(path.0)).await;
    html(article(&path.1))
}

async fn status(hits: Hits, req: actix_web::HttpRequest, code: web::Path<u16>) -> HttpResponse {
    count(&hits, &req);
    let code = actix_web::http::StatusCode::from_u16(*code).expect("valid status");
    HttpResponse::build(code)
        .content_type("text/html")
        .body("<html><body>status</body></html>")
}

async fn flaky(
    hits: Hits,
    req: actix_web::HttpRequest,
    path: web::Path<(usize, String)>,
) -> HttpResponse {
    if count(&hits, &req) <= path.0 {
        return HttpResponse::ServiceUnavailable().body("try again");
    }
    html(article(&path.1))
}

#[derive(Deserialize)]
struct RedirectQuery {
    to: String,
}

async fn redirect(
    hits: Hits,
    req: actix_web::HttpRequest,
    q: web::Query<RedirectQuery>,
) -> HttpResponse {
    count(&hits, &req);
    HttpResponse::Found()
        .insert_header(("location", q.to.clone()))
        .finish()
}

#[derive(Deserialize)]
struct DocQuery {
    title: String,
    body: String,
}

/// A page with the given title and paragraph, for tests that need distinct content.
async fn doc(hits: Hits, req: actix_web::HttpRequest, q: web::Query<DocQuery>) -> HttpResponse {
    count(&hits, &req);
    html(format!(
        "<!doctype html><html><head><title>{}</title></head><body><article><h1>{}</h1><p>{}</p>\
         <p>{}</p></article></body></html>",
        q.title, q.title, q.body, q.body
    ))
}

#[derive(Deserialize)]
struct LongQuery {
    title: String,
    fact: String,
}

/// Sentences of the long article's filler, combined differently in each paragraph.
const RAILWAY_SENTENCES: [&str; 12] = [
    "The first public railways carried coal from the pits to the canals and harbours.",
    "Engineers argued for years about the gauge, the distance between the two rails.",
    "Steam locomotives needed water towers every few miles along the line.",
    "Timetables forced towns to agree on a common time instead of keeping local noon.",
    "Viaducts and tunnels let the lines cross valleys and hills without steep gradients.",
    "Signal boxes used levers and interlocking so that two trains never got a clear path at once.",
    "Third class carriages made travel affordable for workers and their families.",
    "Freight yards sorted wagons by destination using gravity humps and shunting engines.",
    "Electrification replaced steam on busy suburban lines in the early twentieth century.",
    "Diesel engines took over branch lines where overhead wires did not pay for themselves.",
    "Nationalisation merged the private companies into a few large regional networks.",
    "High speed lines later brought the journey between capitals down to a few hours.",
];

/// A long article: 24 paragraphs of railway history, the fact as the 19th.
async fn long(hits: Hits, req: actix_web::HttpRequest, q: web::Query<LongQuery>) -> HttpResponse {
    count(&hits, &req);
    let mut body = String::new();
    for i in 0..24usize {
        if i == 18 {
            body.push_str(&format!("<p>{}</p>", q.fact));
        }
        let sentences: Vec<&str> = (0..5)
            .map(|k| RAILWAY_SENTENCES[(i * 7 + k * 5) % RAILWAY_SENTENCES.len()])
            .collect();
        body.push_str(&format!(
            "<p>Part {} of the story. {}</p>",
            i + 1,
            sentences.join(" ")
        ));
    }
    html(format!(
        "<!doctype html><html><head><title>{}</title></head><body><article><h1>{}</h1>{body}\
         </article></body></html>",
        q.title, q.title
    ))
}

type Robots = web::Data<Arc<Mutex<Option<String>>>>;

async fn robots_txt(hits: Hits, robots: Robots, req: actix_web::HttpRequest) -> HttpResponse {
    count(&hits, &req);
    match robots.lock().expect("robots lock").clone() {
        Some(text) => HttpResponse::Ok().content_type("text/plain").body(text),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn limited(
    hits: Hits,
    req: actix_web::HttpRequest,
    path: web::Path<(u64, usize, String)>,
) -> HttpResponse {
    let (secs, n, name) = path.into_inner();
    if count(&hits, &req) <= n {
        return HttpResponse::TooManyRequests()
            .insert_header(("retry-after", secs.to_string()))
            .content_type("text/html")
            .body("<html><body><h1>Slow down</h1><p>Too many requests.</p></body></html>");
    }
    html(article(&name))
}

/// NUL characters in the title and text, and a description far longer than any cap.
async fn odd(hits: Hits, req: actix_web::HttpRequest) -> HttpResponse {
    count(&hits, &req);
    let description = "long ".repeat(20_000);
    html(format!(
        "<!doctype html><html><head><title>Odd\u{0}page</title>\
         <meta name=\"description\" content=\"{description}\"></head>\
         <body><article><h1>Odd page</h1><p>Text with a NUL\u{0}in the middle, and enough \
         words around it that the extractor keeps this paragraph as the page's main text.</p>\
         </article></body></html>"
    ))
}

/// Plain text keeps what the HTML parser would have replaced: here a NUL character.
async fn odd_text(hits: Hits, req: actix_web::HttpRequest) -> HttpResponse {
    count(&hits, &req);
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Plain notes with a NUL\u{0}in the middle of a line of text.")
}

async fn image(hits: Hits, req: actix_web::HttpRequest) -> HttpResponse {
    count(&hits, &req);
    HttpResponse::Ok()
        .content_type("image/png")
        .body(vec![0x89, b'P', b'N', b'G'])
}

/// The page's current version: 500 while failing, 304 when the request names it, else the page.
/// 304s are counted under `{path}#304`.
async fn versioned(
    hits: Hits,
    versions: web::Data<Versions>,
    req: actix_web::HttpRequest,
    name: web::Path<String>,
) -> HttpResponse {
    count(&hits, &req);
    let version = versions
        .lock()
        .expect("versions lock")
        .get(name.as_str())
        .cloned()
        .unwrap_or_default();
    if version.failing {
        return HttpResponse::InternalServerError().body("down");
    }
    let etag = format!("\"v{}\"", version.n);
    let asked = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if asked == Some(etag.as_str()) {
        *hits
            .lock()
            .expect("hits lock")
            .entry(format!("{}#304", req.path()))
            .or_default() += 1;
        return HttpResponse::NotModified()
            .insert_header(("etag", etag))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("etag", etag))
        .body(format!(
            "<!doctype html><html><head><title>{name}</title></head><body><article><h1>{name}</h1>\
             <p>{}</p><p>{}</p></article></body></html>",
            version.body, version.body
        ))
}

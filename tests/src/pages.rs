//! A local HTTP server with the pages the scraper fetches in tests.
//!
//! Routes: `/page/{name}` an article titled `name`; `/slow/{ms}/{name}` the same after a delay;
//! `/status/{code}`; `/flaky/{n}/{name}` 503 for the first `n` requests, then the article;
//! `/redirect?to=URL` a 302; `/image` a PNG; `/doc?title=&body=` a page with that content.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

pub struct PageServer {
    pub base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
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
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let data = web::Data::new(hits.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/page/{name}", web::get().to(page))
                .route("/slow/{ms}/{name}", web::get().to(slow))
                .route("/status/{code}", web::get().to(status))
                .route("/flaky/{n}/{name}", web::get().to(flaky))
                .route("/redirect", web::get().to(redirect))
                .route("/image", web::get().to(image))
                .route("/doc", web::get().to(doc))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self { base, hits }
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

async fn image(hits: Hits, req: actix_web::HttpRequest) -> HttpResponse {
    count(&hits, &req);
    HttpResponse::Ok()
        .content_type("image/png")
        .body(vec![0x89, b'P', b'N', b'G'])
}

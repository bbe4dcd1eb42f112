//! Integration tests for the scraper against a real HTTP server on 127.0.0.1.
//!
//! The server is a few lines of raw HTTP/1.1 over a tokio TcpListener so tests control
//! exactly what goes on the wire (stalls, chunked floods, lying Content-Length). It counts
//! accepted connections, which lets the SSRF tests prove nothing connected at all.
//! No test sends a packet anywhere but 127.0.0.1: blocked targets never leave the guard.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fuze_worker::scrape::{ScrapeError, Scraper, ScraperConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

const ARTICLE: &str = r#"<!doctype html>
<html lang="en"><head>
  <meta charset="utf-8">
  <title>How We Cut Our Build Times in Half - Engineering Blog</title>
  <meta name="description" content="Caching, sharding and a few surprises.">
  <meta property="og:title" content="How We Cut Our Build Times in Half">
  <link rel="canonical" href="/blog/build-times">
  <script>window.analytics = "TRACKER";</script>
</head><body>
  <nav class="menu"><a href="/">Home</a><a href="/blog">Blog</a><a href="/jobs">Careers</a></nav>
  <div class="sidebar"><h4>Related</h4><a href="/blog/a">Monorepo migration notes</a></div>
  <article>
    <h1>How We Cut Our Build Times in Half</h1>
    <p>For two years our continuous integration pipeline grew slower with every service we added.
       By last spring a full build took forty minutes, and engineers had started batching changes
       to avoid waiting, which made every review larger and every rollback riskier.</p>
    <p>The first fix was a shared remote cache for compiled artifacts. Most changes touch a handful
       of crates, so most of the build could be downloaded instead of recompiled from scratch.</p>
    <p>The second fix was sharding the test suite by historical duration rather than by file count,
       which balanced the shards and removed the long tail where one runner finished last.</p>
  </article>
  <footer>Copyright Example Corp. Imprint. Cookie settings.</footer>
</body></html>"#;

/// What the test server sends back for a path.
enum Reply {
    Fixed {
        status: &'static str,
        content_type: Option<String>,
        extra: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Chunked body that never ends on its own (until the client goes away).
    ChunkedFlood,
    /// No Content-Length, no chunking: body ends when the connection closes.
    UntilClose(Vec<u8>),
    /// Announces a huge Content-Length, then sends nothing: reading it would hang.
    HugeContentLength,
    /// Accepts the request and says nothing for a long time.
    Stall,
    /// Headers at once, then one byte of body per 100 ms.
    Drip,
}

fn html(status: &'static str, body: &str) -> Reply {
    Reply::Fixed {
        status,
        content_type: Some("text/html; charset=utf-8".into()),
        extra: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn redirect(location: String) -> Reply {
    Reply::Fixed {
        status: "302 Found",
        content_type: None,
        extra: vec![("Location".into(), location)],
        body: vec![],
    }
}

fn route(path: &str, port: u16) -> Reply {
    match path {
        "/article" => html("200 OK", ARTICLE),
        "/plain" => Reply::Fixed {
            status: "200 OK",
            content_type: Some("text/plain".into()),
            extra: vec![],
            body: b"first   line\n\n\nsecond line\n".to_vec(),
        },
        "/latin1" => Reply::Fixed {
            status: "200 OK",
            content_type: Some("text/html; charset=ISO-8859-1".into()),
            extra: vec![],
            body: b"<html><head><title>Caf\xE9</title></head><body><p>Cr\xE8me br\xFBl\xE9e</p></body></html>".to_vec(),
        },
        "/no-ct-html" => Reply::Fixed {
            status: "200 OK",
            content_type: None,
            extra: vec![],
            body: b"\n  <html><head><title>Sniffed</title></head><body><p>ok</p></body></html>".to_vec(),
        },
        "/no-ct-binary" => Reply::Fixed {
            status: "200 OK",
            content_type: None,
            extra: vec![],
            body: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        },
        "/png" => Reply::Fixed {
            status: "200 OK",
            content_type: Some("image/png".into()),
            extra: vec![],
            body: b"\x89PNG\r\n\x1a\n".to_vec(),
        },
        "/404" => html("404 Not Found", "<h1>Not found</h1>"),
        "/429" => html("429 Too Many Requests", "slow down"),
        "/503" => html("503 Service Unavailable", "<h1>Down</h1>"),
        "/exact" => html("200 OK", &"a".repeat(LIMIT)),
        "/big-fixed" => html("200 OK", &"a".repeat(LIMIT + 1)),
        "/big-eof" => Reply::UntilClose(vec![b'<'; LIMIT * 3]),
        "/big-chunked" => Reply::ChunkedFlood,
        "/big-announced" => Reply::HugeContentLength,
        "/stall" => Reply::Stall,
        "/drip" => Reply::Drip,
        "/loop" => redirect("/loop".into()),
        "/redirect-no-location" => Reply::Fixed {
            status: "302 Found",
            content_type: None,
            extra: vec![],
            body: vec![],
        },
        "/to-metadata" => redirect("http://169.254.169.254/latest/meta-data/".into()),
        "/to-private" => redirect("http://10.0.0.1/".into()),
        "/to-mapped-private" => redirect("http://[::ffff:10.0.0.1]/".into()),
        "/to-ftp" => redirect("ftp://127.0.0.1/file".into()),
        "/to-localhost" => redirect(format!("http://localhost:{port}/article")),
        "/protocol-relative" => redirect(format!("//127.0.0.1:{port}/article")),
        _ => {
            // /hop/N: N redirects before /article, all with relative Locations
            // ("N-1" resolves to the sibling /hop/N-1, "../article" climbs out).
            if let Some(n) = path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
                return if n <= 1 {
                    redirect("../article".into())
                } else {
                    redirect((n - 1).to_string())
                };
            }
            html("404 Not Found", "no route")
        }
    }
}

/// Body cap used by the size tests.
const LIMIT: usize = 64 * 1024;

struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, addr.port()));
            }
        });
        Self { addr, connections }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, port: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    // Write errors are expected (the client hangs up on purpose in several tests).
    let _ = reply(&mut stream, route(&path, port)).await;
}

async fn reply(stream: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Fixed {
            status,
            content_type,
            extra,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            if let Some(ct) = content_type {
                head.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Reply::ChunkedFlood => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = vec![b'x'; 8192];
            // Bounded so a broken client cannot make this loop forever.
            for _ in 0..10_000 {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Reply::UntilClose(body) => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n",
                )
                .await?;
            stream.write_all(&body).await?;
        }
        Reply::HugeContentLength => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000000\r\n\r\n")
                .await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Reply::Stall => tokio::time::sleep(Duration::from_secs(10)).await,
        Reply::Drip => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n",
                )
                .await?;
            for _ in 0..100 {
                stream.write_all(b"<").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}

fn local_cfg() -> ScraperConfig {
    ScraperConfig {
        allow_internal: "127.0.0.0/8".parse().expect("valid allow-list"),
        total_timeout: Duration::from_secs(5),
        max_body_bytes: LIMIT,
        ..ScraperConfig::default()
    }
}

fn scraper(cfg: ScraperConfig) -> Scraper {
    Scraper::new(cfg).expect("scraper")
}

#[tokio::test]
async fn fetches_and_extracts_html_page() {
    let server = TestServer::start().await;
    let page = scraper(local_cfg())
        .fetch(&server.url("/article"))
        .await
        .expect("fetch");
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html");
    assert_eq!(page.final_url, server.url("/article"));
    assert_eq!(page.bytes, ARTICLE.len());
    assert_eq!(page.body, ARTICLE);

    let extracted = page.extract();
    assert_eq!(
        extracted.title.as_deref(),
        Some("How We Cut Our Build Times in Half")
    );
    assert_eq!(
        extracted.description.as_deref(),
        Some("Caching, sharding and a few surprises.")
    );
    assert_eq!(
        extracted.canonical_url,
        Some(server.url("/blog/build-times").to_string())
    );
    let text = &extracted.text;
    assert!(
        text.contains("By last spring a full build took forty minutes"),
        "{text}"
    );
    assert!(
        text.contains("sharding the test suite by historical duration"),
        "{text}"
    );
    for noise in [
        "TRACKER",
        "Careers",
        "Monorepo migration notes",
        "Cookie settings",
    ] {
        assert!(!text.contains(noise), "{noise:?} in {text}");
    }
}

#[tokio::test]
async fn plain_text_charset_and_sniffing() {
    let server = TestServer::start().await;
    let s = scraper(local_cfg());

    let plain = s.fetch(&server.url("/plain")).await.expect("plain");
    assert_eq!(plain.content_type, "text/plain");
    let extracted = plain.extract();
    assert_eq!(extracted.text, "first line\nsecond line");
    assert_eq!(extracted.title, None);

    let latin1 = s.fetch(&server.url("/latin1")).await.expect("latin1");
    let extracted = latin1.extract();
    assert_eq!(extracted.title.as_deref(), Some("Café"));
    assert!(
        extracted.text.contains("Crème brûlée"),
        "{}",
        extracted.text
    );

    let sniffed = s.fetch(&server.url("/no-ct-html")).await.expect("sniffed");
    assert_eq!(sniffed.content_type, "text/html");
    assert_eq!(sniffed.extract().title.as_deref(), Some("Sniffed"));

    let err = s.fetch(&server.url("/no-ct-binary")).await.err();
    assert!(matches!(err, Some(ScrapeError::NotHtml(_))), "{err:?}");
}

/// Every forbidden target fails with BlockedTarget, and none of them opens a connection.
/// The loopback spellings point at the live test server's port, so a guard bug would show
/// up as a counted connection (or a page), not just as a different error.
#[tokio::test]
async fn forbidden_targets_are_blocked_without_connecting() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let s = scraper(ScraperConfig {
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_secs(2),
        ..ScraperConfig::default()
    });
    let targets = [
        format!("http://127.0.0.1:{port}/article"),
        format!("http://[::1]:{port}/article"),
        format!("http://[::ffff:127.0.0.1]:{port}/article"),
        format!("http://0.0.0.0:{port}/article"),
        format!("http://2130706433:{port}/article"),
        format!("http://0177.0.0.1:{port}/article"),
        format!("http://0x7f000001:{port}/article"),
        format!("http://localhost:{port}/article"),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "https://[fd00::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
    ];
    for target in targets {
        let url = Url::parse(&target).expect("url");
        let started = Instant::now();
        let err = s.fetch(&url).await.err();
        match &err {
            Some(ScrapeError::BlockedTarget(msg)) => {
                assert!(!msg.is_empty());
                let e = err.as_ref().expect("some");
                assert_eq!(e.class(), "blocked_target");
                assert!(e.is_permanent());
            }
            other => panic!("{target} (parsed as {url}): expected BlockedTarget, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{target} was slow"
        );
    }
    assert_eq!(
        server.connections(),
        0,
        "a blocked target reached the server"
    );
}

#[test]
fn decimal_and_octal_ipv4_forms_normalize_to_loopback() {
    // The WHATWG parser in `url` is what turns these into 127.0.0.1 before the guard sees them.
    for raw in ["http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/"] {
        let url = Url::parse(raw).expect("url");
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{raw}");
    }
}

#[tokio::test]
async fn redirects_to_internal_addresses_are_refused() {
    let server = TestServer::start().await;
    let s = scraper(local_cfg());
    for path in ["/to-metadata", "/to-private", "/to-mapped-private"] {
        let err = s.fetch(&server.url(path)).await.err();
        assert!(
            matches!(err, Some(ScrapeError::BlockedTarget(_))),
            "{path}: {err:?}"
        );
    }
    // Only the three first hops reached the (loopback, allowed) server.
    assert_eq!(server.connections(), 3);

    let err = s.fetch(&server.url("/to-ftp")).await.err();
    assert!(matches!(err, Some(ScrapeError::InvalidUrl(_))), "{err:?}");
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let server = TestServer::start().await;
    let s = scraper(ScraperConfig {
        max_redirects: 5,
        ..local_cfg()
    });

    // Five relative redirects: exactly the limit.
    let page = s.fetch(&server.url("/hop/5")).await.expect("5 hops");
    assert_eq!(page.final_url, server.url("/article"));
    assert_eq!(server.connections(), 6);

    let err = s.fetch(&server.url("/hop/6")).await.err();
    assert!(
        matches!(err, Some(ScrapeError::TooManyRedirects)),
        "{err:?}"
    );
    let err = s.fetch(&server.url("/loop")).await.err();
    assert!(
        matches!(err, Some(ScrapeError::TooManyRedirects)),
        "{err:?}"
    );
    assert!(ScrapeError::TooManyRedirects.is_permanent());

    let page = s
        .fetch(&server.url("/protocol-relative"))
        .await
        .expect("//host");
    assert_eq!(page.final_url, server.url("/article"));

    let page = s
        .fetch(&server.url("/to-localhost"))
        .await
        .expect("localhost");
    assert_eq!(page.final_url.host_str(), Some("localhost"));

    let err = s.fetch(&server.url("/redirect-no-location")).await.err();
    assert!(matches!(err, Some(ScrapeError::Network(_))), "{err:?}");

    let none = scraper(ScraperConfig {
        max_redirects: 0,
        ..local_cfg()
    });
    let err = none.fetch(&server.url("/hop/1")).await.err();
    assert!(
        matches!(err, Some(ScrapeError::TooManyRedirects)),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = TestServer::start().await;
    let s = scraper(local_cfg());

    let page = s
        .fetch(&server.url("/exact"))
        .await
        .expect("exactly the cap");
    assert_eq!(page.bytes, LIMIT);

    for path in ["/big-fixed", "/big-eof", "/big-chunked"] {
        let err = s.fetch(&server.url(path)).await.err();
        assert!(
            matches!(err, Some(ScrapeError::TooLarge { limit: LIMIT })),
            "{path}: {err:?}"
        );
    }

    // The server announces 100 MB and then sends nothing: only an up-front refusal based on
    // Content-Length can return TooLarge here (reading would run into the timeout).
    let started = Instant::now();
    let err = s.fetch(&server.url("/big-announced")).await.err();
    assert!(matches!(err, Some(ScrapeError::TooLarge { .. })), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = err.expect("error");
    assert_eq!(err.class(), "too_large");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn status_and_content_type_errors() {
    let server = TestServer::start().await;
    let s = scraper(local_cfg());

    let err = s.fetch(&server.url("/png")).await.expect_err("png fails");
    assert!(
        matches!(err, ScrapeError::NotHtml(ref ct) if ct == "image/png"),
        "{err:?}"
    );
    assert!(err.is_permanent());

    let err = s.fetch(&server.url("/404")).await.expect_err("404 fails");
    assert!(matches!(err, ScrapeError::Http4xx(404)), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(err.class(), "http_4xx");

    let err = s.fetch(&server.url("/429")).await.expect_err("429 fails");
    assert!(matches!(err, ScrapeError::Http4xx(429)), "{err:?}");
    assert!(!err.is_permanent());

    let err = s.fetch(&server.url("/503")).await.expect_err("503 fails");
    assert!(matches!(err, ScrapeError::Http5xx(503)), "{err:?}");
    assert!(!err.is_permanent());
    assert_eq!(err.class(), "http_5xx");
}

#[tokio::test]
async fn slow_servers_hit_the_total_timeout() {
    let server = TestServer::start().await;
    let s = scraper(ScraperConfig {
        total_timeout: Duration::from_millis(300),
        ..local_cfg()
    });
    // Stalls before the headers, and drips the body: both bounded by the one deadline.
    for path in ["/stall", "/drip"] {
        let started = Instant::now();
        let err = s.fetch(&server.url(path)).await.err();
        let elapsed = started.elapsed();
        assert!(matches!(err, Some(ScrapeError::Timeout)), "{path}: {err:?}");
        assert!(elapsed >= Duration::from_millis(250), "{path}: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{path}: {elapsed:?}");
    }
    assert!(!ScrapeError::Timeout.is_permanent());
}

#[tokio::test]
async fn network_dns_and_url_errors() {
    // A port nobody listens on: bind, note the port, close.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let s = scraper(local_cfg());
    let err = s
        .fetch(&Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url"))
        .await
        .expect_err("refused");
    assert!(matches!(err, ScrapeError::Network(_)), "{err:?}");
    assert!(!err.is_permanent());

    // `.invalid` never resolves (RFC 6761).
    let err = s
        .fetch(&Url::parse("http://no-such-host.invalid/").expect("url"))
        .await
        .expect_err("dns");
    assert!(matches!(err, ScrapeError::Dns(_)), "{err:?}");
    assert!(!err.is_permanent());

    for raw in [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "data:text/html,<p>x",
    ] {
        let err = s.fetch(&Url::parse(raw).expect("url")).await.err();
        assert!(
            matches!(err, Some(ScrapeError::InvalidUrl(_))),
            "{raw}: {err:?}"
        );
    }
}

/// The job runner spawns scrapes on a multi-threaded runtime: the future must be Send and the
/// scraper shareable.
#[test]
fn scraper_is_shareable_and_fetch_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Scraper>();
    let s = scraper(ScraperConfig::default());
    let url = Url::parse("http://127.0.0.1/").expect("url");
    let fut = s.fetch(&url);
    assert_send(&fut);
    // Dropped without polling: nothing is sent.
    drop(fut);
}

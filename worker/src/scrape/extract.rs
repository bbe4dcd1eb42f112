//! Main-text and metadata extraction from HTML (pure, no I/O).

use dom_query::Document;
use dom_smoothie::{Config, Readability, TextMode};
use serde::{Deserialize, Serialize};
use url::Url;

/// What we keep from a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractedPage {
    pub title: Option<String>,
    pub description: Option<String>,
    /// `<link rel=canonical>` resolved to an absolute http(s) URL.
    pub canonical_url: Option<String>,
    /// Main text: one block per line, whitespace runs collapsed.
    pub text: String,
}

/// The most characters of each field a page may keep (its title, description and canonical URL
/// are cached in every page of the owner's bookmark list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimits {
    pub title: usize,
    pub description: usize,
    pub canonical_url: usize,
}

impl ExtractedPage {
    /// The page as it may be stored: title, description and canonical URL cut at a character
    /// boundary to their limits, and NUL characters (which PostgreSQL's text type refuses, so a
    /// page holding one could never be saved) removed from every field.
    pub fn bounded(self, limits: FieldLimits) -> Self {
        let field = |value: Option<String>, max: usize| {
            value
                .map(|v| cut_chars(&strip_nul(v), max).trim_end().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            title: field(self.title, limits.title),
            description: field(self.description, limits.description),
            canonical_url: field(self.canonical_url, limits.canonical_url),
            text: strip_nul(self.text),
        }
    }
}

fn strip_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// The first `max` characters of `s`.
fn cut_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(at, _)| &s[..at])
}

/// Extracts the readable main text and metadata of `html`, fetched from `page_url`.
/// Pure function, used by the scraper and by the `fuze-worker extract` CLI.
pub fn extract(html: &str, page_url: &Url) -> ExtractedPage {
    let doc = Document::from(html);
    let meta = Meta::read(&doc, page_url);

    let (readable_title, readable_text) = readable(doc, page_url).unwrap_or_default();
    // Readability gives up on short or oddly built pages; the whole body beats nothing.
    let text = if readable_text.is_empty() {
        body_text(html)
    } else {
        super::tighten::tighter(html, readable_text)
    };
    let title = [Some(readable_title), meta.og_title, meta.title_tag, meta.h1]
        .into_iter()
        .flatten()
        .map(|t| collapse_inline(&t))
        .find(|t| !t.is_empty());
    ExtractedPage {
        title,
        description: meta.description,
        canonical_url: meta.canonical,
        text,
    }
}

/// A text/plain page: the body is the text; there is no metadata.
pub(crate) fn extract_plain(body: &str) -> ExtractedPage {
    ExtractedPage {
        title: None,
        description: None,
        canonical_url: None,
        text: normalize_text(body),
    }
}

/// Runs dom_smoothie (a Readability.js port). Returns (title, text), or None when it fails.
fn readable(doc: Document, page_url: &Url) -> Option<(String, String)> {
    let cfg = Config {
        // Formatted keeps block boundaries as newlines instead of gluing paragraphs together.
        text_mode: TextMode::Formatted,
        ..Config::default()
    };
    // dom_smoothie only uses the URL to absolutize links; it rejects non-http(s) ones.
    let doc_url = matches!(page_url.scheme(), "http" | "https").then_some(page_url.as_str());
    let mut readability = Readability::with_document(doc, doc_url, Some(cfg)).ok()?;
    let article = readability.parse().ok()?;
    Some((article.title, normalize_text(&article.text_content)))
}

/// Fallback: all visible body text.
fn body_text(html: &str) -> String {
    let doc = Document::from(html);
    doc.select("script, style, noscript, template, svg, iframe, object, head")
        .remove();
    let text = match doc.body() {
        Some(body) => body.formatted_text(),
        None => doc.formatted_text(),
    };
    normalize_text(&text)
}

/// Metadata read straight from the document with dom_query.
#[derive(Default)]
struct Meta {
    description: Option<String>,
    og_title: Option<String>,
    title_tag: Option<String>,
    h1: Option<String>,
    canonical: Option<String>,
}

impl Meta {
    fn read(doc: &Document, page_url: &Url) -> Self {
        let mut description = None;
        let mut og_description = None;
        let mut twitter_description = None;
        let mut og_title = None;
        for node in doc.select("meta").nodes() {
            let Some(content) = node.attr("content").map(|c| collapse_inline(&c)) else {
                continue;
            };
            if content.is_empty() {
                continue;
            }
            // Sites put OpenGraph keys in `name` as often as in `property`; accept both.
            for key_attr in ["name", "property"] {
                let Some(key) = node.attr(key_attr) else {
                    continue;
                };
                let slot = match key.trim().to_ascii_lowercase().as_str() {
                    "description" => &mut description,
                    "og:description" => &mut og_description,
                    "twitter:description" => &mut twitter_description,
                    "og:title" => &mut og_title,
                    _ => continue,
                };
                slot.get_or_insert_with(|| content.clone());
            }
        }
        let text_of = |selector: &str| {
            Some(collapse_inline(&doc.select_single(selector).text())).filter(|t| !t.is_empty())
        };
        Self {
            description: description.or(og_description).or(twitter_description),
            og_title,
            title_tag: text_of("title"),
            h1: text_of("h1"),
            canonical: canonical(doc, page_url),
        }
    }
}

/// First `<link rel=canonical>`, resolved against `<base href>` / the page URL; http(s) only
/// so a page cannot point us at `javascript:` or `file:` URLs.
fn canonical(doc: &Document, page_url: &Url) -> Option<String> {
    let base = doc
        .select_single("base[href]")
        .attr("href")
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    doc.select("link[rel][href]")
        .nodes()
        .iter()
        .filter(|link| {
            link.attr("rel").is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|token| token.eq_ignore_ascii_case("canonical"))
            })
        })
        .find_map(|link| {
            let href = link.attr("href")?;
            let href = href.trim();
            if href.is_empty() {
                return None;
            }
            let url = base.join(href).ok()?;
            matches!(url.scheme(), "http" | "https").then(|| url.to_string())
        })
}

/// Collapses all whitespace (newlines included) into single spaces and trims.
fn collapse_inline(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collapses whitespace inside each line, drops blank lines: one text block per line.
pub(crate) fn normalize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(first);
        for word in words {
            out.push(' ');
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test url")
    }

    const ARTICLE: &str = r#"<!doctype html>
<html lang="en"><head>
  <meta charset="utf-8">
  <title>Growing Tomatoes on a Balcony | The Garden Post</title>
  <meta name="description" content="  A practical guide to   balcony tomatoes. ">
  <meta property="og:description" content="OG description">
  <meta property="og:title" content="Growing Tomatoes on a Balcony">
  <link rel="stylesheet" href="/s.css">
  <link rel="Canonical" href="/articles/balcony-tomatoes?ref=canon">
  <style>body { color: red }</style>
  <script>var tracking = "SCRIPT_SHOULD_NOT_APPEAR";</script>
</head><body>
  <header><nav><a href="/">Home</a> <a href="/news">News</a> <a href="/about">About us</a></nav></header>
  <aside class="sidebar"><h3>Popular</h3><ul><li><a href="/x">Ten houseplants you can't kill</a></li>
    <li><a href="/y">Composting in flats</a></li></ul></aside>
  <main><article>
    <h1>Growing Tomatoes on a Balcony</h1>
    <p>Tomatoes are one of the most rewarding plants to grow in a container. With a sunny balcony,
       a large pot and a little patience, you can harvest fresh fruit from July until October.</p>
    <p>Choose a determinate or dwarf variety: they stay compact, need less staking and still give a
       generous crop. Cherry tomatoes are especially forgiving for beginners with limited space.</p>
    <p>Water deeply and regularly. Irregular watering is the main cause of split fruit and blossom end
       rot, so a self-watering container or a simple drip system pays for itself within a season.</p>
    <p>Feed every two weeks with a potassium-rich fertiliser once the first flowers appear, and pinch
       out side shoots on cordon varieties to keep the plant's energy going into the fruit.</p>
  </article></main>
  <footer><p>Copyright 2024 The Garden Post. All rights reserved.</p><a href="/privacy">Privacy</a></footer>
  <script>document.write("SCRIPT_SHOULD_NOT_APPEAR")</script>
</body></html>"#;

    #[test]
    fn article_page() {
        let page = extract(
            ARTICLE,
            &url("https://garden.example/articles/balcony-tomatoes"),
        );
        assert_eq!(page.title.as_deref(), Some("Growing Tomatoes on a Balcony"));
        assert_eq!(
            page.description.as_deref(),
            Some("A practical guide to balcony tomatoes.")
        );
        assert_eq!(
            page.canonical_url.as_deref(),
            Some("https://garden.example/articles/balcony-tomatoes?ref=canon")
        );
        assert!(
            page.text
                .contains("Tomatoes are one of the most rewarding plants"),
            "{}",
            page.text
        );
        assert!(
            page.text
                .contains("pinch out side shoots on cordon varieties"),
            "{}",
            page.text
        );
        for boilerplate in [
            "SCRIPT_SHOULD_NOT_APPEAR",
            "Composting in flats",
            "All rights reserved",
            "About us",
        ] {
            assert!(
                !page.text.contains(boilerplate),
                "{boilerplate:?} leaked: {}",
                page.text
            );
        }
        // Paragraphs on their own lines, no blank lines, no whitespace runs.
        assert!(page.text.lines().count() >= 4);
        assert!(!page.text.contains("\n\n") && !page.text.contains("  "));
    }

    #[test]
    fn short_page_keeps_all_its_text() {
        let html = "<html><head><title>  Note\n </title><style>p{}</style></head>\
                    <body><script>alert(1)</script><p>Just   a\n short\tnote.</p><p>Second line.</p></body></html>";
        let page = extract(html, &url("http://example.com/n"));
        assert_eq!(page.title.as_deref(), Some("Note"));
        assert!(page.text.contains("Just a short note."), "{:?}", page.text);
        assert!(page.text.contains("Second line."), "{:?}", page.text);
        assert!(!page.text.contains("alert"), "{:?}", page.text);
        assert_eq!(page.description, None);
        assert_eq!(page.canonical_url, None);
    }

    #[test]
    fn readability_failure_falls_back_to_body_text() {
        // dom_smoothie finds no candidate when everything sits in a <footer>.
        let html = "<html><head><title>Status</title><style>p{}</style></head><body>\
                    <footer>Service is <b>back</b>\n to normal.<script>x()</script></footer></body></html>";
        let page_url = url("https://status.example/");
        assert!(readable(Document::from(html), &page_url).is_none());
        let page = extract(html, &page_url);
        assert_eq!(page.text, "Service is back to normal.");
        assert_eq!(page.title.as_deref(), Some("Status"));
    }

    #[test]
    fn metadata_fallbacks_and_empty_title() {
        let html = r#"<html><head><title> </title>
            <meta name="og:description" content="Named OG description">
            <link rel="canonical" href="javascript:alert(1)">
            </head><body><p>Body.</p></body></html>"#;
        let page = extract(html, &url("https://example.com/"));
        assert_eq!(page.title, None);
        assert_eq!(page.description.as_deref(), Some("Named OG description"));
        assert_eq!(page.canonical_url, None);
        assert_eq!(page.text, "Body.");
    }

    #[test]
    fn og_title_and_base_href_canonical() {
        let html = r#"<html><head><base href="https://cdn.example.org/site/">
            <meta property="og:title" content="OG Title">
            <link rel="alternate canonical" href="page.html">
            </head><body><p>x</p></body></html>"#;
        let page = extract(html, &url("https://example.com/a/b"));
        assert_eq!(page.title.as_deref(), Some("OG Title"));
        assert_eq!(
            page.canonical_url.as_deref(),
            Some("https://cdn.example.org/site/page.html")
        );
    }

    #[test]
    fn empty_and_garbage_input() {
        let page = extract("", &url("https://example.com/"));
        assert_eq!(
            page,
            ExtractedPage {
                title: None,
                description: None,
                canonical_url: None,
                text: String::new()
            }
        );
        let page = extract(
            "<<<>>> not really html &amp; stuff",
            &url("https://example.com/"),
        );
        assert!(
            page.text.contains("not really html & stuff"),
            "{:?}",
            page.text
        );
    }

    #[test]
    fn plain_text_and_normalization() {
        let page = extract_plain("  Hello \t world \r\n\n\n second   line  \n");
        assert_eq!(page.text, "Hello world\nsecond line");
        assert_eq!(page.title, None);
        assert_eq!(normalize_text("a\u{a0}\u{a0}b\n \n\nc"), "a b\nc");
    }

    /// The fixtures docs/EXTRACTION.md compares crates on: main text in, page furniture out.
    #[test]
    fn fixture_pages() {
        struct Case {
            html: &'static str,
            url: &'static str,
            title: &'static str,
            description: Option<&'static str>,
            canonical: &'static str,
            main: &'static [&'static str],
            noise: &'static [&'static str],
        }
        let cases = [
            Case {
                html: include_str!("fixtures/news_article.html"),
                url: "https://riverside-daily.example/news/2026/11/night-bus-expansion?utm=x",
                title: "City council approves night bus expansion",
                description: Some(
                    "Six new night routes will start in March after a unanimous vote.",
                ),
                canonical: "https://riverside-daily.example/news/2026/11/night-bus-expansion",
                main: &[
                    "The city council voted unanimously on Tuesday",
                    "\"Half of our night staff drive because there is simply no other way home,\"",
                    "How it will be paid for",
                    "remaining three following in early summer",
                ],
                noise: &[
                    "Accept all cookies",
                    "Share on social",
                    "Advertisement",
                    "morning briefing",
                    "23:40",
                    "Bridge closure",
                    "Refinance",
                    "All rights reserved",
                    "dataLayer",
                ],
            },
            Case {
                html: include_str!("fixtures/blog_tutorial.html"),
                url: "https://basement.example/posts/explain-analyze/",
                title: "Debugging slow PostgreSQL queries with EXPLAIN ANALYZE",
                description: Some(
                    "A hands-on walk through reading query plans, finding the slow node and fixing it.",
                ),
                canonical: "https://basement.example/posts/explain-analyze/",
                main: &[
                    "A query plan is a tree.",
                    "GROUP BY o.customer_id;",
                    "Compare estimated rows with actual rows on every node.",
                    "lower the autovacuum analyze threshold",
                ],
                noise: &[
                    "database internals",
                    "On this page",
                    "Share this post",
                    "regret",
                    "CC BY",
                    "hljs",
                ],
            },
            Case {
                html: include_str!("fixtures/recipe_with_comments.html"),
                url: "https://mias-kitchen.example/recipes/lentil-soup",
                title: "Weeknight Lentil Soup",
                description: Some("A thick, lemony red lentil soup that takes thirty minutes."),
                canonical: "https://mias-kitchen.example/recipes/lentil-soup",
                main: &[
                    "This is the soup I make when the fridge is nearly empty",
                    "The secret is the lemon at the end",
                    "250 g red lentils, rinsed",
                    "Blend half of the soup",
                ],
                // The one-line footer (colophon) does leak through dom_smoothie; comments must not.
                noise: &[
                    "42 thoughts",
                    "split peas",
                    "freeze",
                    "coconut",
                    "About Mia",
                    "Shop my cookware",
                ],
            },
        ];
        for case in cases {
            let page = extract(case.html, &url(case.url));
            assert_eq!(page.title.as_deref(), Some(case.title));
            assert_eq!(page.description.as_deref(), case.description);
            assert_eq!(page.canonical_url.as_deref(), Some(case.canonical));
            for phrase in case.main {
                assert!(
                    page.text.contains(phrase),
                    "{phrase:?} missing: {}",
                    page.text
                );
            }
            for phrase in case.noise {
                assert!(
                    !page.text.contains(phrase),
                    "{phrase:?} leaked: {}",
                    page.text
                );
            }
            // Block boundaries survive as line breaks (list items, headings, paragraphs).
            assert!(page.text.lines().count() >= 6, "{}", page.text);
        }
    }

    #[test]
    fn works_with_non_http_page_url() {
        // The CLI may pass a file: URL; extraction must still work.
        let page = extract(ARTICLE, &url("file:///tmp/page.html"));
        assert!(page.text.contains("Water deeply and regularly"));
        assert_eq!(page.canonical_url, None);
    }

    #[test]
    fn bounded_cuts_long_fields_at_character_boundaries_and_drops_nul() {
        let page = ExtractedPage {
            title: Some("Tête\0-à-tête".to_owned()),
            description: Some("é".repeat(10)),
            canonical_url: Some("https://example.com/ünïcode".to_owned()),
            text: "a\0b".to_owned(),
        }
        .bounded(FieldLimits {
            title: 4,
            description: 3,
            canonical_url: 22,
        });
        assert_eq!(page.title.as_deref(), Some("Tête"));
        assert_eq!(page.description.as_deref(), Some("ééé"));
        assert_eq!(
            page.canonical_url.as_deref(),
            Some("https://example.com/ün")
        );
        assert_eq!(page.text, "ab");
    }
}

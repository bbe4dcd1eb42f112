//! The OpenAPI 3.1 document: each route family's annotated handlers, merged, plus what every
//! authenticated route shares (its bearer token and the answers of the middleware in front).

use std::sync::LazyLock;

use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        self, Content, HttpMethod, RefOr, Response, ResponseBuilder,
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

use crate::{error::ErrorBody, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fuze",
        description = "Save links; Fuze fetches, reads and embeds each page, and serves the \
                       user's bookmarks, semantic search and recommendations. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` with a stable `code`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "bookmarks", description = "Save, list, read, edit, refresh and delete links"),
        (name = "search", description = "Search and recommendations over the user's bookmarks"),
        (name = "jobs", description = "The user's jobs: status, list, retry"),
        (name = "events", description = "Live events (Server-Sent Events)"),
        (name = "imports", description = "Bulk imports of bookmark exports"),
        (name = "projects", description = "Projects and their tasks (seeds for recommendations)"),
        (name = "session", description = "The frontend's start"),
        (name = "admin", description = "Operator endpoints (admin token)"),
        (name = "operations", description = "Health and metrics"),
        (name = "site", description = "The web app, this document and its reference page"),
    ),
    modifiers(&SharedAnswers)
)]
struct Base;

/// The document, built once.
pub fn document() -> &'static openapi::OpenApi {
    static DOCUMENT: LazyLock<openapi::OpenApi> = LazyLock::new(|| {
        let mut doc = Base::openapi();
        for part in routes::documented() {
            doc.merge(part);
        }
        SharedAnswers.modify(&mut doc);
        doc
    });
    &DOCUMENT
}

/// The document as served at `/api/v1/openapi.json`.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        document()
            .to_pretty_json()
            .expect("the document serializes")
    });
    &JSON
}

/// Adds to every `/api/v1` operation its token and the answers the middleware gives before any
/// handler runs: 401 without a valid token, 429 past the user's limits, 503/500 when a backing
/// service fails. The admin routes take the operator's token instead of a user's.
struct SharedAnswers;

const USER_TOKEN: &str = "user_token";
const ADMIN_TOKEN: &str = "admin_token";

impl Modify for SharedAnswers {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            USER_TOKEN,
            bearer("A user's token, as `POST /api/v1/admin/users` returned it."),
        );
        components.add_security_scheme(ADMIN_TOKEN, bearer("The operator's `FUZE_ADMIN_TOKEN`."));
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json" {
                continue;
            }
            let scheme = if path.starts_with("/api/v1/admin/") {
                ADMIN_TOKEN
            } else {
                USER_TOKEN
            };
            for method in METHODS {
                let Some(op) = operation(item, &method) else {
                    continue;
                };
                op.security = Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
                let answers = &mut op.responses.responses;
                for (status, text) in [
                    ("401", "`unauthorized`: no valid bearer token"),
                    (
                        "429",
                        "`rate_limited` or another per-user limit; `Retry-After` says when",
                    ),
                    ("500", "`internal`"),
                    (
                        "503",
                        "`unavailable`: a backing service is busy or down; retry shortly",
                    ),
                ] {
                    answers
                        .entry(status.to_owned())
                        .or_insert_with(|| error_answer(text));
                }
            }
        }
    }
}

fn bearer(description: &str) -> SecurityScheme {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.description = Some(description.to_owned());
    SecurityScheme::Http(http)
}

fn error_answer(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                )))),
            )
            .build(),
    )
}

const METHODS: [HttpMethod; 8] = [
    HttpMethod::Get,
    HttpMethod::Post,
    HttpMethod::Put,
    HttpMethod::Patch,
    HttpMethod::Delete,
    HttpMethod::Head,
    HttpMethod::Options,
    HttpMethod::Trace,
];

fn operation<'a>(
    item: &'a mut openapi::PathItem,
    method: &HttpMethod,
) -> Option<&'a mut openapi::path::Operation> {
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Head => item.head.as_mut(),
        HttpMethod::Options => item.options.as_mut(),
        HttpMethod::Trace => item.trace.as_mut(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every mounted route, with its method, is in the document, and the document describes no
    /// route that is not mounted.
    #[test]
    fn the_document_describes_exactly_the_mounted_routes() {
        let mounted: BTreeSet<(String, String)> = routes::mounted()
            .into_iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path))
            .collect();
        let mut documented = BTreeSet::new();
        for (path, item) in document().paths.paths.iter() {
            let mut item = item.clone();
            for method in METHODS {
                if operation(&mut item, &method).is_some() {
                    let name = serde_json::to_value(&method).expect("a method serializes");
                    let name = name.as_str().expect("a method is a string").to_owned();
                    documented.insert((name, path.clone()));
                }
            }
        }
        assert!(mounted.len() > 40, "mounted: {mounted:?}");
        let undocumented: Vec<_> = mounted.difference(&documented).collect();
        let unmounted: Vec<_> = documented.difference(&mounted).collect();
        assert!(
            undocumented.is_empty(),
            "mounted but not documented: {undocumented:?}"
        );
        assert!(
            unmounted.is_empty(),
            "documented but not mounted: {unmounted:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc: serde_json::Value = serde_json::from_str(json()).expect("the document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
    }
}

//! Query strings and request paths: `Query::parse`, `Page::parse` and the router itself.
//!
//! The input is `path?query` (lossy UTF-8). Never panics; the router answers every method
//! on every path with a JSON error (or a preflight), never a 5xx, and every page parsed is
//! in range. No token is sent, so no route reaches the (unreachable) database.

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use shared::config::Config;
use shared::domain::{Page, PageLimit};
use shared::http::query::Query;
use shared::http::router::ApiService;
use tower::ServiceExt;

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
    Method::PATCH,
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    api: ApiService,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = Config::from_lookup(|name| {
            let value = match name {
                "DATABASE_URL" => "postgres://nobody@127.0.0.1:1/none",
                "S3_ENDPOINT" => "http://127.0.0.1:1",
                "S3_BUCKET" | "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY" => "x",
                "AUTH_JWT_SECRET" => "secret",
                _ => return None,
            };
            Some(value.to_owned())
        })
        .unwrap();
        let app = runtime.block_on(shared::App::new(config)).unwrap();
        let api = shared::routes::all().into_service(app);
        Harness { runtime, api }
    })
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (path, raw_query) = input.split_once('?').unwrap_or((&input, ""));

    // The whole input as a query string, and the part after `?`.
    check_page(&Query::parse(Some(&input)));
    check_page(&Query::parse(Some(raw_query)));

    // The path as given, and under the prefixes where room ids, member emails and the
    // internal function names are parsed.
    let harness = harness();
    for prefix in ["", "/api/rooms/", "/api/"] {
        let target = format!("{prefix}{input}");
        // `/api/health` queries the database; everything else refuses first.
        if target.trim_end_matches('/').starts_with("/api/health") {
            continue;
        }
        let Ok(uri) = target.parse::<http::Uri>() else {
            continue;
        };
        for method in &METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .body(Body::empty())
                .unwrap();
            let response = harness
                .runtime
                .block_on(harness.api.clone().oneshot(request))
                .unwrap();
            let status = response.status();
            assert!(
                status.is_client_error() || status == http::StatusCode::NO_CONTENT,
                "{method} {target} answered {status}"
            );
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }
});

fn check_page(query: &Query) {
    let in_range = |l: PageLimit| (1..=PageLimit::MAX).contains(&l.get());
    let (Ok(limit), Ok(before), Ok(after)) =
        (query.get("limit"), query.get("before"), query.get("after"))
    else {
        return;
    };
    match Page::parse(limit, before, after) {
        Ok(Page::Latest(limit)) => assert!(in_range(limit)),
        Ok(Page::Before(cursor, limit) | Page::After(cursor, limit)) => {
            assert!(cursor.get() >= 0, "negative cursor {}", cursor.get());
            assert!(in_range(limit));
        }
        Err(_) => {}
    }
}

//! Route handlers, one module per route family, and the route table that places each one.
//! Handlers take extractors (`http::extract`) and return a response or an
//! [`ApiError`](crate::http::ApiError).

pub mod admin;
pub mod archive;
pub mod cleanup;
pub mod health;
pub mod members;
pub mod messages;
pub mod presence;
pub mod reactions;
pub mod read;
pub mod rooms;
pub mod search;
pub mod stream;
pub mod uploads;

use http::Method;

use crate::http::router::{Api, Function, Route};

/// Every route, once: the function binary that serves it, its method and path, and its
/// handler. Adding an endpoint is a handler and a line here (and `openapi.yaml`); `HEAD`
/// comes with every `GET`. Keep `GET` before `POST` on a path: `Allow` lists them in
/// this order.
pub fn table() -> Vec<Route> {
    use Function::*;
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const DELETE: Method = Method::DELETE;
    const PUT: Method = Method::PUT;
    const PATCH: Method = Method::PATCH;
    vec![
        Route::new(Health, GET, "/api/health", health::get),
        // With health: the operator's figures, including this instance's.
        Route::new(Health, GET, "/api/admin/stats", admin::stats),
        Route::new(Rooms, GET, "/api/rooms", rooms::list),
        Route::new(Rooms, POST, "/api/rooms", rooms::create),
        Route::new(
            ListMessages,
            GET,
            "/api/rooms/{room}/messages",
            messages::list,
        ),
        Route::new(
            PostMessage,
            POST,
            "/api/rooms/{room}/messages",
            messages::post,
        ),
        Route::new(
            Message,
            PATCH,
            "/api/rooms/{room}/messages/{message}",
            messages::edit,
        ),
        Route::new(
            Message,
            DELETE,
            "/api/rooms/{room}/messages/{message}",
            messages::delete,
        ),
        Route::new(
            Message,
            PUT,
            "/api/rooms/{room}/messages/{message}/reactions/{emoji}",
            reactions::add,
        ),
        Route::new(
            Message,
            DELETE,
            "/api/rooms/{room}/messages/{message}/reactions/{emoji}",
            reactions::remove,
        ),
        Route::new(
            ListMessages,
            GET,
            "/api/rooms/{room}/messages/{message}/replies",
            messages::replies,
        ),
        Route::new(
            ListMessages,
            GET,
            "/api/rooms/{room}/search",
            search::search,
        ),
        Route::new(Read, PUT, "/api/rooms/{room}/read", read::mark),
        // With the message writes: its other templates name two and three parameters.
        Route::new(Message, POST, "/api/rooms/{room}/typing", presence::typing),
        Route::new(Presence, GET, "/api/rooms/{room}/presence", presence::list),
        Route::new(Stream, GET, "/api/rooms/{room}/stream", stream::open),
        Route::new(Members, GET, "/api/rooms/{room}/members", members::list),
        Route::new(Members, POST, "/api/rooms/{room}/members", members::add),
        Route::new(
            Members,
            DELETE,
            "/api/rooms/{room}/members/{email}",
            members::remove,
        ),
        Route::new(PresignUpload, POST, "/api/uploads", uploads::presign),
        Route::new(
            CleanupUploads,
            GET,
            "/api/cron/cleanup-uploads",
            cleanup::run,
        ),
        Route::new(
            CleanupUploads,
            POST,
            "/api/cron/cleanup-uploads",
            cleanup::run,
        ),
        Route::new(Archive, GET, "/api/cron/archive", archive::run),
        Route::new(Archive, POST, "/api/cron/archive", archive::run),
    ]
}

/// Every route (the dev server, tests).
pub fn all() -> Api {
    Api::new(table(), None)
}

/// The routes of one function binary.
pub fn of(function: Function) -> Api {
    Api::new(table(), Some(function))
}

#[cfg(test)]
mod tests {
    //! The router as each host runs it, called in-process: only answers that need no
    //! database (routing, 404/405, preflights, internal paths) are checked here; the
    //! integration tests drive every route against real Postgres and S3.

    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::App;
    use crate::config::Config;

    async fn app() -> App {
        let config = Config::from_lookup(|name| {
            let value = match name {
                // Lazy: nothing here connects.
                "DATABASE_URL" => "postgres://nobody@127.0.0.1:1/none",
                "S3_ENDPOINT" => "http://127.0.0.1:1",
                "S3_BUCKET" | "S3_ACCESS_KEY_ID" | "S3_SECRET_ACCESS_KEY" => "x",
                "AUTH_JWT_SECRET" => "secret",
                "CORS_ALLOWED_ORIGINS" => "https://app.example.com",
                _ => return None,
            };
            Some(value.to_owned())
        })
        .unwrap();
        App::new(config).await.unwrap()
    }

    async fn call(api: Api, method: Method, uri: &str) -> (StatusCode, http::HeaderMap, String) {
        let service = api.into_service(app().await);
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("origin", "https://app.example.com")
            .body(Body::empty())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    fn code(body: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        value["error"]["code"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_function_serves_its_routes_and_404s_the_others() {
        // Reaches the handler: the missing token is its first check.
        let (status, _, body) = call(
            of(Function::ListMessages),
            Method::GET,
            "/api/rooms/general/messages",
        )
        .await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        for (function, method, uri) in [
            (
                Function::ListMessages,
                Method::POST,
                "/api/rooms/general/messages",
            ),
            (
                Function::PostMessage,
                Method::GET,
                "/api/rooms/general/messages",
            ),
            (Function::Rooms, Method::GET, "/api/rooms/general/stream"),
            (Function::Stream, Method::GET, "/api/rooms"),
            (Function::Health, Method::POST, "/api/uploads"),
        ] {
            let (status, headers, body) = call(of(function), method.clone(), uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{function:?} {method} {uri}");
            assert_eq!(code(&body), "route_not_found");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(
                headers["access-control-allow-origin"],
                "https://app.example.com"
            );
        }
    }

    #[tokio::test]
    async fn a_wrong_method_is_405_with_the_paths_methods_on_every_host() {
        for api in [all(), of(Function::ListMessages), of(Function::Rooms)] {
            let (status, headers, body) =
                call(api, Method::PUT, "/api/rooms/general/messages").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(headers["allow"], "GET, POST");
            assert_eq!(code(&body), "method_not_allowed");
            assert!(body.contains("Allowed: GET, POST."), "{body}");
        }
    }

    #[tokio::test]
    async fn options_is_the_routes_preflight_and_404_on_unknown_paths() {
        let (status, headers, body) = call(
            of(Function::Members),
            Method::OPTIONS,
            "/api/rooms/general/members/a%40b.c",
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(headers["allow"], "DELETE");
        assert_eq!(headers["access-control-allow-methods"], "DELETE");
        assert!(body.is_empty());
        let (status, _, body) = call(all(), Method::OPTIONS, "/api/nope").await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::NOT_FOUND, "route_not_found")
        );
    }

    #[tokio::test]
    async fn internal_paths_and_trailing_slashes_reach_the_same_handlers() {
        for (function, method, uri) in [
            (
                Function::ListMessages,
                Method::GET,
                "/api/list_messages?room=general&limit=5",
            ),
            (
                Function::ListMessages,
                Method::GET,
                "/api/list_messages?room=general&route=search&q=hi",
            ),
            (
                Function::PostMessage,
                Method::POST,
                "/api/post_message?room=general",
            ),
            (Function::Stream, Method::GET, "/api/stream?room=general"),
            (
                Function::Members,
                Method::DELETE,
                "/api/members?room=general&email=a%40b.c",
            ),
            (Function::Members, Method::GET, "/api/members?room=general"),
            // The message function's one-parameter template is typing.
            (Function::Message, Method::POST, "/api/message?room=general"),
            (
                Function::Presence,
                Method::GET,
                "/api/presence?room=general",
            ),
            (Function::Rooms, Method::POST, "/api/rooms/"),
            (Function::Health, Method::GET, "/api/health?route=stats"),
            (Function::PresignUpload, Method::POST, "/api/presign_upload"),
        ] {
            let (status, _, body) = call(of(function), method.clone(), uri).await;
            assert_eq!(
                (status, code(&body).as_str()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{function:?} {method} {uri}"
            );
        }
        // A room id that cannot exist is an unknown room, before any token check.
        let (status, _, body) = call(
            of(Function::ListMessages),
            Method::GET,
            "/api/list_messages?room=a.b",
        )
        .await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::NOT_FOUND, "room_not_found")
        );
    }

    #[tokio::test]
    async fn head_is_answered_wherever_get_is() {
        let (status, _, body) = call(of(Function::Rooms), Method::HEAD, "/api/rooms").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.is_empty());
    }

    #[test]
    fn every_function_has_its_file_and_every_file_its_function() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for function in Function::ALL {
            let file = root.join(format!("api/{}.rs", function.name()));
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|_| panic!("{} is missing", file.display()));
            assert!(
                source.contains(&format!("Function::{function:?})")),
                "{} does not serve Function::{function:?}",
                file.display()
            );
            assert!(
                table().iter().any(|r| r.function == function),
                "{function:?} serves no route"
            );
        }
    }
}

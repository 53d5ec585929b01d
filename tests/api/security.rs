//! The security matrix: every route × {no token, forged, expired, non-member, over the rate
//! limit}, each with the expected status and the error shape.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::db::limits::RateLimit;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

#[derive(Clone, Copy, Debug)]
enum Caller {
    NoToken,
    Forged,
    Expired,
    NonMember,
    OverTheLimit,
}

struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// Whether a rate limit guards it (reads are never throttled).
    limited: bool,
    /// Whether it names a room (a non-member is told it does not exist).
    names_room: bool,
}

fn routes() -> Vec<Route> {
    let route = |method, path, body, limited, names_room| Route {
        method,
        path,
        body,
        limited,
        names_room,
    };
    vec![
        route(Method::GET, "/api/rooms", None, false, false),
        route(
            Method::POST,
            "/api/rooms",
            Some(json!({"id": "fresh"})),
            true,
            false,
        ),
        route(Method::GET, "/api/rooms/vault/messages", None, false, true),
        route(
            Method::POST,
            "/api/rooms/vault/messages",
            Some(json!({"content": "hi"})),
            true,
            true,
        ),
        route(Method::GET, "/api/rooms/vault/stream", None, false, true),
        route(
            Method::POST,
            "/api/uploads",
            Some(
                json!({"room_id": "vault", "file_name": "a.txt", "content_type": "text/plain", "size": 1}),
            ),
            true,
            true,
        ),
        route(Method::GET, "/api/rooms/vault/members", None, false, true),
        route(
            Method::POST,
            "/api/rooms/vault/members",
            Some(json!({"email": "dave@example.com"})),
            false,
            true,
        ),
        route(
            Method::DELETE,
            "/api/rooms/vault/members/carol%40example.com",
            None,
            false,
            true,
        ),
    ]
}

/// `None`: the request succeeds (any 2xx).
fn expected(route: &Route, caller: Caller) -> Option<(StatusCode, &'static str)> {
    match caller {
        Caller::NoToken | Caller::Forged | Caller::Expired => {
            Some((StatusCode::UNAUTHORIZED, "unauthorized"))
        }
        Caller::NonMember if route.names_room => Some((StatusCode::NOT_FOUND, "room_not_found")),
        Caller::NonMember => None,
        Caller::OverTheLimit if route.limited => {
            Some((StatusCode::TOO_MANY_REQUESTS, "rate_limited"))
        }
        Caller::OverTheLimit => None,
    }
}

#[tokio::test]
async fn every_route_refuses_what_it_must_with_the_error_shape() {
    let one_per_hour = |action| RateLimit::parse(action, "1/1h").unwrap();
    let app = TestApp::spawn_with(|c| {
        c.limits.posts = one_per_hour("post");
        c.limits.uploads = one_per_hour("upload");
        c.limits.rooms = one_per_hour("room");
    })
    .await;
    // Alice owns the private room "vault" (her one room token), with Carol as a member.
    assert_eq!(
        app.post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "vault", "visibility": "private"})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    app.post_as(
        ALICE,
        "/api/rooms/vault/members",
        &json!({"email": "carol@example.com"}),
    )
    .await;
    // She spends her one post and one upload too: she is now over every limit.
    assert_eq!(
        app.post_message("vault", &json!({"content": "first"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let upload =
        json!({"room_id": "vault", "file_name": "a.txt", "content_type": "text/plain", "size": 1});
    assert_eq!(
        app.presign(ALICE, &upload).await.status(),
        StatusCode::CREATED
    );

    let forged = {
        let mut auth = app.app.config.auth.clone();
        auth.jwt_secret = Some("forged".into());
        chat_dev::token::mint_token(&auth, ALICE, 3600).unwrap()
    };
    let expired = chat_dev::token::mint_token(&app.app.config.auth, ALICE, -3600).unwrap();

    for route in routes() {
        for caller in [
            Caller::NoToken,
            Caller::Forged,
            Caller::Expired,
            Caller::NonMember,
            Caller::OverTheLimit,
        ] {
            let token = match caller {
                Caller::NoToken => None,
                Caller::Forged => Some(forged.clone()),
                Caller::Expired => Some(expired.clone()),
                Caller::NonMember => Some(app.token(BOB)),
                Caller::OverTheLimit => Some(app.token(ALICE)),
            };
            let mut request = app
                .client
                .request(route.method.clone(), app.url(route.path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let what = format!("{} {} as {caller:?}", route.method, route.path);
            match expected(&route, caller) {
                Some((status, code)) => {
                    let message = assert_error(response, status, code).await;
                    assert!(
                        !message.contains("SELECT") && !message.contains("panicked"),
                        "{what}: {message}"
                    );
                }
                None => assert!(
                    response.status().is_success(),
                    "{what}: {}",
                    response.status()
                ),
            }
        }
    }
}

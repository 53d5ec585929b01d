//! `GET /api/rooms/{room}/search`: full text over a room's messages, newest first.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

async fn search_as(app: &TestApp, email: &str, room: &str, query: &str) -> reqwest::Response {
    app.get_as(email, &format!("/api/rooms/{room}/search{query}"))
        .await
}

/// `?q=` with `q` percent-encoded, plus `rest` (`&limit=…`).
fn q(words: &str, rest: &str) -> String {
    let encoded: String = words
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("?q={encoded}{rest}")
}

async fn found(app: &TestApp, room: &str, query: &str) -> Value {
    let response = search_as(app, ALICE, room, query).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.token(ALICE));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn search_finds_a_rooms_messages_by_their_words_newest_first_as_the_list_shows_them() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("elsewhere").await;
    app.send("general", "The quick brown fox").await;
    app.send("general", "a lazy dog sleeps").await;
    let reply_to = app.send("general", "Quick, thinking!").await;
    app.send("elsewhere", "quick elsewhere").await;
    // A reply with a reaction: its view carries both, as the list's does.
    let reply = app
        .post_message(
            "general",
            &json!({"content": "quick reply", "reply_to": reply_to["id"]}),
        )
        .await;
    assert_eq!(reply.status(), StatusCode::CREATED);
    let reply: Value = reply.json().await.unwrap();
    let reacted = call(
        &app,
        Method::PUT,
        &format!(
            "/api/rooms/general/messages/{}/reactions/%F0%9F%91%8D",
            reply["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(reacted.status(), StatusCode::OK);

    // Case does not matter, punctuation is not a word, other rooms are not searched.
    let page = found(&app, "general", &q("QUICK", "")).await;
    assert_eq!(
        contents(&page),
        ["quick reply", "Quick, thinking!", "The quick brown fox"]
    );
    assert_eq!(page["has_more"], false);
    assert_eq!(page["archived_not_searched"], false);

    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    for message in page["messages"].as_array().unwrap() {
        let same = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message["id"])
            .unwrap();
        assert_eq!(message, same);
    }
    assert_eq!(page["messages"][0]["reply_to"]["id"], reply_to["id"]);
    assert_eq!(page["messages"][0]["reactions"][0]["count"], 1);
    assert_eq!(page["messages"][0]["reactions"][0]["me"], true);

    // A word found nowhere is an empty page, not an error.
    let page = found(&app, "general", &q("zebra", "")).await;
    assert!(contents(&page).is_empty());
    assert_eq!(page["has_more"], false);
}

#[tokio::test]
async fn search_reads_web_search_syntax() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.send("general", "the brown fox jumps").await;
    app.send("general", "a fox that is brown").await;
    app.send("general", "brown bread").await;
    app.send("general", "red fox").await;

    // A quoted phrase: the words next to each other, in order.
    let page = found(&app, "general", &q("\"brown fox\"", "")).await;
    assert_eq!(contents(&page), ["the brown fox jumps"]);
    // Words without quotes: all of them, anywhere.
    let page = found(&app, "general", &q("brown fox", "")).await;
    assert_eq!(
        contents(&page),
        ["a fox that is brown", "the brown fox jumps"]
    );
    // `-word`: not that word.
    let page = found(&app, "general", &q("fox -brown", "")).await;
    assert_eq!(contents(&page), ["red fox"]);
    // `or`: either.
    let page = found(&app, "general", &q("bread or red", "")).await;
    assert_eq!(contents(&page), ["red fox", "brown bread"]);
    // Unbalanced quotes and stray operators are read, never refused.
    for odd in ["\"brown", "- -", "fox or", "(brown) & | !"] {
        let response = search_as(&app, ALICE, "general", &q(odd, "")).await;
        assert_eq!(response.status(), StatusCode::OK, "{odd}");
    }
}

#[tokio::test]
async fn search_pages_back_with_before_and_says_when_older_matches_follow() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    // Every seeded message is `seed <seq>`.
    app.seed_messages("general", 250).await;
    app.send("general", "not a match").await;

    let page = found(&app, "general", &q("seed", "")).await;
    assert_eq!(seqs(&page), (151..=250).rev().collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let page = found(&app, "general", &q("seed", "&before=151")).await;
    assert_eq!(seqs(&page), (51..=150).rev().collect::<Vec<_>>());
    assert_eq!(page["has_more"], true);
    let page = found(&app, "general", &q("seed", "&before=51&limit=50")).await;
    assert_eq!(seqs(&page), (1..=50).rev().collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
    let page = found(&app, "general", &q("seed", "&limit=3&before=100")).await;
    assert_eq!(seqs(&page), [99, 98, 97]);
    assert_eq!(page["has_more"], true);
    let page = found(&app, "general", &q("seed", "&before=1")).await;
    assert!(seqs(&page).is_empty());
    assert_eq!(page["has_more"], false);
    // One word of many: `seed 17` is found by its number too.
    let page = found(&app, "general", &q("17", "")).await;
    assert_eq!(seqs(&page), [17]);
}

#[tokio::test]
async fn deleted_messages_are_never_found_and_edited_ones_by_their_new_words() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let gone = app.send("general", "alpha one").await;
    let edited = app.send("general", "alpha two").await;
    app.send("general", "alpha three").await;
    let path = |m: &Value| format!("/api/rooms/general/messages/{}", m["id"].as_str().unwrap());
    let response = call(&app, Method::DELETE, &path(&gone), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = call(
        &app,
        Method::PATCH,
        &path(&edited),
        Some(json!({"content": "beta two"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let page = found(&app, "general", &q("alpha", "")).await;
    assert_eq!(contents(&page), ["alpha three"]);
    assert!(contents(&found(&app, "general", &q("one", "")).await).is_empty());
    let page = found(&app, "general", &q("beta", "")).await;
    assert_eq!(contents(&page), ["beta two"]);
    assert!(page["messages"][0]["edited_at"].is_string());
    assert!(contents(&found(&app, "general", &q("two -beta", "")).await).is_empty());
}

#[tokio::test]
async fn a_private_room_is_searched_by_its_members_only() {
    let app = TestApp::spawn().await;
    let created = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "secret", "visibility": "private"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    app.send("secret", "the launch date").await;

    for query in [q("launch", ""), q("nothing", "")] {
        assert_error(
            search_as(&app, BOB, "secret", &query).await,
            StatusCode::NOT_FOUND,
            "room_not_found",
        )
        .await;
    }
    assert_error(
        search_as(&app, BOB, "missing", &q("launch", "")).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
    let added = app
        .post_as(ALICE, "/api/rooms/secret/members", &json!({"email": BOB}))
        .await;
    assert!(added.status().is_success(), "{}", added.status());
    let response = search_as(&app, BOB, "secret", &q("launch", "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    assert_eq!(contents(&page), ["the launch date"]);
}

#[tokio::test]
async fn a_bad_query_limit_or_cursor_is_400_and_a_missing_token_401() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.send("general", "hello").await;
    let too_long = "a".repeat(201);
    for (query, why) in [
        ("".to_owned(), "no q"),
        ("?q=".to_owned(), "empty q"),
        (q("   \t", ""), "white space only"),
        (q(&too_long, ""), "201 characters"),
        (q(&"é".repeat(201), ""), "201 two-byte characters"),
        (q("a\0b", ""), "NUL"),
        ("?q=a&q=b".to_owned(), "q twice"),
    ] {
        let message = assert_error(
            search_as(&app, ALICE, "general", &query).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        assert!(message.contains("`q`"), "{why}: {message}");
    }
    // The list's rules and errors for `limit` and `before`.
    for rest in [
        "&limit=0",
        "&limit=201",
        "&limit=abc",
        "&limit=",
        "&before=-1",
        "&before=x",
        "&before=1.5",
    ] {
        let query = q("hello", rest);
        let listed = app
            .list_messages(
                "general",
                &query[query.find('&').unwrap()..].replacen('&', "?", 1),
            )
            .await;
        let list_message = assert_error(listed, StatusCode::BAD_REQUEST, "invalid_query").await;
        let message = assert_error(
            search_as(&app, ALICE, "general", &query).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        assert_eq!(message, list_message, "{rest}");
    }
    // At the bounds: fine.
    for query in [
        q(&"a".repeat(200), ""),
        q("hello", "&limit=200"),
        q("hello", "&limit=1"),
    ] {
        assert_eq!(
            search_as(&app, ALICE, "general", &query).await.status(),
            StatusCode::OK
        );
    }
    let response = app
        .client
        .get(app.url("/api/rooms/general/search?q=hello"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_found_message_carries_its_files_with_urls_that_serve_them() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let bytes = b"quarterly figures".to_vec();
    let upload = app
        .presigned(
            ALICE,
            &json!({"room_id": "general", "file_name": "report.txt",
                    "content_type": "text/plain", "size": bytes.len()}),
        )
        .await;
    assert!(app.put_upload(&upload, &bytes).await.status().is_success());
    let sent = app
        .post_message(
            "general",
            &json!({"content": "the report", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);

    let page = found(&app, "general", &q("report", "")).await;
    let file = &page["messages"][0]["files"][0];
    assert_eq!(file["id"], upload["id"]);
    assert_eq!(file["file_name"], "report.txt");
    let downloaded = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn the_list_functions_internal_path_serves_search_when_it_names_the_route() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.send("general", "routed here").await;
    app.send("general", "not this one").await;
    // What vercel.json sends `/api/rooms/general/search?q=routed` to.
    let response = app
        .get_as(
            ALICE,
            "/api/list_messages?room=general&route=search&q=routed",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    assert_eq!(contents(&page), ["routed here"]);
    assert_eq!(page["archived_not_searched"], false);
    // Without `route`, the same function's path is the list.
    let response = app.get_as(ALICE, "/api/list_messages?room=general").await;
    let page: Value = response.json().await.unwrap();
    assert_eq!(contents(&page), ["routed here", "not this one"]);
    assert!(page["last_event_id"].is_i64());
}

#[tokio::test]
async fn a_rare_word_deep_in_a_large_room_is_found_through_the_search_index() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    // `seed <seq>` each: the number is in one message, `seed` in all of them.
    app.seed_messages("general", 40_000).await;
    sqlx::query("ANALYZE chat_messages")
        .execute(&app.db)
        .await
        .unwrap();
    let explain = format!("EXPLAIN (ANALYZE) {}", shared::db::messages::SEARCH);
    let plan: Vec<String> = sqlx::query_scalar(&explain)
        .bind("general")
        .bind(i64::MAX)
        .bind(101_i64)
        .bind(ALICE)
        .bind("1234")
        .bind("simple")
        .bind(shared::db::messages::SEARCH_WINDOW)
        .fetch_all(&app.db)
        .await
        .unwrap();
    let plan = plan.join("\n");
    // The newest messages are tested one by one, the older ones come from the index: the
    // room's other 38,000 rows are never read.
    assert!(plan.contains("chat_messages_search"), "{plan}");
    assert!(!plan.contains("Seq Scan on chat_messages"), "{plan}");
    let page = found(&app, "general", &q("1234", "")).await;
    assert_eq!(seqs(&page), [1234]);
    assert_eq!(page["has_more"], false);
    // A common word fills its page from the newest messages alone.
    let page = found(&app, "general", &q("seed", "&limit=5")).await;
    assert_eq!(seqs(&page), [40_000, 39_999, 39_998, 39_997, 39_996]);
    assert_eq!(page["has_more"], true);
    // Across the window's edge: matches on both sides of it, in order.
    let edge = 40_000 - shared::db::messages::SEARCH_WINDOW;
    let page = found(
        &app,
        "general",
        &q(&format!("{} or {} or {}", edge + 1, edge, edge - 1), ""),
    )
    .await;
    assert_eq!(seqs(&page), [edge + 1, edge, edge - 1]);
}

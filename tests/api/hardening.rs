//! Regression tests for what an adversarial probe found (each fails without its fix).

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::db::limits::RateLimit;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

/// Item 5: ids are global, so a taken explicit id answers 409 to anyone (a private room's
/// included). Omitting the id gets one nobody can guess, which is what private rooms use.
#[tokio::test]
async fn a_room_without_an_id_gets_an_unguessable_one() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .post_as(
                ALICE,
                "/api/rooms",
                &json!({"name": "Secret plans", "visibility": "private"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let room: Value = response.json().await.unwrap();
        let id = room["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert_eq!(room["name"], "Secret plans");
        assert_eq!(room["visibility"], "private");
        assert_eq!(room["owner"], ALICE);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    // The room works under its id, for its owner only.
    let id = &ids[0];
    app.post_message_as(ALICE, id, &json!({"content": "hi"}))
        .await
        .error_for_status()
        .unwrap();
    let outsider = app.get_as(BOB, &format!("/api/rooms/{id}/messages")).await;
    assert_error(outsider, StatusCode::NOT_FOUND, "room_not_found").await;
    // An explicit id keeps its contract: a taken one is 409 room_exists.
    app.room("general").await;
    let taken = app
        .post_as(BOB, "/api/rooms", &json!({"id": "general"}))
        .await;
    assert_error(taken, StatusCode::CONFLICT, "room_exists").await;
}

#[tokio::test]
async fn a_nul_byte_in_content_is_a_400_not_a_500() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let response = app
        .post_message("general", &json!({"content": "a\u{0000}b"}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
    // Other text round-trips byte for byte.
    let stored = app.send("general", "tab\there\nnew line").await;
    assert_eq!(stored["content"], "tab\there\nnew line");
}

#[tokio::test]
async fn a_kelvin_sign_email_is_not_the_ascii_user() {
    let app = TestApp::spawn().await;
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "kates", "visibility": "private"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post_as(
            ALICE,
            "/api/rooms/kates/members",
            &json!({"email": "kate@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // KELVIN SIGN (U+212A) lower-cases to ASCII `k` under Unicode rules.
    let impostor = "\u{212A}ate@example.com";
    let response = app.get_as(impostor, "/api/rooms/kates/messages").await;
    assert_error(response, StatusCode::NOT_FOUND, "room_not_found").await;
    let response = app
        .get_as("KATE@example.com", "/api/rooms/kates/messages")
        .await;
    assert_eq!(response.status(), StatusCode::OK, "ASCII case still folds");
}

#[tokio::test]
async fn a_member_email_with_two_ats_is_refused() {
    let app = TestApp::spawn().await;
    app.post_as(
        ALICE,
        "/api/rooms",
        &json!({"id": "team", "visibility": "private"}),
    )
    .await;
    let response = app
        .post_as(ALICE, "/api/rooms/team/members", &json!({"email": "a@b@c"}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
}

#[tokio::test]
async fn a_bad_last_event_id_is_invalid_last_event_id() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for bad in ["abc", "-1", "123456789012345678901234567890"] {
        let response = app
            .client
            .get(app.url("/api/rooms/general/stream"))
            .bearer_auth(app.token(ALICE))
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_last_event_id").await;
    }
}

#[tokio::test]
async fn a_client_id_belongs_to_its_author() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let client_id = uuid::Uuid::new_v4();
    let alices: Value = app
        .post_message_as(
            ALICE,
            "general",
            &json!({"content": "alice's", "client_id": client_id}),
        )
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .post_message_as(
            BOB,
            "general",
            &json!({"content": "bob's", "client_id": client_id}),
        )
        .await;
    let body = assert_error(response, StatusCode::CONFLICT, "client_id_taken").await;
    assert!(!body.contains("alice's"));
    // Alice's retry still answers her own message.
    let again = app
        .post_message_as(
            ALICE,
            "general",
            &json!({"content": "alice's", "client_id": client_id}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], alices["id"]);
}

#[tokio::test]
async fn a_retry_of_a_stored_send_answers_200_with_the_bucket_empty() {
    let app = TestApp::spawn_with(|c| {
        c.limits.posts = RateLimit::parse("post", "2/1h").unwrap();
    })
    .await;
    app.room("general").await;
    let client_id = uuid::Uuid::new_v4();
    let first = app
        .post_message(
            "general",
            &json!({"content": "one", "client_id": client_id}),
        )
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    app.send("general", "two").await;
    // The bucket is empty now: a new send is refused...
    let refused = app
        .post_message("general", &json!({"content": "three"}))
        .await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // ...but the retry of the stored one is answered with it.
    let retry = app
        .post_message(
            "general",
            &json!({"content": "one", "client_id": client_id}),
        )
        .await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json_with_cors_and_nosniff() {
    let origin = "https://app.example.com";
    let app = TestApp::spawn_with(|c| {
        c.cors = shared::http::cors::AllowedOrigins::parse(origin);
    })
    .await;
    app.room("general").await;
    let big = format!("{{\"content\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let response = app
        .client
        .post(app.url("/api/rooms/general/messages"))
        .bearer_auth(app.token(ALICE))
        .header("origin", origin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert_eq!(headers["access-control-allow-origin"], origin);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test]
async fn a_stream_refused_by_the_per_user_cap_runs_no_query() {
    let app = TestApp::spawn_with(|c| c.limits.streams_per_user = 1).await;
    app.room("general").await;
    let open = app
        .client
        .get(app.url("/api/rooms/general/stream"))
        .bearer_auth(app.token(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    // The refused stream names a room that does not exist: had it run the room lookup, it
    // would answer 404 instead of the cap's 429.
    let refused = app
        .client
        .get(app.url("/api/rooms/nowhere/stream"))
        .bearer_auth(app.token(ALICE))
        .send()
        .await
        .unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams_for_user",
    )
    .await;
    drop(open);
}

/// Item 1: once `DELETE …/members/{email}` has answered, nothing posted after it reaches that
/// member's open stream, in either real-time mode. Before the fix the NOTIFY wake-up fanned
/// out new messages while membership was only re-read on the timed poll.
async fn removed_member_gets_nothing_posted_after_removal(wake_up: bool) {
    use crate::sse_client::RawStream;
    use std::time::Duration;
    let app = TestApp::spawn_with(|c| {
        // A slow timed poll, so the wake-up path is what delivers.
        c.stream.poll_interval = Duration::from_millis(if wake_up { 2000 } else { 300 });
        if wake_up {
            c.database.url_unpooled = Some(c.database.url.clone());
        }
    })
    .await;
    for trial in 0..5 {
        let room = format!("secret{trial}");
        let created = app
            .post_as(
                ALICE,
                "/api/rooms",
                &json!({"id": room, "visibility": "private"}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        app.post_as(
            ALICE,
            &format!("/api/rooms/{room}/members"),
            &json!({"email": BOB}),
        )
        .await;
        let mut bobs = RawStream::open_as(&app, BOB, &room, "", None).await;
        // Registered, and the wake-up path warmed up by one message Bob may see.
        let before = app.send(&room, "before").await;
        loop {
            let block = bobs.next_event(Duration::from_secs(5)).await.expect("open");
            if block.id.as_deref() == Some(&before["seq"].to_string()) {
                break;
            }
        }
        let removed = app
            .client
            .delete(app.url(&format!("/api/rooms/{room}/members/{BOB}")))
            .bearer_auth(app.token(ALICE))
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        for n in 0..5 {
            app.send(&room, &format!("after {n}")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Bob's stream ends; nothing posted after the removal is in it.
        while let Some(block) = bobs.next(Duration::from_secs(5)).await {
            if let Some(data) = &block.data {
                assert!(
                    !data.contains("after "),
                    "trial {trial} (wake-up {wake_up}): a removed member received {data}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_removed_member_receives_nothing_posted_after_removal_with_the_wake_up() {
    removed_member_gets_nothing_posted_after_removal(true).await;
}

#[tokio::test]
async fn a_removed_member_receives_nothing_posted_after_removal_when_polling() {
    removed_member_gets_nothing_posted_after_removal(false).await;
}

/// Item 4: with Postgres frozen (SIGSTOP) mid-traffic, a request already holding a
/// connection answers 503 `database_unavailable` with `Retry-After` within the deadline
/// (`DB_ACQUIRE_TIMEOUT_MS` + `DB_STATEMENT_TIMEOUT_MS` + 1 s), and the API recovers on thaw.
#[tokio::test]
async fn a_frozen_database_is_a_503_within_the_deadline_never_a_hang() {
    use std::time::{Duration, Instant};
    let pg = chat_dev::EmbeddedPostgres::start().await.unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    shared::db::MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
    let s3 = chat_dev::EmbeddedS3::start("chat-test", None).unwrap();
    let mut config = crate::helpers::base_config(&pg.url(), &s3);
    config.database.acquire_timeout = Duration::from_millis(1000);
    config.database.statement_timeout = Duration::from_millis(1000);
    let app = TestApp::serve(config, pg.url(), s3).await;
    app.room("general").await;
    app.send("general", "before").await;

    pg.freeze().unwrap();
    let started = Instant::now();
    let response = app.list_messages("general", "").await;
    let took = started.elapsed();
    pg.thaw().unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    )
    .await;
    // The pool's ping on acquire usually notices first (1 s); the request deadline (3 s)
    // bounds anything else. Either way: a 503 within the deadline.
    assert!(
        took < Duration::from_millis(3500),
        "answered after {took:?}; the deadline is 3 s"
    );

    // Thawed: the API answers again.
    let mut ok = false;
    for _ in 0..20 {
        if app.list_messages("general", "").await.status() == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "the API did not recover after the thaw");
}

/// Item 4: every pooled connection carries `statement_timeout`, so Postgres itself cancels
/// a runaway statement, and that is a 503, not a 500.
#[tokio::test]
async fn postgres_cancels_a_statement_past_db_statement_timeout() {
    use std::time::{Duration, Instant};
    let app = TestApp::spawn_with(|c| {
        c.database.statement_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let err = sqlx::query("SELECT pg_sleep(3)")
        .execute(&app.app.db)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "not cancelled");
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
    let api: shared::http::ApiError = err.into();
    assert_eq!(api.code(), "database_unavailable");
}

/// Item 9: the dev server closes a connection that never finishes its request head, and
/// caps concurrent connections, so half-open sockets cannot starve new clients.
#[tokio::test]
async fn the_dev_server_closes_slow_headers_and_serves_new_clients() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = chat_dev::server::Limits {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 8,
    };
    let served = app.app.clone();
    tokio::spawn(async move {
        let _ =
            chat_dev::server::serve_with(listener, served, std::future::pending(), limits).await;
    });
    // Eight sockets that send half a header and stop: every slot taken.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(socket);
    }
    // The server hangs up on each of them once the head is overdue.
    let started = Instant::now();
    for socket in &mut slow {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "a half-sent request was kept open");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // And a new client is served.
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        app.client
            .get(format!("http://{address}/api/health"))
            .send(),
    )
    .await
    .expect("a new client timed out")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Presigns a 5-byte text file in `general` as Alice and PUTs `bytes`; the presign body.
async fn uploaded(app: &TestApp, bytes: &[u8; 5]) -> Value {
    let upload = app
        .presigned(
            ALICE,
            &json!({"room_id": "general", "file_name": "a.txt", "content_type": "text/plain", "size": 5}),
        )
        .await;
    let put = app.put_upload(&upload, bytes).await;
    assert!(put.status().is_success(), "PUT: {}", put.status());
    upload
}

async fn download(app: &TestApp, url: &str) -> Vec<u8> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.bytes().await.unwrap().to_vec()
}

fn staging_key(upload: &Value) -> String {
    format!("rooms/general/{}.txt", upload["id"].as_str().unwrap())
}

/// Item 6: once a message attaches a file, its bytes are fixed. The upload's presigned PUT
/// is still valid (15 minutes), but it names the staging key, and the message serves the
/// copy at the attached key.
#[tokio::test]
async fn a_put_through_the_old_url_after_sending_changes_nothing_served() {
    use shared::storage::{ObjectState, attached_key};
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = uploaded(&app, b"first").await;
    let sent = app
        .post_message(
            "general",
            &json!({"content": "", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let sent: Value = sent.json().await.unwrap();
    let sent_url = sent["files"][0]["url"].as_str().unwrap().to_owned();
    assert!(sent_url.contains("/attached/rooms/general/"), "{sent_url}");
    // The staging object goes once the send has committed.
    let staging = staging_key(&upload);
    let mut gone = false;
    for _ in 0..50 {
        if app.app.storage.head(&staging).await.unwrap() == ObjectState::Missing {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the staging object was not deleted");

    // The uploader writes other bytes through the URL they were given.
    let put = app.put_upload(&upload, b"evil!").await;
    assert!(put.status().is_success(), "the URL is still valid");
    assert_eq!(download(&app, &sent_url).await, b"first");
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed_url = listed["messages"][0]["files"][0]["url"].as_str().unwrap();
    assert_eq!(download(&app, listed_url).await, b"first");
    assert!(matches!(
        app.app.storage.head(&attached_key(&staging)).await.unwrap(),
        ObjectState::Present { size: 5, .. }
    ));
}

/// Item 6: the copy is conditioned on the ETag the HEAD check saw, so bytes replaced in
/// between are never attached.
#[tokio::test]
async fn bytes_replaced_after_the_check_are_not_copied() {
    use shared::storage::{ObjectState, PinOutcome, attached_key};
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = uploaded(&app, b"first").await;
    let staging = staging_key(&upload);
    let ObjectState::Present {
        etag: Some(seen), ..
    } = app.app.storage.head(&staging).await.unwrap()
    else {
        panic!("no ETag from HEAD");
    };
    assert!(
        app.put_upload(&upload, b"evil!")
            .await
            .status()
            .is_success()
    );
    let storage = &app.app.storage;
    assert_eq!(
        storage.pin(&staging, &seen).await.unwrap(),
        PinOutcome::Changed
    );
    let target = attached_key(&staging);
    assert_eq!(storage.head(&target).await.unwrap(), ObjectState::Missing);
    // With the current ETag it copies; a missing source is Missing.
    let ObjectState::Present {
        etag: Some(now), ..
    } = storage.head(&staging).await.unwrap()
    else {
        panic!("no ETag from HEAD");
    };
    assert_eq!(
        storage.pin(&staging, &now).await.unwrap(),
        PinOutcome::Pinned
    );
    assert!(matches!(
        storage.head(&target).await.unwrap(),
        ObjectState::Present { size: 5, .. }
    ));
    storage.delete(&staging).await.unwrap();
    assert_eq!(
        storage.pin(&staging, &now).await.unwrap(),
        PinOutcome::Missing
    );
}

/// Item 6: while one send holds an upload (its row lock, from the copy to its commit), a
/// second send of the same upload waits instead of copying over the first one's file, then
/// finds it attached.
#[tokio::test]
async fn a_second_send_of_an_upload_never_writes_the_first_ones_file() {
    use shared::storage::{ObjectState, attached_key};
    use sqlx::Connection;
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = uploaded(&app, b"first").await;
    let id: uuid::Uuid = upload["id"].as_str().unwrap().parse().unwrap();
    let target = attached_key(&staging_key(&upload));
    // Stand in for a first send between its copy and its commit.
    let mut first = sqlx::PgConnection::connect(&app.app.config.database.url)
        .await
        .unwrap();
    let mut tx = first.begin().await.unwrap();
    sqlx::query("SELECT id FROM chat_uploads WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let second = tokio::spawn({
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/rooms/general/messages"),
            app.token(ALICE),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"content": "again", "file_ids": [id]}))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.app.storage.head(&target).await.unwrap(),
        ObjectState::Missing,
        "the second send copied while the first held the upload"
    );
    // The first send commits: the upload is attached (its row is gone).
    sqlx::query("DELETE FROM chat_uploads WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let second = second.await.unwrap();
    assert_error(second, StatusCode::BAD_REQUEST, "invalid_upload").await;
    assert_eq!(
        app.app.storage.head(&target).await.unwrap(),
        ObjectState::Missing
    );
}

/// Item 8: the dev server answers what hyper refuses before any route sees it (malformed
/// heads, too many or too large headers, a URI over 64 KiB) with the API's JSON error, not
/// hyper's empty body; on a fresh connection and after a good request on a kept-alive one.
#[tokio::test]
async fn the_dev_server_answers_unparsable_requests_with_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();

    /// Sends `request` raw and reads until the server closes; the status and the JSON body.
    async fn refused(address: &str, request: &[u8]) -> (u16, String, Value) {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_to_end(&mut answer),
        )
        .await
        .expect("the server closes the connection")
        .unwrap();
        split(&answer)
    }
    fn split(answer: &[u8]) -> (u16, String, Value) {
        let text = String::from_utf8_lossy(answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let status = head[9..12].parse().unwrap();
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        (status, head.to_ascii_lowercase(), body)
    }

    let many_headers: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: [(&str, Vec<u8>, u16, &str); 5] = [
        (
            "a malformed request line",
            b"NOT A REQUEST\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a malformed header",
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "150 headers",
            format!("GET /api/health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "a 500 KB header",
            format!(
                "GET /api/health HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
                "a".repeat(500_000)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "a 70,000-byte URI",
            format!(
                "GET /api/health?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
            "uri_too_long",
        ),
    ];
    for (case, request, status, code) in cases {
        let (got, head, body) = refused(&address, &request).await;
        assert_eq!(got, status, "{case}: {head}");
        assert_eq!(body["error"]["code"], code, "{case}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            head.contains("content-type: application/json"),
            "{case}: {head}"
        );
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{case}: {head}"
        );
    }

    // Kept alive: a good request is answered as ever, then a malformed one is JSON too.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(b"GET /api/nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read the whole first answer (its content-length), and no further.
    let mut first = Vec::new();
    loop {
        let mut buf = [0u8; 1024];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after a good request");
        first.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&first).to_ascii_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= length {
                break;
            }
        }
    }
    let (status, head, body) = split(&first);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("route_not_found")),
        "{head}"
    );
    socket.write_all(b"GET / HTTP/9.9\r\n\r\n").await.unwrap();
    let mut second = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_to_end(&mut second),
    )
    .await
    .expect("closed")
    .unwrap();
    let (status, _, body) = split(&second);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

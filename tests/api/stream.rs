use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALICE, BOB, TestApp, assert_error};
use crate::sse_client::{RawStream, follow};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_stream_opens_with_sse_headers_and_a_retry_line() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let mut stream = RawStream::open(&app, "general", "", None).await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    let first = stream.next(WAIT).await.unwrap();
    assert_eq!(first.retry, Some(1000));
}

#[tokio::test]
async fn without_a_resume_point_only_new_messages_are_sent() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 5).await;
    let mut stream = RawStream::open(&app, "general", "", None).await;
    stream.next(WAIT).await.unwrap(); // retry
    let sent = app.send("general", "new").await;
    let event = stream.next_event(WAIT).await.unwrap();
    assert_eq!(event.event.as_deref(), Some("message"));
    assert_eq!(event.id.as_deref(), Some("6"));
    assert_eq!(event.json(), sent);
}

#[tokio::test]
async fn last_event_id_resumes_after_that_seq() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 5).await;
    let mut stream = RawStream::open(&app, "general", "?after=1", Some("2")).await;
    stream.next(WAIT).await.unwrap();
    for seq in 3..=5 {
        let event = stream.next_event(WAIT).await.unwrap();
        assert_eq!(
            event.id,
            Some(seq.to_string()),
            "Last-Event-ID wins over ?after"
        );
        assert_eq!(event.json()["seq"], seq);
    }
}

#[tokio::test]
async fn after_resumes_when_there_is_no_last_event_id() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 5).await;
    let mut stream = RawStream::open(&app, "general", "?after=3", None).await;
    stream.next(WAIT).await.unwrap();
    assert_eq!(
        stream.next_event(WAIT).await.unwrap().id.as_deref(),
        Some("4")
    );
    assert_eq!(
        stream.next_event(WAIT).await.unwrap().id.as_deref(),
        Some("5")
    );
    app.send("general", "live").await;
    assert_eq!(
        stream.next_event(WAIT).await.unwrap().id.as_deref(),
        Some("6")
    );
}

#[tokio::test]
async fn heartbeats_keep_an_idle_stream_alive_and_it_ends_after_its_lifetime() {
    let app = TestApp::spawn_with(|c| {
        c.stream.heartbeat = Duration::from_millis(300);
        c.stream.max_lifetime = Duration::from_secs(2);
    })
    .await;
    app.room("general").await;
    let started = tokio::time::Instant::now();
    let mut stream = RawStream::open(&app, "general", "", None).await;
    stream.next(WAIT).await.unwrap();
    let mut heartbeats = 0;
    while let Some(block) = stream.next(WAIT).await {
        assert!(
            block.comment,
            "only heartbeats on an idle stream: {block:?}"
        );
        heartbeats += 1;
    }
    let lived = started.elapsed();
    assert!(heartbeats >= 4, "{heartbeats} heartbeats");
    assert!(
        lived >= Duration::from_millis(1550) && lived < Duration::from_millis(2600),
        "{lived:?}"
    );
}

#[tokio::test]
async fn a_client_too_far_behind_gets_a_reset_then_live_messages() {
    let app = TestApp::spawn_with(|c| c.stream.max_backlog = 10).await;
    app.room("general").await;
    app.seed_messages("general", 50).await;
    let mut stream = RawStream::open(&app, "general", "", Some("5")).await;
    stream.next(WAIT).await.unwrap();
    let reset = stream.next_event(WAIT).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.id.as_deref(), Some("50"));
    assert_eq!(reset.json(), json!({"last_seq": 50, "last_event_id": 50}));
    app.send("general", "after the reset").await;
    assert_eq!(
        stream.next_event(WAIT).await.unwrap().id.as_deref(),
        Some("51")
    );
}

#[tokio::test]
async fn a_backlog_within_the_limit_is_sent_in_full() {
    let app = TestApp::spawn_with(|c| c.stream.max_backlog = 1000).await;
    app.room("general").await;
    app.seed_messages("general", 1000).await;
    let mut stream = RawStream::open(&app, "general", "?after=0", None).await;
    stream.next(WAIT).await.unwrap();
    for seq in 1..=1000 {
        assert_eq!(
            stream.next_event(WAIT).await.unwrap().id,
            Some(seq.to_string())
        );
    }
}

#[tokio::test]
async fn streams_refuse_bad_resume_points_and_unknown_rooms() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let response = app
        .client
        .get(app.url("/api/rooms/general/stream"))
        .bearer_auth(app.token(ALICE))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    // The README's code for a bad header (issue "Hardening", item 10).
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_last_event_id").await;
    let response = app
        .get_as(ALICE, "/api/rooms/general/stream?after=-1")
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    let response = app.get_as(ALICE, "/api/rooms/nope/stream").await;
    assert_error(response, StatusCode::NOT_FOUND, "room_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_while_a_client_reconnects_every_2_seconds_deliver_every_seq_once_in_order() {
    let app = TestApp::spawn_with(|c| c.stream.max_lifetime = Duration::from_secs(2)).await;
    app.room("general").await;
    let writers = async {
        let writers = (0..8).map(|w| {
            let app = &app;
            async move {
                for i in 0..50 {
                    app.send("general", &format!("writer {w} message {i}"))
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        futures_util::future::join_all(writers).await;
    };
    let (followed, ()) = tokio::join!(
        follow(&app, "general", ALICE, 400, Duration::from_secs(60)),
        writers
    );
    assert_eq!(followed.seqs, (1..=400).collect::<Vec<_>>());
    assert!(
        followed.opens >= 2,
        "the client reconnected {} times",
        followed.opens - 1
    );
}

#[tokio::test]
async fn a_read_mark_reaches_the_users_streams_on_every_room_without_an_id() {
    let app = TestApp::spawn_with(|c| c.stream.poll_interval = Duration::from_millis(50)).await;
    app.room("general").await;
    app.room("other").await;
    app.seed_messages("general", 5).await;
    // Alice watches another room; Bob watches general.
    let mut alice = RawStream::open(&app, "other", "", None).await;
    let mut bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    alice.next(WAIT).await.unwrap();
    bob.next(WAIT).await.unwrap();
    // Let the hub watch both rooms before the mark moves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app
        .client
        .put(app.url("/api/rooms/general/read"))
        .bearer_auth(app.token(ALICE))
        .json(&json!({"seq": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"last_read_seq": 3, "unread": 2})
    );
    let read = alice.next_any_event(WAIT).await.unwrap();
    assert_eq!(read.event.as_deref(), Some("read"));
    assert_eq!(read.id, None, "a read mark is not part of the log");
    assert_eq!(
        read.json(),
        json!({"room_id": "general", "last_read_seq": 3})
    );
    // Bob's stream hears nothing of Alice's mark: the next thing on it is Bob's heartbeat
    // or a message, never a read.
    app.send("general", "after the mark").await;
    let next = bob.next_any_event(WAIT).await.unwrap();
    assert_eq!(next.event.as_deref(), Some("message"), "{next:?}");
}

#[tokio::test]
async fn a_stream_tells_its_position_before_anything_without_an_id() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 3).await;
    // Bob is online, so Alice's stream opens with a presence event, which has no id.
    let _bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    let mut stream = RawStream::open(&app, "general", "?after=0", Some("2")).await;
    let first = stream.next(WAIT).await.unwrap();
    assert_eq!(first.retry, Some(1000));
    assert_eq!(first.id.as_deref(), Some("2"), "the resume point, first");
    assert_eq!(first.data, None);
}

/// An EventSource starts each connection with an empty last-event-id buffer: an id-less
/// event (presence) dispatched before the connection's first id would blank its resume
/// point, and the next reconnect would fall back to `?after=0` and replay the room. The
/// stream's opening block carries its position, so a connection that only saw presence
/// still resumes where the last one ended.
#[tokio::test]
async fn a_connection_with_only_presence_keeps_the_resume_point() {
    use futures_util::StreamExt;
    use reqwest_eventsource::{Event, EventSource};

    let app = TestApp::spawn_with(|c| c.stream.max_lifetime = Duration::from_millis(600)).await;
    app.room("general").await;
    app.seed_messages("general", 3).await;
    let _bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    let url = app.url(&format!(
        "/api/rooms/general/stream?after=0&access_token={}",
        app.token(ALICE)
    ));
    let mut source = EventSource::new(reqwest::Client::new().get(url)).unwrap();
    let (mut opens, mut ids, mut presence) = (0, Vec::new(), 0);
    // Four connections: the first catches up, the next ones see only Bob's presence.
    while opens < 5 {
        match tokio::time::timeout(WAIT, source.next()).await.unwrap() {
            Some(Ok(Event::Open)) => opens += 1,
            Some(Ok(Event::Message(m))) if m.event == "presence" => presence += 1,
            Some(Ok(Event::Message(m))) => ids.push(m.id),
            Some(Err(reqwest_eventsource::Error::StreamEnded)) => {}
            other => panic!("{other:?}"),
        }
    }
    source.close();
    assert!(presence >= 3, "{presence} presence events");
    assert_eq!(
        ids,
        ["1", "2", "3"],
        "each message once, over {opens} connections"
    );
}

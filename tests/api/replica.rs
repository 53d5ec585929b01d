//! The read replica (`DATABASE_URL_READ`) against a real streaming replica of a cluster of
//! the test's own (`pg_basebackup -R` and a second `postgres`): pages, replies and the
//! stream's catch-up are read there; a read naming a seq or event the replica has not
//! replayed (its replay paused with `pg_wal_replay_pause()`) is read from the primary; a
//! replica that is hung or down costs a route nothing but a short wait.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::db::replica::{RETRY_AFTER, ReaderStats};

use crate::helpers::{Replicated, TestApp};
use crate::sse_client::RawStream;

const WAIT: Duration = Duration::from_secs(10);

/// `GET …/messages{query}` as Alice: 200, and the page.
async fn page(app: &TestApp, query: &str) -> Value {
    let response = app.list_messages("general", query).await;
    assert_eq!(response.status(), StatusCode::OK, "list {query}");
    response.json().await.unwrap()
}

/// `GET …/messages/{id}/replies{query}` as Alice: 200, and the page.
async fn replies(app: &TestApp, parent: &Value, query: &str) -> Value {
    let path = format!(
        "/api/rooms/general/messages/{}/replies{query}",
        parent["id"].as_str().unwrap()
    );
    let response = app.get_as(crate::helpers::ALICE, &path).await;
    assert_eq!(response.status(), StatusCode::OK, "replies {query}");
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

async fn reply(app: &TestApp, parent: &Value, content: &str) -> Value {
    let response = app
        .post_message(
            "general",
            &json!({ "content": content, "reply_to": parent["id"] }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "reply {content}");
    response.json().await.unwrap()
}

fn stats(app: &TestApp) -> ReaderStats {
    app.app.reader.stats()
}

/// The messages a stream resuming after event `after` sends, until it has sent `until` (a
/// message's content), by content: each message once, whether it came once or again in a
/// newer state (`message.updated`). Their ids must rise.
async fn resume(app: &TestApp, after: i64, until: &str) -> BTreeSet<String> {
    let mut stream = RawStream::open(app, "general", "", Some(&after.to_string())).await;
    let (mut seen, mut last) = (Vec::new(), after);
    while !seen.iter().any(|c| c == until) {
        let block = stream
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("the stream ended before {until:?}; it sent {seen:?}"));
        // The stream's position, sent first with `retry:`.
        if block.data.is_none() {
            continue;
        }
        let id: i64 = block
            .id
            .as_deref()
            .expect("a log event has an id")
            .parse()
            .unwrap();
        assert!(id > last, "ids rise: {id} after {last}");
        last = id;
        seen.push(block.json()["content"].as_str().unwrap().to_owned());
    }
    seen.into_iter().collect()
}

fn set<const N: usize>(contents: [&str; N]) -> BTreeSet<String> {
    contents.into_iter().map(String::from).collect()
}

/// How many backends of the replica last ran a statement whose text contains `needle`
/// (this check's own excluded): proof, from Postgres itself, of where a read ran.
async fn ran_on_replica(cluster: &Replicated, needle: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'chat' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
    )
    .bind(needle)
    .fetch_one(&cluster.replica_db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_replies_and_catch_up_come_from_the_replica_unless_they_name_what_it_has_not_replayed()
 {
    let cluster = Replicated::start().await;
    let app = cluster.app(|_| {}).await;
    app.room("general").await;
    let one = app.send("general", "one").await;
    let two = app.send("general", "two").await;
    let three = app.send("general", "three").await;
    let r1 = reply(&app, &one, "r1").await;
    cluster.caught_up().await;

    // Caught up: every read is the replica's, as Postgres itself shows.
    let before = stats(&app);
    assert_eq!(before.replica, "on");
    assert_eq!(
        contents(&page(&app, "").await),
        ["one", "two", "three", "r1"]
    );
    assert_eq!(
        contents(&page(&app, &format!("?after={}", one["seq"])).await),
        ["two", "three", "r1"]
    );
    assert_eq!(
        contents(&page(&app, &format!("?before={}", r1["seq"])).await),
        ["one", "two", "three"]
    );
    assert_eq!(contents(&replies(&app, &one, "").await), ["r1"]);
    let after = stats(&app);
    assert_eq!(after.replica_reads - before.replica_reads, 4, "{after:?}");
    assert_eq!(after.primary_reads, before.primary_reads, "{after:?}");
    assert!(ran_on_replica(&cluster, "FROM chat_messages m").await >= 1);
    // A stream resuming inside what the replica has catches up from it.
    assert_eq!(
        resume(&app, one["event_id"].as_i64().unwrap(), "r1").await,
        set(["two", "three", "one", "r1"])
    );
    let caught = stats(&app);
    assert!(caught.replica_reads > after.replica_reads, "{caught:?}");
    assert_eq!(caught.primary_reads, after.primary_reads, "{caught:?}");
    assert!(ran_on_replica(&cluster, "m.event_id > $2").await >= 1);

    // Replay paused: what is written now is on the primary only.
    cluster.pause().await;
    let four = app.send("general", "four").await;
    let r2 = reply(&app, &one, "r2").await;

    // The newest page names nothing. On the instance that wrote them it holds that
    // instance's own writes, so it is the primary's…
    let behind = stats(&app).behind;
    assert_eq!(
        contents(&page(&app, "").await),
        ["one", "two", "three", "r1", "four", "r2"]
    );
    assert_eq!(stats(&app).behind, behind + 1);
    // …and on another instance the replica's, as of its replay, with its position (a
    // stream opened there sends the rest).
    let other = cluster.app(|_| {}).await;
    let newest = page(&other, "").await;
    assert_eq!(contents(&newest), ["one", "two", "three", "r1"]);
    let position = newest["last_event_id"].as_i64().unwrap();
    assert!(position >= r1["event_id"].as_i64().unwrap(), "{newest}");
    assert!(position < four["event_id"].as_i64().unwrap(), "{newest}");
    assert_eq!(stats(&other).replica_reads, 1);
    // Cursors beyond the replica's replay: from the primary, never a page that misses them.
    assert_eq!(
        contents(&page(&other, &format!("?after={}", r1["seq"])).await),
        ["four", "r2"]
    );
    assert_eq!(
        contents(&page(&other, &format!("?before={}", r2["seq"])).await),
        ["one", "two", "three", "r1", "four"]
    );
    assert_eq!(
        contents(&replies(&other, &one, &format!("?after={}", r1["seq"])).await),
        ["r2"]
    );
    assert_eq!(stats(&other).behind, 3);
    // A cursor the replica has replayed is still its to answer.
    assert_eq!(
        contents(&page(&other, &format!("?before={}", three["seq"])).await),
        ["one", "two"]
    );
    assert_eq!(stats(&other).replica_reads, 2);

    // A stream resuming from before what the replica lacks gets all of it (on instances
    // whose hubs have not watched the room yet, so nothing comes from their memory):
    // through the room's window, whose fill reads the primary…
    let windowed = cluster.app(|_| {}).await;
    let sent = resume(&windowed, two["event_id"].as_i64().unwrap(), "r2").await;
    assert_eq!(sent, set(["three", "r1", "four", "one", "r2"]));
    assert!(stats(&windowed).behind >= 1, "{:?}", stats(&windowed));
    // …and through a stream's own reads, with no window.
    let windowless = cluster.app(|c| c.stream.window_events = 0).await;
    let sent = resume(&windowless, two["event_id"].as_i64().unwrap(), "r2").await;
    assert_eq!(sent, set(["three", "r1", "four", "one", "r2"]));
    assert!(stats(&windowless).behind >= 1, "{:?}", stats(&windowless));

    // Replay resumed: the replica catches up and answers the newest page again, in full.
    cluster.resume().await;
    cluster.caught_up().await;
    let (served, behind) = (stats(&app).replica_reads, stats(&app).behind);
    assert_eq!(
        contents(&page(&app, "").await),
        ["one", "two", "three", "r1", "four", "r2"]
    );
    assert_eq!(
        contents(&page(&app, &format!("?after={}", r1["seq"])).await),
        ["four", "r2"]
    );
    assert_eq!(stats(&app).replica_reads, served + 2);
    assert_eq!(stats(&app).behind, behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_dead_replica_never_breaks_a_route_and_each_fallback_is_counted() {
    let cluster = Replicated::start().await;
    let app = cluster
        .app(|c| c.database.read_timeout = Duration::from_millis(300))
        .await;
    app.room("general").await;
    let one = app.send("general", "one").await;
    app.send("general", "two").await;
    reply(&app, &one, "r1").await;
    cluster.caught_up().await;
    assert_eq!(contents(&page(&app, "").await), ["one", "two", "r1"]);
    assert_eq!(stats(&app).replica_reads, 1);

    // Hung (SIGSTOP): a read waits DB_READ_TIMEOUT_MS at most, then the primary answers;
    // the replica is then skipped for a while.
    cluster.replica.freeze().unwrap();
    let started = Instant::now();
    assert_eq!(contents(&page(&app, "").await), ["one", "two", "r1"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let hung = stats(&app);
    assert_eq!(
        (hung.unavailable, hung.replica),
        (1, "unavailable"),
        "{hung:?}"
    );
    let started = Instant::now();
    assert_eq!(contents(&replies(&app, &one, "").await), ["r1"]);
    assert_eq!(
        resume(&app, one["event_id"].as_i64().unwrap(), "r1").await,
        set(["two", "one", "r1"])
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "skipped, not waited on"
    );
    let (status, health) = app.health().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["reads"]["replica"], "unavailable", "{health}");
    assert!(
        health["reads"]["unavailable"].as_u64().unwrap() >= 3,
        "{health}"
    );
    cluster.replica.thaw().unwrap();

    // Down: once the pause after the failure is over, a read tries the replica, which
    // refuses, and the primary answers.
    cluster.replica.stop().await.unwrap();
    tokio::time::sleep(RETRY_AFTER + Duration::from_millis(200)).await;
    let before = stats(&app);
    let started = Instant::now();
    app.send("general", "three").await;
    assert_eq!(
        contents(&page(&app, "").await),
        ["one", "two", "r1", "three"]
    );
    assert_eq!(contents(&replies(&app, &one, "").await), ["r1"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let down = stats(&app);
    assert_eq!(down.unavailable - before.unavailable, 2, "{down:?}");
    assert_eq!(down.replica_reads, before.replica_reads);
    assert_eq!(down.replica, "unavailable");
    assert_eq!(app.health().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_every_read_is_the_primarys() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.send("general", "one").await;
    assert_eq!(contents(&page(&app, "").await), ["one"]);
    let stats = stats(&app);
    assert_eq!((stats.replica, stats.replica_reads), ("off", 0));
    assert_eq!(stats.primary_reads, 1);
    let (_, health) = app.health().await;
    assert_eq!(health["reads"]["replica"], "off");
}

/// `GET …/search?q={q}{query}` as Alice: 200, and the page.
async fn search(app: &TestApp, q: &str, query: &str) -> Value {
    let path = format!("/api/rooms/general/search?q={q}{query}");
    let response = app.get_as(crate::helpers::ALICE, &path).await;
    assert_eq!(response.status(), StatusCode::OK, "search {q}{query}");
    response.json().await.unwrap()
}

/// Matches are sparse, so a search's rows cannot show what the replica replayed: the room's
/// row, read in the same statement, does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_comes_from_the_replica_unless_it_names_what_it_has_not_replayed() {
    let cluster = Replicated::start().await;
    let app = cluster.app(|_| {}).await;
    app.room("general").await;
    for content in ["apple one", "apple two", "pear three"] {
        app.send("general", content).await;
    }
    cluster.caught_up().await;
    let before = stats(&app);
    assert_eq!(
        contents(&search(&app, "apple", "").await),
        ["apple two", "apple one"]
    );
    let after = stats(&app);
    assert_eq!(after.replica_reads, before.replica_reads + 1, "{after:?}");
    assert_eq!(after.primary_reads, before.primary_reads, "{after:?}");
    assert!(ran_on_replica(&cluster, "websearch_to_tsquery").await >= 1);

    // Replay paused: what is written now is on the primary only.
    cluster.pause().await;
    app.send("general", "apple four").await;
    app.send("general", "pear five").await;
    // The instance that wrote them reads its own writes: from the primary.
    assert_eq!(
        contents(&search(&app, "apple", "").await),
        ["apple four", "apple two", "apple one"]
    );
    assert_eq!(stats(&app).behind, after.behind + 1);
    // Another instance, naming nothing: the replica's answer, as of its replay.
    let other = cluster.app(|_| {}).await;
    assert_eq!(
        contents(&search(&other, "apple", "").await),
        ["apple two", "apple one"]
    );
    assert_eq!(stats(&other).replica_reads, 1);
    // A cursor past the replica's replay (seq 5 is not there yet): from the primary, with
    // everything below it.
    assert_eq!(
        contents(&search(&other, "apple", "&before=6").await),
        ["apple four", "apple two", "apple one"]
    );
    assert_eq!(stats(&other).behind, 1);
    // A cursor it has replayed is still its to answer.
    assert_eq!(
        contents(&search(&other, "apple", "&before=3").await),
        ["apple two", "apple one"]
    );
    assert_eq!(stats(&other).replica_reads, 2);
    // No match proves nothing: the primary answers (and finds the new one).
    let none = stats(&other).behind;
    assert_eq!(contents(&search(&other, "five", "").await), ["pear five"]);
    assert_eq!(stats(&other).behind, none + 1);
}

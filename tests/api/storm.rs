//! Issue 16: a reconnect storm is served from the hub's memory. Streams resuming at once
//! share the room lookup and one read of their backlog, so the database work of a storm
//! does not grow with the number of streams; and a storm amid concurrent writers of every
//! kind of change still delivers each event once, in order.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest_eventsource::{Event, EventSource};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use crate::exactly_once::{Done, Known, ROOM, Seen, listed, off, writer};
use crate::helpers::{ALICE, BOB, TestApp, with_database};
use crate::sse_client::RawStream;

/// How far behind each storm stream resumes.
const BEHIND: i64 = 100;

/// Transactions committed or rolled back in the app's database, every connection's
/// counted: the app's pools are closed first, and a backend reports its counts as it exits.
async fn transactions_after_closing(app: &TestApp) -> i64 {
    app.app.db.close().await;
    app.db.close().await;
    let url = app.app.config.database.url.clone();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::connect(&with_database(&url, "postgres"))
        .await
        .expect("admin connection");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (backends,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(&database)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        // The LISTEN connection, if any, lives outside the pools; its one statement stays
        // within the slack.
        if backends <= 1 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut admin)
        .await
        .unwrap();
    let (count,): (i64,) = sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    count
}

/// `n` streams resume at once, `BEHIND` events back, on a process that has never seen the
/// room (a deploy); returns the database's transactions from its creation to the end, and
/// the hub's own count of per-stream catch-up reads.
async fn storm(n: usize) -> (i64, u64, u64) {
    let app = TestApp::spawn_with(|c| {
        c.limits.streams_per_user = 10_000;
        c.stream.max_per_instance = 10_000;
    })
    .await;
    app.room(ROOM).await;
    app.seed_messages(ROOM, 2 * BEHIND).await;
    let last = 2 * BEHIND;
    let resume = (last - BEHIND).to_string();
    let streams = join_all((0..n).map(|i| {
        let resume = resume.clone();
        let app = &app;
        async move {
            let who = if i % 2 == 0 { ALICE } else { BOB };
            let mut stream = RawStream::open_as(app, who, ROOM, "", Some(&resume)).await;
            let mut ids = Vec::new();
            while ids.last() != Some(&last) {
                let block = stream
                    .next(Duration::from_secs(60))
                    .await
                    .expect("the stream ended before catching up");
                // The opening `retry:` block carries the stream's position, not an event.
                if let (Some(id), None) = (block.id, block.retry) {
                    ids.push(id.parse::<i64>().unwrap());
                }
            }
            ids
        }
    }))
    .await;
    for ids in &streams {
        assert_eq!(ids, &((last - BEHIND + 1)..=last).collect::<Vec<_>>());
    }
    let stats = app.app.hub.stats();
    drop(streams);
    let transactions = transactions_after_closing(&app).await;
    (transactions, stats.own_catch_up_reads, stats.lookups_saved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_200_resuming_streams_costs_the_database_what_a_storm_of_20_does() {
    let (small, small_reads, _) = storm(20).await;
    let (large, large_reads, cached) = storm(200).await;
    println!("transactions: 20 streams {small}, 200 streams {large}; lookups from memory {cached}");
    assert_eq!(
        (small_reads, large_reads),
        (0, 0),
        "no stream read its backlog alone"
    );
    assert!(
        cached >= 150,
        "most opens cost no lookup of their own: {cached}"
    );
    // Ticks (2/s) and the presence heartbeat depend on how long the storm takes: a small
    // constant, where one statement per stream would be 180 more.
    assert!(
        large - small <= 12,
        "a storm's cost grew with its streams: {small} for 20, {large} for 200"
    );
}

/// A real `EventSource` client resuming after `from` (`?after=`, which the client's own
/// `Last-Event-ID` overrides on every reconnect), reconnecting whenever the server ends the
/// stream, until it has seen event `target`.
async fn resuming(app: &TestApp, who: &str, from: i64, target: &AtomicI64) -> Seen {
    let client = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let url = app.url(&format!(
        "/api/rooms/{ROOM}/stream?after={from}&access_token={}",
        app.token(who)
    ));
    let mut source = EventSource::new(client.get(url)).expect("event source");
    let mut seen = Seen::new(who);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 && seen.last() >= goal {
            return seen;
        }
        if Instant::now() > deadline {
            seen.problems
                .push(format!("stuck at {} short of {goal}", seen.last()));
            return seen;
        }
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), source.next()).await else {
            continue;
        };
        match next {
            None => panic!("the EventSource gave up"),
            Some(Ok(Event::Open)) => seen.opens += 1,
            Some(Ok(Event::Message(m))) if m.event == "read" => seen.event(None, "read", &m.data),
            Some(Ok(Event::Message(m))) if m.event == "presence" => {}
            Some(Ok(Event::Message(m))) => seen.event(Some(&m.id), &m.event, &m.data),
            Some(Err(reqwest_eventsource::Error::StreamEnded)) => {}
            Some(Err(reqwest_eventsource::Error::Transport(_))) => {}
            Some(Err(err)) => panic!("stream error: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_amid_writers_of_every_change_delivers_each_event_once_in_order() {
    const STREAMS: usize = 120;
    const WRITERS: usize = 8;
    let app = TestApp::spawn_with(|c| {
        c.limits.edits = off("edit");
        c.limits.reactions = off("react");
        c.limits.streams_per_user = 10_000;
        c.stream.max_per_instance = 10_000;
        // Every stream ends after 1.2–1.5 s and resumes: storm after storm.
        c.stream.max_lifetime = Duration::from_millis(1500);
        c.stream.max_backlog = 1_000_000;
        // Smaller than the run's log (the writers add 100s of events a second on a quiet
        // machine), so a stream that lags crosses from Postgres into the window; larger
        // than what a stream's lifetime sees, so a reconnect resumes inside it.
        c.stream.window_events = 600;
    })
    .await;
    app.room(ROOM).await;
    app.seed_messages(ROOM, 2 * BEHIND).await;
    let from = BEHIND;
    let target = AtomicI64::new(0);
    let known: Known = Mutex::new(Vec::new());
    let writing = async {
        let until = Instant::now() + Duration::from_secs(6);
        let done = join_all((0..WRITERS).map(|w| writer(&app, w, &known, until))).await;
        let mut total = Done::default();
        for d in &done {
            total.add(d);
        }
        let (_, last_event_id) = listed(&app, ALICE).await;
        target.store(last_event_id, Ordering::SeqCst);
        (total, last_event_id)
    };
    // The streams of the four writers (their own reactions show as `me`) and a reader.
    let users = [
        ALICE,
        BOB,
        "carol@example.com",
        "dave@example.com",
        "eve@example.com",
    ];
    let subscribing =
        join_all((0..STREAMS).map(|i| resuming(&app, users[i % users.len()], from, &target)));
    let ((done, last_event_id), subscribers) = tokio::join!(writing, subscribing);
    println!("writers: {done:?}; last event {last_event_id}");
    // Changes of every kind besides posts (a loaded machine writes fewer of them).
    assert!(
        done.posts >= 5 && done.edits + done.reactions_added + done.deletes >= 3,
        "{done:?}"
    );

    let mut expected: HashMap<&str, HashMap<String, Value>> = HashMap::new();
    for who in users {
        let (listed, _) = listed(&app, who).await;
        // What a stream resuming after `from` is told of: the messages changed since.
        let changed = listed
            .into_iter()
            .filter(|(_, m)| m["event_id"].as_i64().unwrap() > from)
            .collect();
        expected.insert(who, changed);
    }
    let mut failures = Vec::new();
    for seen in &subscribers {
        let mut problems = seen.problems.clone();
        if seen.last() != last_event_id {
            problems.push(format!("ended at {} not {last_event_id}", seen.last()));
        }
        let expected = &expected[seen.who.as_str()];
        if seen.state.len() != expected.len() {
            problems.push(format!(
                "{} messages streamed, {} listed",
                seen.state.len(),
                expected.len()
            ));
        }
        for (id, message) in expected {
            match seen.state.get(id) {
                None => problems.push(format!("message {id} never seen")),
                Some(got) if got != message => problems.push(format!(
                    "message {id}:\n  listed {message}\n  streamed {got}"
                )),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({} opens): {problems:#?}",
                seen.who, seen.opens
            ));
        }
    }
    let stats = app.app.hub.stats();
    println!(
        "{} streams; opens {}; from memory: {} lookups, {} catch-ups; {} own reads",
        subscribers.len(),
        subscribers.iter().map(|s| s.opens).sum::<usize>(),
        stats.lookups_saved,
        stats.window_catch_ups,
        stats.own_catch_up_reads
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(3)].join("\n")
    );
    assert!(stats.window_catch_ups > 0);
}

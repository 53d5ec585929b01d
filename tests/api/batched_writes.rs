//! Plain posts and edits written together (`db::write_queue`, `POST_BATCH`, `EDIT_BATCH`):
//! each write is decided as its plpgsql function decides it alone, seqs and event ids stay
//! gapless, and concurrent authors' writes really are batched.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::db::limits::RateLimit;
use shared::db::messages::{
    DeleteOf, EditOf, POST_BATCH, PlainPost, ReactionOf, WriteOutcome, delete_batch, edit_batch,
    post_batch, react_batch,
};
use shared::domain::{Emoji, MessageContent, RoomId};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp};

const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";
const ERIN: &str = "erin@example.com";
const FRANK: &str = "frank@example.com";

fn plain(room: &str, user: &str, content: &str, client_id: Option<Uuid>) -> PlainPost {
    PlainPost {
        id: Uuid::now_v7(),
        room: RoomId::parse(room).unwrap(),
        user_email: user.into(),
        content: MessageContent::parse(content.into(), false).unwrap(),
        client_id,
    }
}

async fn room_ids(app: &TestApp, room: &str) -> (i64, i64) {
    sqlx::query_as("SELECT last_seq, last_event FROM chat_rooms WHERE id = $1")
        .bind(room)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Empties `user`'s `action` bucket.
async fn empty_bucket(app: &TestApp, user: &str, action: &str) {
    sqlx::query(
        "INSERT INTO chat_rate_limits (user_email, action, tokens, updated_at)
         VALUES ($1, $2, 0, now())
         ON CONFLICT (user_email, action) DO UPDATE SET tokens = 0, updated_at = now()",
    )
    .bind(user)
    .bind(action)
    .execute(&app.db)
    .await
    .unwrap();
}

/// A private room of Alice's, `secret`, where everyone else is nobody.
async fn secret_room(app: &TestApp) {
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "secret", "visibility": "private"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

fn limit() -> RateLimit {
    RateLimit::parse("post", "30/10s").unwrap()
}

#[tokio::test]
async fn a_batch_decides_each_post_as_one_post_alone_would() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.send("general", "before").await; // seq 1, event 1
    // A private room of Alice's, where Dave is nobody.
    secret_room(&app).await;
    // Erin's bucket is empty.
    empty_bucket(&app, ERIN, "post").await;

    let client_id = Uuid::new_v4();
    let posts = [
        plain("general", BOB, "one", Some(client_id)),
        plain("secret", DAVE, "hidden from dave", None),
        plain("general", CAROL, "two", None),
        plain("nowhere", FRANK, "no such room", None),
        plain("general", ERIN, "refused", None),
        plain("secret", ALICE, "alice's own", None),
    ];
    let outcomes: Vec<WriteOutcome> = post_batch(&app.app.db, &posts, &limit()).await.unwrap();
    let codes: Vec<&str> = outcomes.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "room_not_found",
            "ok",
            "room_not_found",
            "rate_limited",
            "ok"
        ]
    );

    // The room's next seqs and event ids, in the batch's order; nothing burnt by refusals.
    let bob = outcomes[0].message.as_ref().unwrap();
    let carol = outcomes[2].message.as_ref().unwrap();
    let alice = outcomes[5].message.as_ref().unwrap();
    assert_eq!((bob.seq, bob.event_id, bob.created_event), (2, 2, 2));
    assert_eq!((carol.seq, carol.event_id, carol.created_event), (3, 3, 3));
    assert_eq!((alice.seq, alice.event_id), (1, 1));
    assert_eq!(room_ids(&app, "general").await, (3, 3));
    assert_eq!(room_ids(&app, "secret").await, (1, 1));
    assert_eq!(bob.client_id, Some(client_id));
    assert_eq!(bob.user_email, BOB);
    assert_eq!(bob.content, "one");
    assert_eq!(bob.id, posts[0].id);

    // A token each for those who took one, none for Erin, whose answer says when to retry.
    assert_eq!(outcomes[0].tokens_left, Some(29.0));
    assert!(outcomes[4].tokens_left.is_none());
    assert!(outcomes[4].tokens_before.unwrap() < 1.0);
    // Dave took a token before the room turned out hidden, as `chat_post` does.
    let (dave_tokens,): (f64,) = sqlx::query_as(
        "SELECT tokens FROM chat_rate_limits WHERE user_email = $1 AND action = 'post'",
    )
    .bind(DAVE)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(dave_tokens, 29.0);

    // What the batch answered is what the list route serves.
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed = listed["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[1]["id"], bob.id.to_string());
    assert_eq!(listed[1]["event_id"], 2);
    assert_eq!(listed[2]["content"], "two");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(listed[2]["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        carol.created_at.timestamp_millis()
    );

    // The authors' read marks moved to their own posts.
    let marks: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT room_id, user_email, last_read_seq FROM chat_read_marks ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        marks.contains(&("general".into(), BOB.into(), 2)),
        "{marks:?}"
    );
    assert!(
        marks.contains(&("general".into(), CAROL.into(), 3)),
        "{marks:?}"
    );
    assert!(
        marks.contains(&("secret".into(), ALICE.into(), 1)),
        "{marks:?}"
    );
    assert!(
        !marks.iter().any(|(_, u, _)| u == DAVE || u == ERIN),
        "{marks:?}"
    );
}

#[tokio::test]
async fn a_repeated_client_id_undoes_the_whole_batch() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let client_id = Uuid::new_v4();
    let stored = app
        .post_message_as(
            BOB,
            "general",
            &json!({"content": "first", "client_id": client_id}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    let posts = [
        plain("general", CAROL, "would be seq 2", None),
        plain("general", BOB, "a retry", Some(client_id)),
    ];
    let err = post_batch(&app.app.db, &posts, &limit())
        .await
        .expect_err("a unique violation");
    assert!(
        matches!(&err, sqlx::Error::Database(db) if db.constraint() == Some("chat_messages_room_client_id_key")),
        "{err:?}"
    );
    assert_eq!(room_ids(&app, "general").await, (1, 1));

    // One author twice would touch a bucket twice: refused before anything is sent.
    let twice = [
        plain("general", CAROL, "a", None),
        plain("general", CAROL, "b", None),
    ];
    let err = post_batch(&app.app.db, &twice, &limit()).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::Protocol(_)), "{err:?}");
    assert_eq!(room_ids(&app, "general").await, (1, 1));
}

/// Many authors posting at once through the API: some posts go out in batches, every
/// answer is what the list serves, seqs are gapless per room, and a retried `client_id`
/// in the same burst still answers the stored message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_authors_are_written_together_gaplessly() {
    let app = TestApp::spawn().await;
    for room in ["r1", "r2", "r3"] {
        app.room(room).await;
    }
    let retried = Uuid::new_v4();
    let mut answers: Vec<Value> = Vec::new();
    let mut bursts = 0;
    while app.app.posts.stats().batches == 0 || bursts < 2 {
        bursts += 1;
        assert!(bursts <= 5, "5 bursts of 48 concurrent posts and no batch");
        let posts = (0..48).map(|i| {
            let app = &app;
            async move {
                let user = format!("user{i}@example.com");
                let room = ["r1", "r2", "r3"][i % 3];
                // Two of the burst send the same client id, as a retry would.
                let body = if i < 2 {
                    json!({"content": "retried", "client_id": retried})
                } else {
                    json!({"content": format!("burst {bursts} from {i}")})
                };
                let who = if i < 2 { BOB.to_string() } else { user };
                let room = if i < 2 { "r1" } else { room };
                let response = app.post_message_as(&who, room, &body).await;
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            }
        });
        for (status, body) in futures_util::future::join_all(posts).await {
            assert!(
                status == StatusCode::CREATED || status == StatusCode::OK,
                "{status} {body}"
            );
            answers.push(body);
        }
    }
    let stats = app.app.posts.stats();
    println!("{bursts} bursts; queue: {stats:?}");
    assert!(stats.batched >= 2 * stats.batches, "{stats:?}");

    // The retried client id was stored once; both answers are that message.
    let retries: Vec<&Value> = answers
        .iter()
        .filter(|a| a["client_id"] == retried.to_string())
        .collect();
    assert!(retries.len() >= 2);
    assert!(retries.iter().all(|a| a["id"] == retries[0]["id"]));

    let by_id: HashMap<String, &Value> = answers
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_string(), a))
        .collect();
    let mut total = 0;
    for room in ["r1", "r2", "r3"] {
        let listed: Value = app
            .list_messages(room, "?limit=100")
            .await
            .json()
            .await
            .unwrap();
        let listed = listed["messages"].as_array().unwrap();
        let seqs: Vec<i64> = listed.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=listed.len() as i64).collect::<Vec<_>>(),
            "{room}"
        );
        let mut events: Vec<i64> = listed
            .iter()
            .map(|m| m["event_id"].as_i64().unwrap())
            .collect();
        events.dedup();
        assert_eq!(events.len(), listed.len(), "{room}: event ids repeat");
        assert_eq!(
            room_ids(&app, room).await,
            (listed.len() as i64, listed.len() as i64)
        );
        for message in listed {
            let answered = by_id[message["id"].as_str().unwrap()];
            assert_eq!(answered, message, "{room}");
        }
        total += listed.len();
    }
    assert_eq!(total, by_id.len());
}

fn edit_of(room: &str, id: Uuid, user: &str, content: &str) -> EditOf {
    EditOf {
        room: RoomId::parse(room).unwrap(),
        id,
        user_email: user.into(),
        content: MessageContent::parse(content.into(), true).unwrap(),
    }
}

fn id_of(message: &Value) -> Uuid {
    Uuid::parse_str(message["id"].as_str().unwrap()).unwrap()
}

async fn tokens(app: &TestApp, user: &str) -> Option<f64> {
    sqlx::query_scalar(
        "SELECT tokens FROM chat_rate_limits WHERE user_email = $1 AND action = 'edit'",
    )
    .bind(user)
    .fetch_optional(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_edit_batch_decides_each_edit_as_one_edit_alone_would() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let mut sent = HashMap::new();
    for who in [BOB, CAROL, DAVE, ERIN, "ivan@example.com"] {
        let message: Value = app
            .post_message_as(who, "general", &json!({"content": format!("by {who}")}))
            .await
            .json()
            .await
            .unwrap();
        sent.insert(who, id_of(&message));
    }
    // Dave's message is a tombstone; Ivan's edit bucket is empty.
    let gone = app
        .client
        .delete(app.url(&format!("/api/rooms/general/messages/{}", sent[DAVE])))
        .bearer_auth(app.token(DAVE))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);
    empty_bucket(&app, "ivan@example.com", "edit").await;
    secret_room(&app).await;
    let (_, before) = room_ids(&app, "general").await;

    let edits = [
        edit_of("general", sent[CAROL], CAROL, "carol, edited"),
        edit_of("general", sent[BOB], FRANK, "not frank's"),
        edit_of("general", sent[DAVE], DAVE, "a tombstone"),
        edit_of("general", sent[ERIN], ERIN, " \u{3000} "),
        edit_of(
            "general",
            Uuid::now_v7(),
            "gina@example.com",
            "no such message",
        ),
        edit_of("secret", sent[BOB], "hank@example.com", "hidden room"),
        edit_of("secret", sent[BOB], ALICE, "right id, wrong room"),
        edit_of(
            "general",
            sent["ivan@example.com"],
            "ivan@example.com",
            "refused",
        ),
        edit_of("general", sent[BOB], BOB, "bob, edited"),
    ];
    let outcomes = edit_batch(
        &app.app.db,
        &edits,
        &RateLimit::parse("edit", "30/10s").unwrap(),
    )
    .await
    .unwrap();
    let codes: Vec<&str> = outcomes.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "not_message_author",
            "message_deleted",
            "content_required",
            "message_not_found",
            "room_not_found",
            "message_not_found",
            "rate_limited",
            "ok"
        ]
    );
    // The room's next two event ids, in the batch's order; the refusals took none.
    let carol = outcomes[0].message.as_ref().unwrap();
    let bob = outcomes[8].message.as_ref().unwrap();
    assert_eq!((carol.event_id, bob.event_id), (before + 1, before + 2));
    assert_eq!(room_ids(&app, "general").await.1, before + 2);
    assert_eq!(carol.content, "carol, edited");
    assert!(carol.edited_at.is_some());
    assert_eq!(carol.seq, 2);
    assert_eq!(carol.created_event, 2);
    // Refusals cost no token; Ivan's answer says when to retry.
    assert_eq!(tokens(&app, FRANK).await, None);
    assert_eq!(tokens(&app, ERIN).await, None);
    assert_eq!(outcomes[0].tokens_left, Some(29.0));
    assert!(outcomes[7].tokens_before.unwrap() < 1.0);

    // What the batch answered is what the list route serves.
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed_bob = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == bob.id.to_string())
        .unwrap();
    assert_eq!(listed_bob["content"], "bob, edited");
    assert_eq!(listed_bob["event_id"], bob.event_id);
    assert!(listed_bob["edited_at"].is_string());
}

/// Many authors editing at once through the API: some edits go out in batches, and every
/// answer is what the list serves, with distinct event ids up to the room's last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_editors_are_written_together() {
    let app = TestApp::spawn().await;
    app.room("r1").await;
    let authors: Vec<String> = (0..32).map(|i| format!("editor{i}@example.com")).collect();
    let mut ids = Vec::new();
    for author in &authors {
        let message: Value = app
            .post_message_as(author, "r1", &json!({"content": "draft"}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(id_of(&message));
    }
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut bursts = 0;
    while app.app.edits.stats().batches == 0 || bursts < 2 {
        bursts += 1;
        assert!(bursts <= 5, "5 bursts of 32 concurrent edits and no batch");
        let edits = authors.iter().zip(&ids).map(|(author, id)| {
            let app = &app;
            async move {
                let response = app
                    .client
                    .patch(app.url(&format!("/api/rooms/r1/messages/{id}")))
                    .bearer_auth(app.token(author))
                    .json(&json!({"content": format!("edit {bursts} by {author}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<Value>().await.unwrap()
            }
        });
        for answer in futures_util::future::join_all(edits).await {
            answers.insert(answer["id"].as_str().unwrap().to_string(), answer);
        }
    }
    println!("{bursts} bursts; queue: {:?}", app.app.edits.stats());
    let listed: Value = app
        .list_messages("r1", "?limit=100")
        .await
        .json()
        .await
        .unwrap();
    let listed = listed["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 32);
    let mut events: Vec<i64> = listed
        .iter()
        .map(|m| m["event_id"].as_i64().unwrap())
        .collect();
    events.sort_unstable();
    events.dedup();
    assert_eq!(events.len(), 32, "event ids repeat");
    // 32 posts, then 32 edits a burst: every event id was taken, none twice.
    assert_eq!(room_ids(&app, "r1").await.1, 32 + 32 * bursts as i64);
    assert_eq!(*events.last().unwrap(), 32 + 32 * bursts as i64);
    for message in listed {
        assert_eq!(&answers[message["id"].as_str().unwrap()], message);
    }
}

fn reaction_of(room: &str, id: Uuid, user: &str, emoji: &str, add: bool) -> ReactionOf {
    ReactionOf {
        room: RoomId::parse(room).unwrap(),
        id,
        user_email: user.into(),
        emoji: Emoji::parse(emoji).unwrap(),
        add,
    }
}

#[tokio::test]
async fn a_reaction_batch_decides_each_change_as_one_change_alone_would() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let mut sent = HashMap::new();
    for who in [BOB, CAROL, DAVE, ERIN, "ivan@example.com"] {
        let message: Value = app
            .post_message_as(who, "general", &json!({"content": format!("by {who}")}))
            .await
            .json()
            .await
            .unwrap();
        sent.insert(who, id_of(&message));
    }
    let gone = app
        .client
        .delete(app.url(&format!("/api/rooms/general/messages/{}", sent[DAVE])))
        .bearer_auth(app.token(DAVE))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);
    // Erin's message already carries the most distinct emoji a message may.
    sqlx::query(
        "UPDATE chat_messages SET reactions = (SELECT jsonb_agg(jsonb_build_object('emoji', CASE WHEN g = 7 THEN '🦊' ELSE 'e' || g END, 'count', 1)) FROM generate_series(1, 50) g) WHERE id = $1",
    )
    .bind(sent[ERIN])
    .execute(&app.db)
    .await
    .unwrap();
    empty_bucket(&app, "ivan@example.com", "react").await;
    secret_room(&app).await;
    let (_, before) = room_ids(&app, "general").await;
    let limit = RateLimit::parse("react", "60/10s").unwrap();

    let changes = [
        reaction_of("general", sent[BOB], ALICE, "👍", true),
        reaction_of("general", sent[CAROL], BOB, "🎉", false),
        reaction_of("general", sent[DAVE], CAROL, "👍", true),
        reaction_of("general", sent[ERIN], FRANK, "🦀", true),
        reaction_of("general", Uuid::now_v7(), "gina@example.com", "👍", true),
        reaction_of("secret", Uuid::now_v7(), "hank@example.com", "👍", true),
        reaction_of(
            "general",
            sent["ivan@example.com"],
            "ivan@example.com",
            "👍",
            true,
        ),
    ];
    let outcomes = react_batch(&app.app.db, &changes, &limit).await.unwrap();
    let codes: Vec<&str> = outcomes.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "ok",
            "message_deleted",
            "too_many_reactions",
            "message_not_found",
            "room_not_found",
            "rate_limited"
        ]
    );
    let added = outcomes[0].message.as_ref().unwrap();
    assert_eq!(added.event_id, before + 1);
    let counts: Vec<(&str, i64)> = added
        .reactions
        .0
        .iter()
        .map(|r| (r.emoji.as_str(), r.count))
        .collect();
    assert_eq!(counts, [("👍", 1)]);
    assert_eq!(added.mine, ["👍"]);
    assert_eq!(outcomes[0].tokens_left, Some(59.0));
    // Removing a reaction that is not there changes nothing: no event, no token.
    let unchanged = outcomes[1].message.as_ref().unwrap();
    assert_eq!(unchanged.event_id, unchanged.created_event);
    assert_eq!(outcomes[1].tokens_left, None);
    assert_eq!(room_ids(&app, "general").await.1, before + 1);
    assert!(outcomes[6].tokens_before.unwrap() < 1.0);

    // Again: Alice's is there already (unchanged); Bob reacts and Carol removes hers.
    let again = [
        reaction_of("general", sent[BOB], ALICE, "👍", true),
        reaction_of("general", sent[CAROL], BOB, "🎉", true),
        reaction_of("general", sent[ERIN], CAROL, "🦊", true),
    ];
    let outcomes = react_batch(&app.app.db, &again, &limit).await.unwrap();
    assert!(outcomes.iter().all(|o| o.outcome == "ok"));
    let alice = outcomes[0].message.as_ref().unwrap();
    assert_eq!(alice.event_id, before + 1, "unchanged: no new event");
    let bob = outcomes[1].message.as_ref().unwrap();
    let carol = outcomes[2].message.as_ref().unwrap();
    assert_eq!((bob.event_id, carol.event_id), (before + 2, before + 3));
    assert_eq!(bob.mine, ["🎉"]);
    let counts = &carol.reactions.0;
    assert_eq!(counts.len(), 50);
    assert_eq!((counts[6].emoji.as_str(), counts[6].count), ("🦊", 2));

    // The list serves what the batches answered.
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed_bob = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == sent[BOB].to_string())
        .unwrap();
    assert_eq!(listed_bob["event_id"], before + 1);
    assert_eq!(listed_bob["reactions"][0]["emoji"], "👍");
    assert_eq!(listed_bob["reactions"][0]["count"], 1);
    assert_eq!(listed_bob["reactions"][0]["me"], true);
}

/// Many users reacting at once through the API, several to one message: some changes go
/// out in batches, and the counts and event ids come out as if written one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reactions_are_written_together() {
    let app = TestApp::spawn().await;
    app.room("r1").await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let message: Value = app
            .post_message_as(BOB, "r1", &json!({"content": format!("m{i}")}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(id_of(&message));
    }
    let users: Vec<String> = (0..32).map(|i| format!("fan{i}@example.com")).collect();
    let mut bursts = 0;
    while app.app.reactions.stats().batches == 0 || bursts < 2 {
        bursts += 1;
        assert!(
            bursts <= 5,
            "5 bursts of 32 concurrent reactions and no batch"
        );
        // Burst k adds emoji k to every message from four users each.
        let changes = users.iter().enumerate().map(|(u, user)| {
            let (app, id) = (&app, ids[u % 8]);
            async move {
                let response = app
                    .client
                    .put(app.url(&format!(
                        "/api/rooms/r1/messages/{id}/reactions/{}",
                        ["👍", "🎉", "🦀", "❤️", "🚀"][bursts - 1]
                    )))
                    .bearer_auth(app.token(user))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        });
        futures_util::future::join_all(changes).await;
    }
    println!("{bursts} bursts; queue: {:?}", app.app.reactions.stats());
    let listed: Value = app.list_messages("r1", "").await.json().await.unwrap();
    let listed = listed["messages"].as_array().unwrap();
    for message in listed {
        let counts: Vec<i64> = message["reactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_i64().unwrap())
            .collect();
        assert_eq!(counts, vec![4; bursts], "{message}");
    }
    // 8 posts, then 32 changes a burst: every event id taken once.
    assert_eq!(room_ids(&app, "r1").await.1, 8 + 32 * bursts as i64);
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM chat_message_reactions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 32 * bursts as i64);
}

/// A write that finds nothing in flight is written from its request's own task. If that
/// request goes away mid-write (the client hung up), the writes queued behind it still get a
/// writer: the slot passes to a new batch writer.
#[tokio::test]
async fn writes_queued_behind_a_dropped_request_are_still_written() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    // Hold the room's row, so the first write waits inside Postgres.
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM chat_rooms WHERE id = 'general' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let first = tokio::spawn({
        let queue = app.app.posts.clone();
        async move { queue.write(plain("general", ALICE, "first", None)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued: Vec<_> = [BOB, CAROL, DAVE]
        .into_iter()
        .map(|user| {
            let queue = app.app.posts.clone();
            tokio::spawn(async move { queue.write(plain("general", user, "queued", None)).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.abort();
    let _ = first.await;
    holder.rollback().await.unwrap();
    for write in queued {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), write)
            .await
            .expect("a queued write was left without a writer")
            .unwrap()
            .unwrap();
        assert_eq!(outcome.outcome, "ok");
    }
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chat_messages WHERE content = 'queued'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(queued, 3);
}

fn delete_of(room: &str, id: Uuid, user: &str) -> DeleteOf {
    DeleteOf {
        room: RoomId::parse(room).unwrap(),
        id,
        user_email: user.into(),
    }
}

async fn post_as(app: &TestApp, who: &str, body: Value) -> Uuid {
    let response = app.post_message_as(who, "general", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    id_of(&response.json().await.unwrap())
}

async fn http_delete(app: &TestApp, who: &str, id: Uuid) {
    let gone = app
        .client
        .delete(app.url(&format!("/api/rooms/general/messages/{id}")))
        .bearer_auth(app.token(who))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_delete_batch_decides_each_delete_as_one_delete_alone_would() {
    let app = TestApp::spawn().await;
    app.room("general").await; // Alice's
    let kim = "kim@example.com";
    let ivan = "ivan@example.com";
    let mut sent = HashMap::new();
    for who in [BOB, CAROL, DAVE, FRANK, ivan] {
        sent.insert(
            who,
            post_as(&app, who, json!({"content": format!("by {who}")})).await,
        );
    }
    // Erin replies to Bob twice; Kim sends a file.
    let replies = [
        post_as(
            &app,
            ERIN,
            json!({"content": "re 1", "reply_to": sent[BOB]}),
        )
        .await,
        post_as(
            &app,
            ERIN,
            json!({"content": "re 2", "reply_to": sent[BOB]}),
        )
        .await,
    ];
    let upload = app
        .presigned(
            kim,
            &json!({"room_id": "general", "file_name": "a.txt", "content_type": "text/plain",
                    "size": 3}),
        )
        .await;
    assert!(app.put_upload(&upload, b"abc").await.status().is_success());
    let with_file = post_as(
        &app,
        kim,
        json!({"content": "a file", "file_ids": [upload["id"]]}),
    )
    .await;
    let file_key: String =
        sqlx::query_scalar("SELECT object_key FROM chat_message_files WHERE message_id = $1")
            .bind(with_file)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // Frank's message is a tombstone already; Ivan's bucket is empty; Alice has a private
    // room.
    http_delete(&app, FRANK, sent[FRANK]).await;
    let frank_event: i64 = sqlx::query_scalar("SELECT event_id FROM chat_messages WHERE id = $1")
        .bind(sent[FRANK])
        .fetch_one(&app.db)
        .await
        .unwrap();
    empty_bucket(&app, "ivan@example.com", "edit").await;
    secret_room(&app).await;
    let (_, before) = room_ids(&app, "general").await;
    let deleted_before: i64 =
        sqlx::query_scalar("SELECT deleted_count FROM chat_rooms WHERE id = 'general'")
            .fetch_one(&app.db)
            .await
            .unwrap();

    let deletes = [
        delete_of("general", sent[BOB], BOB),
        delete_of("general", sent[DAVE], "gina@example.com"),
        delete_of("general", sent[CAROL], ALICE),
        delete_of("general", sent[FRANK], FRANK),
        delete_of("general", Uuid::now_v7(), "hank@example.com"),
        delete_of("secret", replies[0], "jill@example.com"),
        delete_of("general", sent[ivan], ivan),
        delete_of("general", with_file, kim),
    ];
    let outcomes = delete_batch(
        &app.app.db,
        &deletes,
        &RateLimit::parse("edit", "30/10s").unwrap(),
    )
    .await
    .unwrap();
    let codes: Vec<&str> = outcomes.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "not_message_author",
            "ok",
            "ok",
            "message_not_found",
            "room_not_found",
            "rate_limited",
            "ok"
        ]
    );

    // Bob's tombstone takes the room's next event, his replies' emptied quotes the next two
    // in seq order; then the owner's delete of Carol's, then Kim's. The tombstone already
    // there takes none; the refusals take none.
    let bob = outcomes[0].message.as_ref().unwrap();
    assert_eq!(bob.event_id, before + 1);
    assert_eq!((bob.content.as_str(), bob.deleted_at.is_some()), ("", true));
    assert!(bob.files.0.is_empty() && bob.reactions.0.is_empty() && bob.mine.is_empty());
    for (reply, event) in replies.iter().zip([before + 2, before + 3]) {
        let (excerpt, event_id): (String, i64) =
            sqlx::query_as("SELECT reply_excerpt, event_id FROM chat_messages WHERE id = $1")
                .bind(reply)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!((excerpt.as_str(), event_id), ("", event));
    }
    let carol = outcomes[2].message.as_ref().unwrap();
    assert_eq!(
        (carol.event_id, carol.user_email.as_str()),
        (before + 4, CAROL)
    );
    let again = outcomes[3].message.as_ref().unwrap();
    assert_eq!((again.event_id, again.content.as_str()), (frank_event, ""));
    assert_eq!(outcomes[3].tokens_left, None);
    let kims = outcomes[7].message.as_ref().unwrap();
    assert_eq!(kims.event_id, before + 5);
    assert_eq!(room_ids(&app, "general").await.1, before + 5);
    let deleted_after: i64 =
        sqlx::query_scalar("SELECT deleted_count FROM chat_rooms WHERE id = 'general'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(deleted_after, deleted_before + 3);

    // Kim's file is gone from the message and queued for storage, and named in the answer.
    assert_eq!(
        outcomes[7].trashed.as_deref(),
        Some(&[file_key.clone()][..])
    );
    assert_eq!(outcomes[0].trashed.as_deref(), Some(&[][..]));
    let (files, trash): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM chat_message_files WHERE message_id = $1),
                (SELECT count(*) FROM chat_object_trash WHERE object_key = $2)",
    )
    .bind(with_file)
    .bind(&file_key)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((files, trash), (0, 1));

    // Refusals cost no token; the tombstone deleted again neither; Ivan's says when to retry.
    assert_eq!(tokens(&app, "gina@example.com").await, None);
    assert_eq!(tokens(&app, "hank@example.com").await, None);
    assert_eq!(outcomes[0].tokens_left, Some(29.0));
    assert!(outcomes[6].tokens_before.unwrap() < 1.0);

    // What the batch answered is what the list route serves.
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed_bob = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == bob.id.to_string())
        .unwrap();
    assert_eq!(listed_bob["content"], "");
    assert_eq!(listed_bob["event_id"], bob.event_id);
    assert!(listed_bob["deleted_at"].is_string());
}

/// One statement cannot change a row twice, so a batch holding a reply and its original is
/// undone whole; the queue then sends each delete alone, and both are done.
#[tokio::test]
async fn a_reply_and_its_original_deleted_together_are_each_written_alone() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let original = post_as(&app, BOB, json!({"content": "original"})).await;
    let reply = post_as(
        &app,
        CAROL,
        json!({"content": "reply", "reply_to": original}),
    )
    .await;
    let other = post_as(&app, DAVE, json!({"content": "other"})).await;
    let (_, before) = room_ids(&app, "general").await;
    let limit = RateLimit::parse("edit", "30/10s").unwrap();
    let both = [
        delete_of("general", original, BOB),
        delete_of("general", reply, CAROL),
    ];
    let err = delete_batch(&app.app.db, &both, &limit).await.unwrap_err();
    assert!(format!("{err}").contains("reply and its original"), "{err}");
    assert_eq!(
        room_ids(&app, "general").await.1,
        before,
        "the batch wrote nothing"
    );

    // Through the queue: Dave's delete waits on the room's row, so the other two queue
    // behind it and go out as one batch.
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM chat_rooms WHERE id = 'general' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let first = tokio::spawn({
        let queue = app.app.deletes.clone();
        let d = delete_of("general", other, DAVE);
        async move { queue.write(d).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let queued: Vec<_> = both
        .iter()
        .cloned()
        .map(|d| {
            let queue = app.app.deletes.clone();
            tokio::spawn(async move { queue.write(d).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.rollback().await.unwrap();
    assert_eq!(first.await.unwrap().unwrap().outcome, "ok");
    for write in queued {
        assert_eq!(write.await.unwrap().unwrap().outcome, "ok");
    }
    assert!(app.app.deletes.stats().batches >= 1);
    let (deleted, excerpt): (bool, String) = sqlx::query_as(
        "SELECT deleted_at IS NOT NULL, reply_excerpt FROM chat_messages WHERE id = $1",
    )
    .bind(reply)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((deleted, excerpt.as_str()), (true, ""));
    // Dave's, Bob's and Carol's tombstones, and the reply's emptied quote if Bob's came first.
    let last = room_ids(&app, "general").await.1;
    assert!(
        last == before + 3 || last == before + 4,
        "{before} -> {last}"
    );
}

/// `POST_BATCH`'s plan on `conn`, after six calls: the plan cache's choice by then.
async fn batch_plan(conn: &mut sqlx::PgConnection) -> String {
    sqlx::query(&format!(
        "PREPARE batch(text[], uuid[], text[], text[], uuid[], text, float8, float8) AS {POST_BATCH}"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let mut plan: Vec<String> = Vec::new();
    for _ in 0..6 {
        plan = sqlx::query_scalar(
            "EXPLAIN EXECUTE batch(ARRAY['general'], ARRAY[gen_random_uuid()], ARRAY['a@b.c'],
                                   ARRAY['x'], ARRAY[NULL::uuid], 'post', 30, 3)",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    }
    plan.join("\n")
}

/// The queues' connections plan a batch once (`db::lazy_write_pool`). With Postgres's
/// default, the plan made for the arrays in hand always looks cheaper than one for arrays of
/// any length, so a batch is planned again on every call.
#[tokio::test]
async fn the_queues_connections_plan_a_batch_once() {
    let app = TestApp::spawn().await;
    let mut conn = app.app.posts.db().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode, "force_generic_plan");
    // The generic plan reads the bucket's capacity from its parameter.
    let plan = batch_plan(&mut conn).await;
    assert!(plan.contains("LEAST($7"), "{plan}");
    // On a connection with the default, the sixth call is still planned for its arrays.
    let mut other = app.db.acquire().await.unwrap();
    let plan = batch_plan(&mut other).await;
    assert!(!plan.contains("LEAST($7"), "{plan}");
}

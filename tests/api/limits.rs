//! Rate limits: per-user token buckets in Postgres, shared by every instance.

use chat_dev::EmbeddedS3;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::db::limits::RateLimit;

use crate::helpers::{ALICE, BOB, TestApp, assert_error, base_config};

fn limited(limit: &str, action: &'static str) -> RateLimit {
    RateLimit::parse(action, limit).unwrap()
}

fn assert_quota_headers(response: &reqwest::Response, limit: u32) {
    let h = response.headers();
    assert_eq!(h["ratelimit-limit"], limit.to_string().as_str());
    assert!(
        h["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .is_ok()
    );
    assert!(
        h["ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
}

#[tokio::test]
async fn the_31st_post_in_10_seconds_is_429_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.limits.posts = limited("30/10s", "post")).await;
    app.room("general").await;
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let refused = loop {
        let response = app
            .post_message("general", &json!({"content": format!("m{accepted}")}))
            .await;
        assert_quota_headers(&response, 30);
        if response.status() != StatusCode::CREATED {
            break response;
        }
        accepted += 1;
        assert!(accepted <= 60, "never limited");
    };
    // 30 at once, plus what refilled (3 a second) while they were being sent.
    let refilled = (started.elapsed().as_secs_f64() * 3.0).ceil() as usize;
    assert!(
        (30..=30 + refilled).contains(&accepted),
        "{accepted} accepted, {refilled} refilled"
    );
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(
        refused.headers()["retry-after"],
        "1",
        "a token comes back every 1/3 s"
    );
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Nothing was stored for the refused post.
    let listed: Value = app
        .list_messages("general", "?limit=200")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), accepted);
    // Another user has a bucket of their own.
    assert_eq!(
        app.post_message_as(BOB, "general", &json!({"content": "hi"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    // Tokens come back over time.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.post_message("general", &json!({"content": "later"}))
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn remaining_counts_down_with_each_post() {
    let app = TestApp::spawn_with(|c| c.limits.posts = limited("5/1h", "post")).await;
    app.room("general").await;
    for left in (0..5).rev() {
        let response = app.post_message("general", &json!({"content": "x"})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            left.to_string().as_str()
        );
        let reset: u64 = response.headers()["ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset > 0 && reset <= 3600, "{reset}");
    }
}

#[tokio::test]
async fn a_bucket_holds_across_instances() {
    let first = TestApp::spawn_with(|c| c.limits.posts = limited("10/1h", "post")).await;
    first.room("general").await;
    let s3 = EmbeddedS3::start("chat-test", None).unwrap();
    let url = first.app.config.database.url.clone();
    let mut config = base_config(&url, &s3);
    config.limits.posts = limited("10/1h", "post");
    let second = TestApp::serve(config, url, s3).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.post_message("general", &json!({"content": "x"}))
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    for app in [&first, &second] {
        let response = app.post_message("general", &json!({"content": "x"})).await;
        assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}

#[tokio::test]
async fn presigns_and_room_creation_are_limited_too() {
    let app = TestApp::spawn_with(|c| {
        c.limits.uploads = limited("3/1m", "upload");
        c.limits.rooms = limited("2/1h", "room");
    })
    .await;
    for id in ["a", "b"] {
        let response = app.create_room(id).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_quota_headers(&response, 2);
    }
    let refused = app.create_room("c").await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1700..=1800).contains(&retry_after), "{retry_after}");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    let upload =
        json!({"room_id": "a", "file_name": "a.txt", "content_type": "text/plain", "size": 1});
    for _ in 0..3 {
        let response = app.presign(ALICE, &upload).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_quota_headers(&response, 3);
    }
    assert_error(
        app.presign(ALICE, &upload).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn a_retried_send_does_not_spend_a_token() {
    let app = TestApp::spawn_with(|c| c.limits.posts = limited("2/1h", "post")).await;
    app.room("general").await;
    let body = json!({"content": "once", "client_id": uuid::Uuid::new_v4()});
    assert_eq!(
        app.post_message("general", &body).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.post_message("general", &body).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_message("general", &body).await.status(),
        StatusCode::OK
    );
    let second = app
        .post_message("general", &json!({"content": "two"}))
        .await;
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["ratelimit-remaining"], "0");
}

#[tokio::test]
async fn a_user_may_hold_at_most_the_configured_number_of_streams() {
    let app = TestApp::spawn_with(|c| c.limits.streams_per_user = 3).await;
    app.room("general").await;
    let open = |email: &'static str| {
        app.client
            .get(app.url("/api/rooms/general/stream"))
            .bearer_auth(app.token(email))
            .send()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let response = open(ALICE).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response);
    }
    let refused = open(ALICE).await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams_for_user",
    )
    .await;
    // Others are not affected, and closing one frees a slot.
    assert_eq!(open(BOB).await.unwrap().status(), StatusCode::OK);
    drop(held.pop());
    let reopened = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let response = open(ALICE).await.unwrap();
            if response.status() == StatusCode::OK {
                return response;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "the slot was never freed");
}

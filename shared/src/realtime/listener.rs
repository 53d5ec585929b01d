//! The NOTIFY wake-up: one direct connection per process LISTENs on `chat_messages` and
//! wakes the hub for the room a post names, and hands it the typing and presence events
//! sent there. LISTEN needs a session, so this uses
//! `DATABASE_URL_UNPOOLED`; polling stays on as the safety net for notifications lost
//! while reconnecting.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::HubInner;

pub const CHANNEL: &str = "chat_messages";

pub(super) async fn listen(hub: Arc<HubInner>, url: String) {
    const FIRST_RETRY: Duration = Duration::from_millis(250);
    let mut backoff = FIRST_RETRY;
    loop {
        // A session only ever ends in an error; one that got as far as listening earns a
        // quick retry, repeated failures to connect back off up to 5 s.
        let Err(err) = session(&hub, &url, &mut backoff, FIRST_RETRY).await;
        tracing::warn!(
            error = format!("{err:#}"),
            "LISTEN connection failed; polling covers until it is back"
        );
        hub.stats.listener_connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One LISTEN session, until its connection fails.
async fn session(
    hub: &HubInner,
    url: &str,
    backoff: &mut Duration,
    first_retry: Duration,
) -> anyhow::Result<std::convert::Infallible> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    *backoff = first_retry;
    hub.stats.listener_connected.store(true, Ordering::Relaxed);
    hub.stats.listener_connects.fetch_add(1, Ordering::Relaxed);
    // Anything committed while we were not listening is picked up now.
    hub.wake_all();
    loop {
        match listener.try_recv().await? {
            Some(notification) => match parse_payload(notification.payload()) {
                Some(Payload::Advanced(room, seq)) => hub.notified(room, seq),
                Some(Payload::Typing(room, data)) => hub.typed(room, data),
                Some(Payload::Presence(room, data)) => hub.heard_presence(room, data),
                None => {}
            },
            // The connection dropped; sqlx reconnected and re-LISTENed.
            None => {
                hub.stats.listener_connects.fetch_add(1, Ordering::Relaxed);
                hub.wake_all();
            }
        }
    }
}

/// What one notification on the channel says.
#[derive(Debug, PartialEq, Eq)]
enum Payload<'a> {
    /// `room:seq`, as the log's writes send it.
    Advanced(&'a str, i64),
    /// `typing:room:{json}`, as `POST /api/rooms/{room}/typing` sends it (room ids have no
    /// `:`). Never in the log.
    Typing(&'a str, &'a str),
    /// `presence:room:{json}`, as another instance's hub sends it when a user's first
    /// stream there opened or their last closed (debounced).
    Presence(&'a str, &'a str),
}

fn parse_payload(payload: &str) -> Option<Payload<'_>> {
    // A room named `typing` still sends `typing:seq`, with no second `:`.
    if let Some((room, data)) = payload
        .strip_prefix("typing:")
        .and_then(|rest| rest.split_once(':'))
    {
        return Some(Payload::Typing(room, data));
    }
    if let Some((room, data)) = payload
        .strip_prefix("presence:")
        .and_then(|rest| rest.split_once(':'))
    {
        return Some(Payload::Presence(room, data));
    }
    let (room, seq) = payload.rsplit_once(':')?;
    Some(Payload::Advanced(room, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_room_and_a_seq() {
        assert_eq!(
            parse_payload("general:42"),
            Some(Payload::Advanced("general", 42))
        );
        assert_eq!(
            parse_payload(r#"typing:general:{"user_email":"a@b.c"}"#),
            Some(Payload::Typing("general", r#"{"user_email":"a@b.c"}"#))
        );
        assert_eq!(
            parse_payload(r#"presence:general:{"status":"online"}"#),
            Some(Payload::Presence("general", r#"{"status":"online"}"#))
        );
        assert_eq!(
            parse_payload("presence:7"),
            Some(Payload::Advanced("presence", 7))
        );
        assert_eq!(
            parse_payload("typing:7"),
            Some(Payload::Advanced("typing", 7))
        );
        assert_eq!(parse_payload("general"), None);
        assert_eq!(parse_payload("general:x"), None);
    }
}

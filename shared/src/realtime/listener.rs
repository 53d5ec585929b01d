//! The NOTIFY wake-up: one direct connection per process LISTENs on `chat_messages` and
//! wakes the hub for the room a post names. LISTEN needs a session, so this uses
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
            Some(notification) => {
                if let Some((room, seq)) = parse_payload(notification.payload()) {
                    hub.notified(room, seq);
                }
            }
            // The connection dropped; sqlx reconnected and re-LISTENed.
            None => {
                hub.stats.listener_connects.fetch_add(1, Ordering::Relaxed);
                hub.wake_all();
            }
        }
    }
}

/// `room:seq`, as the insert statement sends it.
fn parse_payload(payload: &str) -> Option<(&str, i64)> {
    let (room, seq) = payload.rsplit_once(':')?;
    Some((room, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_room_and_a_seq() {
        assert_eq!(parse_payload("general:42"), Some(("general", 42)));
        assert_eq!(parse_payload("general"), None);
        assert_eq!(parse_payload("general:x"), None);
    }
}

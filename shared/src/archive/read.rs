//! Reads through the boundary: the archived messages a page, a reply list or a write
//! needs, merged with the hot rows so a client cannot tell the tiers apart.
//!
//! Invariant of the move: it takes a room's oldest hot messages by seq, so every archived
//! seq is at most the room's `archived_seq`, and a hot page whose lowest seq is above it
//! needs no segment. A message brought back for a write (`restore`) is hot again, and its
//! copy in the segment is stale: where a seq is in both, the hot row wins (and between two
//! segments, the newer event).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::ArchivedMessage;
use crate::App;
use crate::db;
use crate::db::messages::MessageRow;

/// Segments read for one page, at most.
const SEGMENTS_PER_PAGE: i64 = 32;

/// Keeps, per seq, the copy with the newest event.
fn keep_newest(into: &mut BTreeMap<i64, ArchivedMessage>, message: &ArchivedMessage) {
    match into.get(&message.seq) {
        Some(held) if held.event_id >= message.event_id => {}
        _ => {
            into.insert(message.seq, message.clone());
        }
    }
}

/// The newest `want` archived messages of `room` with `seq < below`, newest first.
pub async fn below(
    app: &App,
    room: &str,
    below: i64,
    want: usize,
) -> anyhow::Result<Vec<ArchivedMessage>> {
    let segments = db::archive::segments_below(&app.db, room, below, SEGMENTS_PER_PAGE).await?;
    let mut got = BTreeMap::new();
    for segment in &segments {
        // Segments come newest range first: none further on holds a seq above this one's
        // `last_seq`, so once `want` are above it the page is whole.
        if got.range(segment.last_seq + 1..).count() >= want {
            break;
        }
        let content = app.segments.load(&app.storage, &segment.object_key).await?;
        for message in content.messages.iter().filter(|m| m.seq < below) {
            keep_newest(&mut got, message);
        }
    }
    Ok(got.into_values().rev().take(want).collect())
}

/// The oldest `want` archived messages of `room` with `seq > above`, oldest first.
pub async fn above(
    app: &App,
    room: &str,
    above: i64,
    want: usize,
) -> anyhow::Result<Vec<ArchivedMessage>> {
    let segments = db::archive::segments_above(&app.db, room, above, SEGMENTS_PER_PAGE).await?;
    let mut got = BTreeMap::new();
    for segment in &segments {
        if got.range(..segment.first_seq).count() >= want {
            break;
        }
        let content = app.segments.load(&app.storage, &segment.object_key).await?;
        for message in content.messages.iter().filter(|m| m.seq > above) {
            keep_newest(&mut got, message);
        }
    }
    Ok(got.into_values().take(want).collect())
}

/// A page merged from the hot rows and the archived messages, as `viewer` sees them.
/// `descending`: the page is the newest `limit` (hot rows and `archived` newest first);
/// otherwise the oldest. Answers the page in ascending seq and whether more lie beyond.
pub fn merge(
    hot: Vec<MessageRow>,
    hot_more: bool,
    archived: Vec<ArchivedMessage>,
    viewer: &str,
    limit: usize,
    descending: bool,
) -> (Vec<MessageRow>, bool) {
    let mut all: BTreeMap<i64, MessageRow> = hot.into_iter().map(|r| (r.seq, r)).collect();
    for message in archived {
        all.entry(message.seq)
            .or_insert_with(|| message.to_row(viewer));
    }
    let more = hot_more || all.len() > limit;
    let mut page: Vec<MessageRow> = if descending {
        let mut newest: Vec<MessageRow> = all.into_values().rev().take(limit).collect();
        newest.reverse();
        newest
    } else {
        all.into_values().take(limit).collect()
    };
    page.shrink_to_fit();
    (page, more)
}

/// Archived message `id` of `room`, its newest copy, if a segment holds it.
pub async fn find(app: &App, room: &str, id: Uuid) -> anyhow::Result<Option<ArchivedMessage>> {
    let segments = db::archive::segments_with_id(&app.db, room, id).await?;
    let mut found: Option<ArchivedMessage> = None;
    for segment in &segments {
        let content = app.segments.load(&app.storage, &segment.object_key).await?;
        if let Some(m) = content.messages.iter().find(|m| m.id == id)
            && found.as_ref().is_none_or(|f| f.event_id < m.event_id)
        {
            found = Some(m.clone());
        }
    }
    Ok(found)
}

/// Brings archived message `id` of `room` back into the hot tables (if `user` may see the
/// room and it is not hot already), so a write (an edit, a delete, a reaction, a reply) can
/// change it as any other. Answers whether it was brought back.
pub async fn restore(app: &App, room: &str, id: Uuid, user: &str) -> anyhow::Result<bool> {
    let Some(message) = find(app, room, id).await? else {
        return Ok(false);
    };
    let json = serde_json::to_value(&message)?;
    let restored = db::archive::restore(&app.db, &json, room, user).await?;
    if restored {
        tracing::info!(room, message = %id, seq = message.seq, "archived message brought back");
    }
    Ok(restored)
}

/// The archived replies to `parent` with `seq > after`, oldest first, at most `want`.
pub async fn replies(
    app: &App,
    room: &str,
    parent: Uuid,
    after: i64,
    want: usize,
) -> anyhow::Result<Vec<ArchivedMessage>> {
    let segments = db::archive::segments_with_replies(&app.db, room, parent, after).await?;
    let mut got = BTreeMap::new();
    for segment in &segments {
        if got.range(..segment.first_seq).count() >= want {
            break;
        }
        let content = app.segments.load(&app.storage, &segment.object_key).await?;
        for message in content
            .messages
            .iter()
            .filter(|m| m.seq > after && m.reply_to == Some(parent))
        {
            keep_newest(&mut got, message);
        }
    }
    Ok(got.into_values().take(want).collect())
}

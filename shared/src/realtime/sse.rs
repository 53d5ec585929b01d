//! Server-Sent Events framing.

use bytes::Bytes;

/// `retry: <ms>` tells `EventSource` how long to wait before reconnecting.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// `retry:` with the stream's position (`id:`) and no data: an EventSource dispatches
/// nothing for it but takes `id` as its last event id, so the id-less events that follow on
/// this connection cannot blank its resume point.
pub fn retry_at(ms: u64, id: i64) -> Bytes {
    Bytes::from(format!("retry: {ms}\nid: {id}\n\n"))
}

/// A comment line: keeps proxies from closing an idle stream.
pub fn heartbeat() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// One event. `data` must be a single line (compact JSON is).
pub fn event(id: i64, name: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains('\n'));
    Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
}

/// `frame` (one [`event`]) under the name `to` if it is named `from`; otherwise itself.
pub fn renamed(frame: &Bytes, from: &str, to: &str) -> Bytes {
    let Some(newline) = frame.iter().position(|&b| b == b'\n') else {
        return frame.clone();
    };
    let (id_line, rest) = frame.split_at(newline + 1);
    let named = format!("event: {from}\n");
    match rest.strip_prefix(named.as_bytes()) {
        Some(tail) => {
            let mut out = Vec::with_capacity(frame.len() + to.len());
            out.extend_from_slice(id_line);
            out.extend_from_slice(format!("event: {to}\n").as_bytes());
            out.extend_from_slice(tail);
            Bytes::from(out)
        }
        None => frame.clone(),
    }
}

/// A change's `frame`, as rendered against any resume point, named for a reader that has
/// shown every message created up to event `seen`: `message` for a message created after
/// it, `message.updated` otherwise (`message.deleted` stays).
pub fn relabel(frame: &Bytes, created: i64, seen: i64) -> Bytes {
    if created > seen {
        renamed(frame, "message.updated", "message")
    } else {
        renamed(frame, "message", "message.updated")
    }
}

/// An event with no `id:` line: `EventSource` keeps the connection's last event id, so the
/// resume point is untouched (read marks, presence, typing) once the connection has one,
/// which [`retry_at`] gives it first.
pub fn event_without_id(name: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains('\n'));
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_renamed_only_from_its_own_name() {
        let frame = event(7, "message", "{\"a\":1}");
        assert_eq!(
            &renamed(&frame, "message", "message.updated")[..],
            b"id: 7\nevent: message.updated\ndata: {\"a\":1}\n\n"
        );
        let deleted = event(8, "message.deleted", "{}");
        assert_eq!(renamed(&deleted, "message", "message.updated"), deleted);
    }

    #[test]
    fn a_frame_is_relabelled_against_the_readers_resume_point() {
        let updated = event(9, "message.updated", "{}");
        assert_eq!(
            &relabel(&updated, 5, 4)[..],
            b"id: 9\nevent: message\ndata: {}\n\n"
        );
        assert_eq!(relabel(&updated, 5, 5), updated);
        let new = event(9, "message", "{}");
        assert_eq!(
            &relabel(&new, 5, 6)[..],
            b"id: 9\nevent: message.updated\ndata: {}\n\n"
        );
        let deleted = event(9, "message.deleted", "{}");
        assert_eq!(relabel(&deleted, 5, 4), deleted);
        assert_eq!(relabel(&deleted, 5, 6), deleted);
    }

    #[test]
    fn an_event_has_id_name_and_data_lines_then_a_blank_line() {
        assert_eq!(
            &event(42, "message", "{\"a\":1}")[..],
            b"id: 42\nevent: message\ndata: {\"a\":1}\n\n"
        );
    }
}

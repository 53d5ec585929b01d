//! Server-Sent Events framing.

use bytes::Bytes;

/// `retry: <ms>` tells `EventSource` how long to wait before reconnecting.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
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

/// An event with no `id:` line: `EventSource` keeps its last event id, so the resume point
/// is untouched (read marks).
pub fn event_without_id(name: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains('\n'));
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_id_name_and_data_lines_then_a_blank_line() {
        assert_eq!(
            &event(42, "message", "{\"a\":1}")[..],
            b"id: 42\nevent: message\ndata: {\"a\":1}\n\n"
        );
    }
}

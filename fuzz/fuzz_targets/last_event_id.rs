//! The stream's resume point: `Last-Event-ID` header(s) and `?after=`.
//!
//! Never panics; a resume point is never negative, and it is the header's seq when the
//! header is there.

#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use shared::http::query::Query;
use shared::routes::stream::resume_point;

// Input: lines. Every line but the last is a `Last-Event-ID` value, in order (a client may
// send the header more than once); the last line is the raw query string, e.g. `after=5`.
fuzz_target!(|data: &[u8]| {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let raw_query = String::from_utf8_lossy(lines.pop().unwrap_or_default());
    let mut headers = HeaderMap::new();
    for raw in lines {
        // Only what `http` accepts as a header value can reach the handler.
        let Ok(value) = HeaderValue::from_bytes(raw) else {
            return;
        };
        headers.append("last-event-id", value);
    }
    let query = Query::parse(Some(&raw_query));

    let result = resume_point(&headers, &query);
    if let Ok(Some(seq)) = result {
        assert!(seq >= 0, "negative resume point {seq}");
    }
    // The first header wins over `?after=` when it holds anything but whitespace.
    let header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let (Some(header), Ok(resumed)) = (header, &result) {
        assert_eq!(*resumed, header.parse::<i64>().ok(), "{header:?}");
    }
});

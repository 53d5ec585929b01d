//! Query strings and request paths: `Query::parse`, `Page::from_query` and the router.
//!
//! The input is `path?query` (lossy UTF-8, as a URI's path and query are after decoding).
//! Never panics; whatever resolves carries a valid room id, and every page is in range.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use shared::domain::{Page, PageLimit, RoomId};
use shared::http::query::Query;
use shared::http::router::{Endpoint, resolve};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (path, raw_query) = input.split_once('?').unwrap_or((&input, ""));

    // The whole input as a query string, and the part after `?`.
    check_page(&Query::parse(Some(&input)));
    let query = Query::parse(Some(raw_query));
    check_page(&query);
    let _ = Query::parse(None).get(path);

    // The path as given, and under the prefixes where room ids, member emails and the
    // internal function names are parsed.
    let rooms = format!("/api/rooms/{path}");
    let api = format!("/api/{path}");
    for candidate in [path, rooms.as_str(), api.as_str()] {
        for method in &METHODS {
            if let Ok(endpoint) = resolve(method, candidate, &query) {
                check_endpoint(&endpoint);
            }
        }
    }
});

fn check_page(query: &Query) {
    let in_range = |l: PageLimit| (1..=PageLimit::MAX).contains(&l.get());
    match Page::from_query(query) {
        Ok(Page::Latest(limit)) => assert!(in_range(limit)),
        Ok(Page::Before(cursor, limit) | Page::After(cursor, limit)) => {
            assert!(cursor.get() >= 0, "negative cursor {}", cursor.get());
            assert!(in_range(limit));
        }
        Err(_) => {}
    }
}

fn check_endpoint(endpoint: &Endpoint) {
    let room = match endpoint {
        Endpoint::ListMessages(room)
        | Endpoint::PostMessage(room)
        | Endpoint::Stream(room)
        | Endpoint::ListMembers(room)
        | Endpoint::AddMember(room)
        | Endpoint::RemoveMember(room, _) => room,
        Endpoint::ListRooms
        | Endpoint::CreateRoom
        | Endpoint::PresignUpload
        | Endpoint::CleanupUploads
        | Endpoint::Health => return,
    };
    let id = room.as_str();
    assert!(
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "room id {id:?} escaped validation"
    );
    assert_eq!(RoomId::parse(id).ok().as_ref(), Some(room));
    let _ = endpoint.function();
}

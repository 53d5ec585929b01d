//! Request bodies: `parse_json` for every request type, then the domain parsers the handlers
//! run on its fields, with the invariants each validated type promises.
//!
//! Two passes per input: the bytes as a JSON body (mutations of the seed bodies), and the
//! bytes as structured field values serialised to a well-formed body, so the domain parsers
//! see arbitrary strings even when the raw bytes are not JSON.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use shared::config::DEFAULT_MAX_UPLOAD_BYTES;
use shared::domain::{
    AllowedTypes, ContentType, Email, FileIds, FileName, MessageContent, RoomId, RoomName,
    UploadSize, Visibility,
};
use shared::http::body::parse_json;
use shared::routes::members::AddMemberRequest;
use shared::routes::messages::SendMessageRequest;
use shared::routes::rooms::CreateRoomRequest;
use shared::routes::uploads::PresignUploadRequest;
use shared::storage::{Storage, content_disposition};
use uuid::Uuid;

#[derive(Arbitrary, Debug)]
struct Fields {
    id: String,
    name: Option<String>,
    visibility: Option<String>,
    content: String,
    file_ids: Option<Vec<[u8; 16]>>,
    client_id: Option<[u8; 16]>,
    file_name: String,
    content_type: String,
    size: i64,
    max_upload: u64,
    email: String,
}

fuzz_target!(|data: &[u8]| {
    // Pass 1: the raw bytes as a body of each type.
    if let Ok(r) = parse_json::<CreateRoomRequest>(data) {
        check_room(&r);
    }
    if let Ok(r) = parse_json::<SendMessageRequest>(data) {
        check_message(r);
    }
    if let Ok(r) = parse_json::<PresignUploadRequest>(data) {
        check_upload(&r, DEFAULT_MAX_UPLOAD_BYTES);
    }
    if let Ok(r) = parse_json::<AddMemberRequest>(data) {
        check_member(&r);
    }

    // Pass 2: the bytes as field values; a well-formed body with these fields must parse
    // and give back exactly the values sent.
    let Ok(f) = Fields::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let body = serde_json::json!({
        "id": f.id, "name": f.name, "visibility": f.visibility,
    });
    let r: CreateRoomRequest = parse_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        (r.id.as_deref(), &r.name, &r.visibility),
        (Some(f.id.as_str()), &f.name, &f.visibility)
    );
    check_room(&r);

    let file_ids: Option<Vec<Uuid>> = f
        .file_ids
        .map(|ids| ids.into_iter().map(Uuid::from_bytes).collect());
    let client_id = f.client_id.map(Uuid::from_bytes);
    let body = serde_json::json!({
        "content": f.content, "file_ids": file_ids, "client_id": client_id,
    });
    let r: SendMessageRequest = parse_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        (&r.content, &r.file_ids, &r.client_id),
        (&f.content, &file_ids, &client_id)
    );
    check_message(r);

    let body = serde_json::json!({
        "room_id": f.id, "file_name": f.file_name, "content_type": f.content_type, "size": f.size,
    });
    let r: PresignUploadRequest = parse_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        (&r.room_id, &r.file_name, &r.content_type, r.size),
        (&f.id, &f.file_name, &f.content_type, f.size)
    );
    check_upload(&r, f.max_upload);

    let body = serde_json::json!({ "email": f.email });
    let r: AddMemberRequest = parse_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(r.email, f.email);
    check_member(&r);
});

fn check_room(r: &CreateRoomRequest) {
    // Without an id the server generates one; a generated id is always valid.
    match &r.id {
        Some(id) => {
            check_room_id(id);
        }
        None => {
            check_room_id(RoomId::generate().as_str()).expect("a generated id parses");
        }
    }
    if let Some(name) = &r.name
        && let Ok(parsed) = RoomName::parse(name)
    {
        let s = parsed.as_str();
        assert!((1..=100).contains(&s.chars().count()), "{s:?}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(s, s.trim());
    }
    if let Some(v) = &r.visibility
        && let Ok(parsed) = Visibility::parse(v)
    {
        assert_eq!(parsed.as_str(), v);
    }
}

fn check_room_id(raw: &str) -> Option<RoomId> {
    let pattern = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let parsed = RoomId::parse(raw).ok();
    assert_eq!(parsed.is_some(), pattern, "RoomId::parse({raw:?})");
    if let Some(id) = &parsed {
        assert_eq!(id.as_str(), raw);
    }
    parsed
}

fn check_message(r: SendMessageRequest) {
    let ids = r.file_ids.unwrap_or_default();
    let n = ids.len();
    let has_files = match FileIds::parse(ids) {
        Ok(parsed) => {
            let ids = parsed.as_slice();
            assert!(ids.len() <= 10 && ids.len() == n);
            for (i, id) in ids.iter().enumerate() {
                assert!(!ids[..i].contains(id), "repeated file id");
            }
            !parsed.is_empty()
        }
        Err(_) => false,
    };
    let raw = r.content.clone();
    if let Ok(content) = MessageContent::parse(r.content, has_files) {
        let s = content.as_str();
        assert_eq!(s, raw, "content must be kept byte for byte");
        assert!(s.chars().count() <= 4000);
        assert!(has_files || !s.trim().is_empty());
    }
}

fn check_upload(r: &PresignUploadRequest, max: u64) {
    let room = check_room_id(&r.room_id);
    if let Ok(name) = FileName::parse(&r.file_name) {
        let s = name.as_str();
        assert!(!s.is_empty() && s.len() <= 255, "{} bytes", s.len());
        assert!(
            !s.contains(['/', '\\']) && !s.chars().any(char::is_control),
            "{s:?}"
        );
        // The name goes into a presigned GET's `Content-Disposition`.
        for disposition in ["inline", "attachment"] {
            let header = content_disposition(disposition, s);
            assert!(HeaderValue::from_str(&header).is_ok(), "{header:?}");
        }
    }
    if let Ok(ct) = ContentType::parse(&r.content_type) {
        let s = ct.as_str();
        assert!(s.len() <= 255 && s.bytes().filter(|&b| b == b'/').count() == 1);
        assert_eq!(s, s.to_ascii_lowercase());
        // Signed into the presigned PUT's headers.
        assert!(HeaderValue::from_str(s).is_ok(), "{s:?}");
        let _ = AllowedTypes::default().allows(&ct);
        if let Some(room) = &room {
            // Nothing the uploader typed becomes a path segment.
            let key = Storage::object_key(room, Uuid::nil(), &ct);
            let segments: Vec<&str> = key.split('/').collect();
            assert_eq!(segments.len(), 3, "{key:?}");
            assert!(
                segments
                    .iter()
                    .all(|s| !s.is_empty() && *s != "." && *s != "..")
            );
        }
    }
    match UploadSize::parse(r.size, max) {
        Ok(size) => assert!(r.size >= 0 && size.get() == r.size as u64 && size.get() <= max),
        Err(_) => assert!(r.size < 0 || r.size as u64 > max),
    }
}

fn check_member(r: &AddMemberRequest) {
    if let Ok(email) = Email::parse(&r.email) {
        let s = email.as_str();
        assert!(s.len() <= 320);
        assert!(
            !s.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{s:?}"
        );
        let (local, domain) = s.split_once('@').expect("an @");
        assert!(!local.is_empty() && !domain.is_empty());
        // Emails are compared as stored: parsing a parsed email changes nothing.
        assert_eq!(Email::parse(s).ok().as_ref(), Some(&email), "{s:?}");
    }
}

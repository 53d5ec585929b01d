//! Every statement that aggregates a message's files into its view names the same fields.
//!
//! The aggregate (`json_agg(json_build_object('id', f.id, …))`) is written out whole in each
//! statement, as the house style asks, and so exists in a dozen places: the list and hub
//! reads here, the write functions in `migrations/`, and the benchmark's copy in
//! `tools/chat-bench`. A field added to one and not another once reached the stream without
//! it. This test reads those sources and checks each aggregate against
//! [`FILE_VIEW_FIELDS`].

use std::path::{Path, PathBuf};

use super::messages::FILE_VIEW_FIELDS;

/// The migration that introduced the processed-file fields: earlier ones define functions
/// it replaced, and legitimately lack them.
const FIELDS_SINCE: &str = "20261202000001";

fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["shared/src", "tools/chat-bench/src"] {
        walk(&root.join(dir), &mut files);
    }
    for entry in std::fs::read_dir(root.join("migrations")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sql") && name.as_str() >= FIELDS_SINCE {
            files.push(path);
        }
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("file_views.rs") {
            out.push(path);
        }
    }
}

/// The text inside each `json_agg(json_build_object( … ))` that reads `f.object_key`.
fn aggregates(text: &str) -> Vec<&str> {
    const OPEN: &str = "json_agg(json_build_object(";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let body = &rest[at + OPEN.len()..];
        let mut depth = 1;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("an aggregate closes");
        let inner = &body[..end];
        if inner.contains("f.object_key") {
            found.push(inner);
        }
        rest = &body[end..];
    }
    found
}

/// `'id', f.id, 'object_key', f.object_key` → `["id", "object_key"]`, checking each name
/// reads the column of the same name.
fn fields(aggregate: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = aggregate.split(',').map(str::trim).collect();
    if !parts.len().is_multiple_of(2) {
        return Err(format!("odd number of arguments: {aggregate}"));
    }
    parts
        .chunks(2)
        .map(|pair| {
            let name = pair[0].trim_matches('\'');
            if pair[1] != format!("f.{name}") {
                return Err(format!("'{name}' reads {}", pair[1]));
            }
            Ok(name.to_owned())
        })
        .collect()
}

#[test]
fn every_file_aggregate_names_every_field_of_a_file_view() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for aggregate in aggregates(&text) {
            checked += 1;
            match fields(aggregate) {
                Ok(names) if names == FILE_VIEW_FIELDS => {}
                Ok(names) => wrong.push(format!("{}: {names:?}", path.display())),
                Err(why) => wrong.push(format!("{}: {why}", path.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "file aggregates that differ: {wrong:#?}");
    // The list, hub and batch reads here, the write function, the benchmark's copy.
    assert!(checked >= 10, "only {checked} aggregates found");
}

#[test]
fn a_missing_field_is_caught() {
    let text = "SELECT (SELECT json_agg(json_build_object('id', f.id, 'object_key', f.object_key, \
                'size', f.size) ORDER BY f.id) FROM chat_message_files f)";
    let found = aggregates(text);
    assert_eq!(found.len(), 1);
    assert_eq!(fields(found[0]).unwrap(), ["id", "object_key", "size"]);
    assert!(fields("'id', f.id, 'size', f.served_size").is_err());
}

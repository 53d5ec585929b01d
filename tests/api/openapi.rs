//! `openapi.yaml` stays true:
//!
//! - every route the server serves (the route table `shared::route_table()`, the dev server's
//!   `DEV_ROUTES`) and every `/api` route in `vercel.json` is in the spec, and the spec
//!   documents nothing else;
//! - real responses, a success and an error on every operation, validate against the spec's
//!   schema for their status (JSON Schema 2020-12, formats checked), with the headers it
//!   marks required, and a status it does not list fails;
//! - every `$ref` resolves, and the examples in the spec validate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use chat_dev::EmbeddedS3;
use chat_dev::server::DEV_ROUTES;
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use shared::db::limits::RateLimit;

use crate::helpers::{ALICE, BOB, TestApp, base_config};

const CAROL: &str = "carol@example.com";
const CRON_SECRET: &str = "cron-test-secret";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `{room}` and `([^/]+)` alike become `{}`, so templates and Vercel patterns compare.
fn normalise(path: &str) -> String {
    path.replace("([^/]+)", "{}")
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a concrete path is an instance of a template.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

struct Spec {
    doc: Value,
    /// (METHOD, template, status) of every response checked.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Spec {
    fn load() -> Self {
        let doc: Value = serde_norway::from_str(&repo_file("openapi.yaml")).expect("openapi.yaml");
        assert_eq!(doc["openapi"], "3.1.0");
        Self {
            doc,
            seen: Mutex::default(),
        }
    }

    fn paths(&self) -> &serde_json::Map<String, Value> {
        self.doc["paths"].as_object().expect("paths")
    }

    /// Every documented (METHOD, template).
    fn operations(&self) -> BTreeSet<(String, String)> {
        self.paths()
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| (m.to_uppercase(), path.clone()))
            })
            .collect()
    }

    /// Follows a local `$ref` (`#/components/...`).
    fn deref<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => {
                let target = self
                    .doc
                    .pointer(pointer.strip_prefix('#').expect("local $ref"))
                    .unwrap_or_else(|| panic!("$ref {pointer} does not resolve"));
                self.deref(target)
            }
            None => value,
        }
    }

    /// Asserts `instance` validates against `schema` (which may `$ref` the components).
    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: the spec's schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("  {e} (at `{}`)", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {instance} does not match the spec:\n{}",
            errors.join("\n")
        );
    }

    fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The documented response for this request and status: the operation's own, or for a
    /// method a documented path does not list, the 405 (whose `Allow` must then list exactly
    /// the documented methods), or for an undocumented path, the 404.
    fn response_spec(
        &self,
        method: &str,
        template: &str,
        status: u16,
        response: &Response,
    ) -> &Value {
        let responses = &self.doc["components"]["responses"];
        let Some(item) = self.paths().get(template) else {
            assert_eq!(status, 404, "{method} {template} is not in the spec");
            return &responses["RouteNotFound"];
        };
        let Some(operation) = item.get(method.to_lowercase()) else {
            assert_eq!(status, 405, "{method} {template} is not in the spec");
            let mut allowed: Vec<String> = response.headers()["allow"]
                .to_str()
                .unwrap()
                .split(", ")
                .map(str::to_owned)
                .collect();
            let mut documented: Vec<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            allowed.sort();
            documented.sort();
            assert_eq!(allowed, documented, "Allow of {template} vs the spec");
            return &responses["MethodNotAllowed"];
        };
        operation["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| {
                panic!("{method} {template} answered {status}, which the spec does not list")
            })
    }

    /// Checks status, headers and body of `response` to `method template` against the
    /// spec, records it, and returns the JSON body (`Null` when there is none).
    async fn check(&self, method: &str, template: &str, response: Response) -> Value {
        let (status, content) = self.check_head(method, template, &response);
        let content_type = mime(&response);
        let bytes = response.bytes().await.expect("body");
        let Some(content) = content else {
            assert!(
                bytes.is_empty(),
                "{method} {template} {status}: expected no body"
            );
            return Value::Null;
        };
        let media = content.get(&content_type).unwrap_or_else(|| {
            panic!("{method} {template} {status}: {content_type} not in the spec")
        });
        assert_eq!(content_type, "application/json");
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
        self.validate(
            &media["schema"],
            &body,
            &format!("{method} {template} {status}"),
        );
        body
    }

    /// Checks the status and headers and records the call; returns the status and the
    /// documented `content`, if any.
    fn check_head(
        &self,
        method: &str,
        template: &str,
        response: &Response,
    ) -> (u16, Option<&Value>) {
        let status = response.status().as_u16();
        let path = response.url().path();
        assert!(
            matches(template, path),
            "{path} is not an instance of {template}"
        );
        let spec = self.deref(self.response_spec(method, template, status, response));
        for (name, header) in spec["headers"].as_object().into_iter().flatten() {
            let header = self.deref(header);
            match response.headers().get(name) {
                Some(value) => {
                    let value = value.to_str().unwrap();
                    let value = match header["schema"]["type"].as_str() {
                        Some("integer") => json!(value.parse::<i64>().unwrap_or_else(|_| {
                            panic!(
                                "{method} {template} {status}: {name}: {value} is not an integer"
                            )
                        })),
                        _ => json!(value),
                    };
                    self.validate(
                        &header["schema"],
                        &value,
                        &format!("{method} {template} {status} {name}"),
                    );
                }
                None => assert!(
                    header["required"] != true,
                    "{method} {template} {status}: required header {name} is missing"
                ),
            }
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_owned(), template.to_owned(), status));
        (status, spec.get("content"))
    }

    /// Every documented operation was seen answering a success and an error.
    fn assert_covered(&self) {
        let seen = self.seen.lock().unwrap();
        for (method, template) in self.operations() {
            let statuses: Vec<u16> = seen
                .iter()
                .filter(|(m, t, _)| *m == method && *t == template)
                .map(|(_, _, s)| *s)
                .collect();
            assert!(
                statuses.iter().any(|s| (200..300).contains(s)),
                "no success of {method} {template} was checked against the spec"
            );
            assert!(
                statuses.iter().any(|s| *s >= 400),
                "no error of {method} {template} was checked against the spec"
            );
        }
    }
}

fn mime(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn every_ref(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| every_ref(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, out)),
        _ => {}
    }
}

/// The methods that `vercel.json` routes of `src` listed before the catch-all one.
fn earlier_methods(routes: &[Value], src: &str) -> Vec<String> {
    routes
        .iter()
        .take_while(|r| !(r["src"] == src && r["methods"].is_null()))
        .filter(|r| r["src"] == src)
        .flat_map(|r| r["methods"].as_array().cloned().unwrap_or_default())
        .map(|m| m.as_str().unwrap().to_uppercase())
        .collect()
}

#[test]
fn every_route_is_in_the_spec_and_the_spec_has_no_other() {
    let spec = Spec::load();
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .into_iter()
        .map(|(m, t)| (m, normalise(&t)))
        .collect();
    let table = shared::route_table();
    let served: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .chain(DEV_ROUTES.iter().map(|(m, t)| (m.to_string(), *t)))
        .map(|(m, t)| (m, normalise(t)))
        .collect();
    for route in &served {
        assert!(
            documented.contains(route),
            "{route:?} is served but not in openapi.yaml"
        );
    }
    for route in &documented {
        assert!(
            served.contains(route),
            "{route:?} is in openapi.yaml but not served"
        );
    }
    // Dev-only routes are marked as such, and only they.
    for (method, template) in spec.operations() {
        let operation = &spec.paths()[&template][method.to_lowercase()];
        let dev = DEV_ROUTES.contains(&(method.as_str(), template.as_str()));
        assert_eq!(
            operation["x-dev-only"] == true,
            dev,
            "x-dev-only of {method} {template}"
        );
        assert!(
            operation["operationId"].is_string(),
            "{method} {template} needs an operationId"
        );
    }

    let vercel: Value = serde_json::from_str(&repo_file("vercel.json")).expect("vercel.json");
    let mut checked = 0;
    for route in vercel["routes"].as_array().expect("routes") {
        let Some(src) = route["src"].as_str().filter(|s| s.starts_with("/api/")) else {
            continue;
        };
        let path = normalise(src);
        let methods: Vec<String> = match route["methods"].as_array() {
            Some(methods) => methods
                .iter()
                .map(|m| m.as_str().unwrap().to_uppercase())
                .collect(),
            None => Vec::new(),
        };
        assert!(
            documented.iter().any(|(_, p)| *p == path),
            "vercel.json routes {src}, which is not in openapi.yaml"
        );
        for method in &methods {
            assert!(
                documented.contains(&(method.clone(), path.clone())),
                "vercel.json routes {method} {src}, which is not in openapi.yaml"
            );
        }
        // The function it sends them to is the one the route table names for them.
        let dest = route["dest"].as_str().expect("dest");
        let function = dest
            .strip_prefix("/api/")
            .map(|d| d.split('?').next().unwrap())
            .unwrap_or_else(|| panic!("vercel.json sends {src} to {dest}, not a function"));
        let claimed: Vec<&shared::http::router::Route> = table
            .iter()
            .filter(|r| normalise(r.path) == path)
            .filter(|r| methods.is_empty() || methods.contains(&r.method.to_string()))
            // A route without `methods` takes what the earlier method-specific ones left.
            .filter(|r| {
                !methods.is_empty()
                    || !earlier_methods(vercel["routes"].as_array().unwrap(), src)
                        .contains(&r.method.to_string())
            })
            .collect();
        assert!(
            !claimed.is_empty(),
            "vercel.json routes {src}, which no route serves"
        );
        for r in claimed {
            assert_eq!(
                r.function.name(),
                function,
                "vercel.json sends {} {src} to {function}, the table to {}",
                r.method,
                r.function.name()
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "vercel.json has only {checked} /api routes?");
    for cron in vercel["crons"].as_array().into_iter().flatten() {
        let path = cron["path"].as_str().unwrap();
        assert!(
            documented.contains(&("GET".to_owned(), normalise(path))),
            "vercel.json's cron {path} is not in openapi.yaml"
        );
    }
}

#[test]
fn every_ref_resolves_and_every_example_validates() {
    let spec = Spec::load();
    let mut refs = Vec::new();
    every_ref(&spec.doc, &mut refs);
    assert!(refs.len() > 50);
    for r in &refs {
        spec.deref(&json!({ "$ref": r }));
    }
    // Schema-level examples.
    for (name, schema) in spec.doc["components"]["schemas"].as_object().unwrap() {
        if let Some(example) = schema.get("example") {
            spec.validate(&spec.schema(name), example, &format!("example of {name}"));
        }
    }
    // Request and response examples.
    for (path, item) in spec.paths() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let mut media = Vec::new();
            if let Some(body) = operation.get("requestBody") {
                media.push((
                    "request",
                    spec.deref(body)["content"]["application/json"].clone(),
                ));
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let json = &spec.deref(response)["content"]["application/json"];
                if !json.is_null() {
                    media.push((status.as_str(), json.clone()));
                }
            }
            for (what, media) in media {
                if let Some(example) = media.get("example") {
                    spec.validate(
                        &media["schema"],
                        example,
                        &format!("{method} {path} {what} example"),
                    );
                }
            }
        }
    }
    // The stream's examples: each `data:` is a Message or a reset.
    let stream = &spec.paths()["/api/rooms/{room}/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    for (name, example) in stream["examples"].as_object().unwrap() {
        let text = example["value"].as_str().unwrap();
        assert!(text.starts_with("retry: 1000\n"), "{name}");
        for block in parse_blocks(text) {
            check_frame(&spec, &block);
        }
    }
}

/// One SSE block: its fields, in order.
fn parse_blocks(text: &str) -> Vec<BTreeMap<String, String>> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .lines()
                .map(|line| match line.split_once(": ") {
                    _ if line.starts_with(':') => ("comment".to_owned(), line.to_owned()),
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (line.to_owned(), String::new()),
                })
                .collect()
        })
        .collect()
}

/// Checks one SSE block against the stream's description.
fn check_frame(spec: &Spec, block: &BTreeMap<String, String>) {
    match block.get("event").map(String::as_str) {
        Some(kind @ ("message" | "message.updated" | "message.deleted")) => {
            let data: Value = serde_json::from_str(&block["data"]).unwrap();
            spec.validate(&spec.schema("Message"), &data, kind);
            assert_eq!(
                block["id"],
                data["event_id"].to_string(),
                "id is the event id"
            );
            assert_eq!(
                kind == "message.deleted",
                !data["deleted_at"].is_null(),
                "{kind}: {data}"
            );
        }
        Some("read") => {
            let data: Value = serde_json::from_str(&block["data"]).unwrap();
            spec.validate(&spec.schema("ReadEvent"), &data, "a read event");
            assert!(!block.contains_key("id"), "a read event has no id");
        }
        Some(kind @ ("typing" | "presence" | "presence.crowded")) => {
            let data: Value = serde_json::from_str(&block["data"]).unwrap();
            let schema = match kind {
                "typing" => "TypingEvent",
                "presence" => "PresenceEvent",
                _ => "PresenceCrowdedEvent",
            };
            spec.validate(&spec.schema(schema), &data, kind);
            assert!(!block.contains_key("id"), "{kind} has no id");
        }
        Some("reset") => {
            let data: Value = serde_json::from_str(&block["data"]).unwrap();
            spec.validate(&spec.schema("StreamReset"), &data, "a reset event");
            assert_eq!(
                block["id"],
                data["last_event_id"].to_string(),
                "id is last_event_id"
            );
        }
        Some(other) => panic!("undocumented event {other}"),
        None if block.contains_key("retry") => {
            assert_eq!(block["retry"], "1000");
            // The stream's position, with no data (or nothing, before a reset).
            assert!(!block.contains_key("data"), "{block:?}");
            if let Some(id) = block.get("id") {
                assert!(id.parse::<i64>().is_ok(), "{block:?}");
            }
        }
        None => assert_eq!(block["comment"], ": keep-alive"),
    }
}

/// Reads a stream until `until` holds for a block, checking every block on the way.
async fn read_stream(
    spec: &Spec,
    response: Response,
    until: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let read = async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let raw: String = buffer.drain(..end + 2).collect();
                let block = parse_blocks(&raw).remove(0);
                check_frame(spec, &block);
                if until(&block) {
                    return block;
                }
            }
            let chunk = body
                .next()
                .await
                .expect("stream ended early")
                .expect("stream");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("timed out reading the stream")
}

struct Caller<'a> {
    app: &'a TestApp,
    spec: &'a Spec,
}

impl Caller<'_> {
    fn request(&self, method: &str, path: &str, email: Option<&str>) -> RequestBuilder {
        let request = self
            .app
            .client
            .request(method.parse::<Method>().unwrap(), self.app.url(path));
        match email {
            Some(email) => request.bearer_auth(self.app.token(email)),
            None => request,
        }
    }

    /// Sends and checks; returns the status and the body.
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        email: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method, path, email);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(method, template, request).await
    }

    async fn send(&self, method: &str, template: &str, request: RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, self.spec.check(method, template, response).await)
    }

    /// Asserts the status and, for an error, the code.
    async fn expect(
        &self,
        (method, template, path): (&str, &str, &str),
        email: Option<&str>,
        body: Option<Value>,
        status: u16,
        code: Option<&str>,
    ) -> Value {
        let (got, body) = self.call(method, template, path, email, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], code, "{method} {path}");
        }
        body
    }
}

const ROOMS: &str = "/api/rooms";
const MESSAGES: &str = "/api/rooms/{room}/messages";
const STREAM: &str = "/api/rooms/{room}/stream";
const MESSAGE: &str = "/api/rooms/{room}/messages/{message}";
const REACTION: &str = "/api/rooms/{room}/messages/{message}/reactions/{emoji}";
const REPLIES: &str = "/api/rooms/{room}/messages/{message}/replies";
const READ: &str = "/api/rooms/{room}/read";
const SEARCH: &str = "/api/rooms/{room}/search";
const TYPING: &str = "/api/rooms/{room}/typing";
const PRESENCE: &str = "/api/rooms/{room}/presence";
const MEMBERS: &str = "/api/rooms/{room}/members";
const MEMBER: &str = "/api/rooms/{room}/members/{email}";
const UPLOADS: &str = "/api/uploads";
const CRON: &str = "/api/cron/cleanup-uploads";
const ARCHIVE_CRON: &str = "/api/cron/archive";
const DEV_TOKEN: &str = "/api/dev/token";

#[tokio::test]
async fn real_responses_match_the_spec() {
    let spec = Spec::load();
    let app = TestApp::spawn_with(|c| {
        c.limits.rooms = RateLimit::parse(c.limits.rooms.action, "5/1h").unwrap();
        c.limits.streams_per_user = 2;
        c.stream.max_backlog = 3;
        c.storage.max_upload_bytes = 1000;
        c.storage.cron_secret = Some(CRON_SECRET.into());
        c.admins = shared::config::Admins::parse(CAROL);
    })
    .await;
    let api = Caller {
        app: &app,
        spec: &spec,
    };

    // Health.
    api.expect(("GET", "/api/health", "/api/health"), None, None, 200, None)
        .await;

    // Rooms.
    let room = api
        .expect(
            ("POST", ROOMS, ROOMS),
            Some(ALICE),
            Some(json!({"id": "general", "name": "General"})),
            201,
            None,
        )
        .await;
    assert_eq!(room["owner"], ALICE);
    api.expect(
        ("POST", ROOMS, ROOMS),
        Some(ALICE),
        Some(json!({"id": "secret", "visibility": "private"})),
        201,
        None,
    )
    .await;
    api.expect(
        ("POST", ROOMS, ROOMS),
        Some(ALICE),
        Some(json!({"id": "general"})),
        409,
        Some("room_exists"),
    )
    .await;
    api.expect(
        ("POST", ROOMS, ROOMS),
        Some(ALICE),
        Some(json!({"id": "a b"})),
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(
        ("POST", ROOMS, ROOMS),
        None,
        Some(json!({"id": "x"})),
        401,
        Some("unauthorized"),
    )
    .await;
    let (_, body) = api
        .send(
            "POST",
            ROOMS,
            api.request("POST", ROOMS, Some(ALICE)).body("{\"id\":"),
        )
        .await;
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = api
        .send(
            "POST",
            ROOMS,
            api.request("POST", ROOMS, Some(ALICE))
                .body(vec![b' '; 2 * 1024 * 1024]),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let limited = "limited@example.com";
    let mut created = 0;
    let refused = loop {
        let (status, body) = api
            .call(
                "POST",
                ROOMS,
                ROOMS,
                Some(limited),
                Some(json!({"id": format!("l{created}")})),
            )
            .await;
        if status != 201 {
            break (status, body);
        }
        created += 1;
        assert!(created <= 5, "never rate-limited");
    };
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let rooms = api
        .expect(("GET", ROOMS, ROOMS), Some(ALICE), None, 200, None)
        .await;
    assert!(rooms["rooms"].as_array().unwrap().len() >= 2);
    api.expect(("GET", ROOMS, ROOMS), None, None, 401, Some("unauthorized"))
        .await;

    // Members of the private room.
    let members = "/api/rooms/secret/members";
    api.expect(
        ("POST", MEMBERS, members),
        Some(ALICE),
        Some(json!({"email": BOB})),
        201,
        None,
    )
    .await;
    api.expect(
        ("POST", MEMBERS, members),
        Some(ALICE),
        Some(json!({"email": BOB})),
        200,
        None,
    )
    .await;
    api.expect(
        ("POST", MEMBERS, members),
        Some(ALICE),
        Some(json!({"email": "nope"})),
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(
        ("POST", MEMBERS, members),
        Some(BOB),
        Some(json!({"email": CAROL})),
        403,
        Some("not_room_owner"),
    )
    .await;
    api.expect(
        ("POST", MEMBERS, members),
        Some(CAROL),
        Some(json!({"email": CAROL})),
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("POST", MEMBERS, members),
        None,
        Some(json!({"email": CAROL})),
        401,
        Some("unauthorized"),
    )
    .await;
    let list = api
        .expect(("GET", MEMBERS, members), Some(ALICE), None, 200, None)
        .await;
    assert_eq!(list["members"][0]["email"], BOB);
    api.expect(
        ("GET", MEMBERS, members),
        Some(BOB),
        None,
        403,
        Some("not_room_owner"),
    )
    .await;
    api.expect(
        ("GET", MEMBERS, members),
        Some(CAROL),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    let bob = "/api/rooms/secret/members/bob%40example.com";
    api.expect(("DELETE", MEMBER, bob), Some(ALICE), None, 204, None)
        .await;
    api.expect(
        ("DELETE", MEMBER, bob),
        Some(ALICE),
        None,
        404,
        Some("member_not_found"),
    )
    .await;
    api.expect(
        ("DELETE", MEMBER, "/api/rooms/secret/members/nope"),
        Some(ALICE),
        None,
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(
        ("DELETE", MEMBER, bob),
        Some(BOB),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("DELETE", MEMBER, bob),
        None,
        None,
        401,
        Some("unauthorized"),
    )
    .await;

    // Messages.
    let general = "/api/rooms/general/messages";
    let client_id = uuid::Uuid::new_v4();
    let first = api
        .expect(
            ("POST", MESSAGES, general),
            Some(ALICE),
            Some(json!({"content": "hello", "client_id": client_id})),
            201,
            None,
        )
        .await;
    let again = api
        .expect(
            ("POST", MESSAGES, general),
            Some(ALICE),
            Some(json!({"content": "hello", "client_id": client_id})),
            200,
            None,
        )
        .await;
    assert_eq!(first, again);
    api.expect(
        ("POST", MESSAGES, general),
        Some(BOB),
        Some(json!({"content": "mine", "client_id": client_id})),
        409,
        Some("client_id_taken"),
    )
    .await;
    for n in 0..4 {
        api.expect(
            ("POST", MESSAGES, general),
            Some(BOB),
            Some(json!({"content": format!("m{n}")})),
            201,
            None,
        )
        .await;
    }
    api.expect(
        ("POST", MESSAGES, general),
        Some(ALICE),
        Some(json!({"content": " "})),
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(
        ("POST", MESSAGES, "/api/rooms/nowhere/messages"),
        Some(ALICE),
        Some(json!({"content": "x"})),
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("POST", MESSAGES, general),
        None,
        Some(json!({"content": "x"})),
        401,
        Some("unauthorized"),
    )
    .await;
    let (status, body) = api
        .send(
            "POST",
            MESSAGES,
            api.request("POST", general, Some(ALICE))
                .body(vec![b'x'; 1024 * 1024 + 1]),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let page = api
        .expect(
            ("GET", MESSAGES, &format!("{general}?limit=2")),
            Some(ALICE),
            None,
            200,
            None,
        )
        .await;
    assert_eq!(page["has_more"], true);
    let older = api
        .expect(
            ("GET", MESSAGES, &format!("{general}?before=2&limit=5")),
            Some(ALICE),
            None,
            200,
            None,
        )
        .await;
    assert_eq!(older["messages"][0]["seq"], 1);
    api.expect(
        ("GET", MESSAGES, &format!("{general}?limit=0")),
        Some(ALICE),
        None,
        400,
        Some("invalid_query"),
    )
    .await;
    api.expect(
        ("GET", MESSAGES, &format!("{general}?before=1&after=1")),
        Some(ALICE),
        None,
        400,
        Some("invalid_query"),
    )
    .await;
    api.expect(
        ("GET", MESSAGES, "/api/rooms/secret/messages"),
        Some(CAROL),
        None,
        404,
        Some("room_not_found"),
    )
    .await;

    // Conversations: edits, reactions, replies, read marks, deletes.
    let id = first["id"].as_str().unwrap().to_owned();
    let one = format!("{general}/{id}");
    let reaction = format!("{one}/reactions/%F0%9F%91%8D");
    api.expect(
        ("PATCH", MESSAGE, &one),
        Some(ALICE),
        Some(json!({"content": "hello, everyone"})),
        200,
        None,
    )
    .await;
    api.expect(
        ("PATCH", MESSAGE, &one),
        Some(BOB),
        Some(json!({"content": "not mine"})),
        403,
        Some("not_message_author"),
    )
    .await;
    let reacted = api
        .expect(("PUT", REACTION, &reaction), Some(BOB), None, 200, None)
        .await;
    assert_eq!(
        reacted["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": true}])
    );
    api.expect(
        ("PUT", REACTION, &format!("{one}/reactions/nope")),
        Some(BOB),
        None,
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(("DELETE", REACTION, &reaction), Some(BOB), None, 200, None)
        .await;
    api.expect(
        (
            "DELETE",
            REACTION,
            &format!("{general}/not-a-uuid/reactions/%F0%9F%91%8D"),
        ),
        Some(BOB),
        None,
        404,
        Some("message_not_found"),
    )
    .await;
    api.expect(
        ("POST", MESSAGES, general),
        Some(BOB),
        Some(json!({"content": "a reply", "reply_to": id})),
        201,
        None,
    )
    .await;
    let replies = api
        .expect(
            ("GET", REPLIES, &format!("{one}/replies?limit=10")),
            Some(ALICE),
            None,
            200,
            None,
        )
        .await;
    assert_eq!(replies["messages"][0]["reply_to"]["id"], id.as_str());
    api.expect(
        ("GET", REPLIES, &format!("{one}/replies?limit=0")),
        Some(ALICE),
        None,
        400,
        Some("invalid_query"),
    )
    .await;
    let found = api
        .expect(
            ("GET", SEARCH, "/api/rooms/general/search?q=reply"),
            Some(ALICE),
            None,
            200,
            None,
        )
        .await;
    assert_eq!(found["messages"][0]["content"], "a reply");
    api.expect(
        ("GET", SEARCH, "/api/rooms/general/search?q=%20"),
        Some(ALICE),
        None,
        400,
        Some("invalid_query"),
    )
    .await;
    api.expect(
        ("GET", SEARCH, "/api/rooms/secret/search?q=reply"),
        Some(CAROL),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("PUT", READ, "/api/rooms/general/read"),
        Some(BOB),
        Some(json!({"seq": 2})),
        200,
        None,
    )
    .await;
    api.expect(
        ("PUT", READ, "/api/rooms/general/read"),
        Some(BOB),
        Some(json!({"seq": -1})),
        400,
        Some("invalid_field"),
    )
    .await;
    api.expect(
        ("POST", TYPING, "/api/rooms/general/typing"),
        Some(BOB),
        None,
        204,
        None,
    )
    .await;
    api.expect(
        ("POST", TYPING, "/api/rooms/secret/typing"),
        Some("outsider@example.com"),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("GET", PRESENCE, "/api/rooms/general/presence"),
        Some(BOB),
        None,
        200,
        None,
    )
    .await;
    api.expect(
        ("GET", PRESENCE, "/api/rooms/secret/presence"),
        Some("outsider@example.com"),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("DELETE", MESSAGE, &one),
        Some(BOB),
        None,
        403,
        Some("not_message_author"),
    )
    .await;
    let tombstone = api
        .expect(("DELETE", MESSAGE, &one), Some(ALICE), None, 200, None)
        .await;
    assert_eq!(tombstone["content"], "");
    api.expect(
        ("PUT", REACTION, &reaction),
        Some(BOB),
        None,
        409,
        Some("message_deleted"),
    )
    .await;
    api.expect(
        ("GET", MESSAGES, general),
        None,
        None,
        401,
        Some("unauthorized"),
    )
    .await;

    // Uploads, then a message with the file.
    let text = b"hello, file";
    let presign = |size: usize, content_type: &str, room: &str| json!({"room_id": room, "file_name": "../hi.txt", "content_type": content_type, "size": size});
    let upload = api
        .expect(
            ("POST", UPLOADS, UPLOADS),
            Some(ALICE),
            Some(presign(text.len(), "text/plain", "general")),
            201,
            None,
        )
        .await;
    api.expect(
        ("POST", MESSAGES, general),
        Some(ALICE),
        Some(json!({"content": "", "file_ids": [upload["id"]]})),
        400,
        Some("upload_incomplete"),
    )
    .await;
    assert!(app.put_upload(&upload, text).await.status().is_success());
    let with_file = api
        .expect(
            ("POST", MESSAGES, general),
            Some(ALICE),
            Some(json!({"content": "", "file_ids": [upload["id"]]})),
            201,
            None,
        )
        .await;
    assert_eq!(with_file["files"][0]["file_name"], "hi.txt");
    api.expect(
        ("POST", MESSAGES, general),
        Some(ALICE),
        Some(json!({"content": "again", "file_ids": [upload["id"]]})),
        400,
        Some("invalid_upload"),
    )
    .await;
    api.expect(
        ("POST", UPLOADS, UPLOADS),
        Some(ALICE),
        Some(presign(1001, "text/plain", "general")),
        413,
        Some("upload_too_large"),
    )
    .await;
    api.expect(
        ("POST", UPLOADS, UPLOADS),
        Some(ALICE),
        Some(presign(5, "text/html", "general")),
        400,
        Some("content_type_not_allowed"),
    )
    .await;
    api.expect(
        ("POST", UPLOADS, UPLOADS),
        Some(CAROL),
        Some(presign(5, "text/plain", "secret")),
        404,
        Some("room_not_found"),
    )
    .await;
    api.expect(
        ("POST", UPLOADS, UPLOADS),
        None,
        Some(presign(5, "text/plain", "general")),
        401,
        Some("unauthorized"),
    )
    .await;
    let listed = api
        .expect(
            ("GET", MESSAGES, &format!("{general}?after=6")),
            Some(ALICE),
            None,
            200,
            None,
        )
        .await;
    assert_eq!(listed["messages"][0]["files"][0]["id"], upload["id"]);

    // The stream: live messages with the token in the query, then a reset for a client too
    // far behind (the backlog here is 3).
    let stream = "/api/rooms/general/stream";
    let live = api
        .request("GET", stream, None)
        .query(&[("access_token", app.token(BOB))])
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let (status, content) = spec.check_head("GET", STREAM, &live);
    assert_eq!(status, 200);
    assert!(
        content.unwrap().get(mime(&live)).is_some(),
        "text/event-stream"
    );
    let sent = app.send("general", "live").await;
    let block = read_stream(&spec, live, |b| {
        b.get("event").is_some_and(|e| e == "message")
    })
    .await;
    assert_eq!(block["id"], sent["event_id"].to_string());
    let behind = api
        .request("GET", stream, Some(BOB))
        .query(&[("after", "0")])
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    spec.check_head("GET", STREAM, &behind);
    read_stream(&spec, behind, |b| {
        b.get("event").is_some_and(|e| e == "reset")
    })
    .await;
    let (status, body) = api
        .send(
            "GET",
            STREAM,
            api.request("GET", stream, Some(ALICE))
                .header("last-event-id", "x"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_last_event_id"))
    );
    api.expect(
        ("GET", STREAM, stream),
        None,
        None,
        401,
        Some("unauthorized"),
    )
    .await;
    api.expect(
        ("GET", STREAM, "/api/rooms/secret/stream"),
        Some(CAROL),
        None,
        404,
        Some("room_not_found"),
    )
    .await;
    // Two streams per user here: the third is a 429.
    let mut open = Vec::new();
    for _ in 0..2 {
        let response = api
            .request("GET", stream, Some(CAROL))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        assert_eq!(spec.check_head("GET", STREAM, &response).0, 200);
        open.push(response);
    }
    api.expect(
        ("GET", STREAM, stream),
        Some(CAROL),
        None,
        429,
        Some("too_many_streams_for_user"),
    )
    .await;
    drop(open);

    // The cleanup cron.
    let cron = |method: &str, secret: Option<&str>| {
        let request = api.request(method, CRON, None);
        match secret {
            Some(secret) => request.bearer_auth(secret),
            None => request,
        }
    };
    for method in ["GET", "POST"] {
        let (status, body) = api
            .send(method, CRON, cron(method, Some(CRON_SECRET)))
            .await;
        assert_eq!((status, body["deleted"].as_i64()), (200, Some(0)));
        let (status, _) = api.send(method, CRON, cron(method, Some("wrong"))).await;
        assert_eq!(status, 401);
        let (status, _) = api.send(method, CRON, cron(method, None)).await;
        assert_eq!(status, 401);
    }

    // The archive cron (no archive setting: it moves nothing).
    for method in ["GET", "POST"] {
        let archive = |secret: Option<&str>| {
            let request = api.request(method, ARCHIVE_CRON, None);
            match secret {
                Some(secret) => request.bearer_auth(secret),
                None => request,
            }
        };
        let (status, body) = api
            .send(method, ARCHIVE_CRON, archive(Some(CRON_SECRET)))
            .await;
        assert_eq!((status, body["archived"].as_i64()), (200, Some(0)));
        let (status, _) = api.send(method, ARCHIVE_CRON, archive(None)).await;
        assert_eq!(status, 401);
    }

    // The dev-only token route.
    let token = api
        .expect(
            ("POST", DEV_TOKEN, DEV_TOKEN),
            None,
            Some(json!({"email": CAROL})),
            200,
            None,
        )
        .await;
    assert!(token["token"].as_str().unwrap().contains('.'));
    api.expect(
        ("POST", DEV_TOKEN, DEV_TOKEN),
        None,
        Some(json!({"email": "nope"})),
        400,
        Some("invalid_field"),
    )
    .await;

    // Every documented path answers another method with 405 and an `Allow` that lists the
    // documented methods (checked in `response_spec`); an unknown path is a 404.
    for template in spec.paths().keys() {
        let path = template
            .replace("{room}", "general")
            .replace("{email}", "bob%40example.com")
            .replace("{message}", "0192f5d3-0c5e-7a51-9a1b-3f0e6c2b8d41")
            .replace("{emoji}", "%F0%9F%91%8D");
        // No route answers TRACE.
        api.expect(
            ("TRACE", template, &path),
            Some(ALICE),
            None,
            405,
            Some("method_not_allowed"),
        )
        .await;
    }
    api.expect(
        ("GET", "/api/nope", "/api/nope"),
        Some(ALICE),
        None,
        404,
        Some("route_not_found"),
    )
    .await;
    api.expect(
        ("GET", MESSAGES, "/api/rooms/a.b/messages"),
        Some(ALICE),
        None,
        404,
        Some("room_not_found"),
    )
    .await;

    // 503s: an instance at its stream cap, and a database that does not answer.
    let full = TestApp::spawn_with(|c| c.stream.max_per_instance = 0).await;
    full.room("general").await;
    let at_cap = Caller {
        app: &full,
        spec: &spec,
    };
    at_cap
        .expect(
            ("GET", STREAM, stream),
            Some(ALICE),
            None,
            503,
            Some("too_many_streams"),
        )
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!(
        "postgres://postgres@{}/chat",
        listener.local_addr().unwrap()
    );
    drop(listener);
    let s3 = EmbeddedS3::start("chat-test", None).unwrap();
    let mut config = base_config(&dead, &s3);
    config.database.acquire_timeout = Duration::from_secs(1);
    let down = TestApp::serve(config, dead, s3).await;
    let down = Caller {
        app: &down,
        spec: &spec,
    };
    // The operator's numbers, once the others have run (so every list has rows).
    const STATS: &str = "/api/admin/stats";
    let figures = api
        .expect(("GET", STATS, STATS), Some(CAROL), None, 200, None)
        .await;
    assert!(figures["database"]["rooms"].as_i64().unwrap() >= 2);
    assert!(!figures["instance"]["routes"].as_array().unwrap().is_empty());
    api.expect(
        ("GET", STATS, STATS),
        Some(ALICE),
        None,
        403,
        Some("not_admin"),
    )
    .await;
    api.expect(("GET", STATS, STATS), None, None, 401, Some("unauthorized"))
        .await;

    down.expect(
        ("GET", "/api/health", "/api/health"),
        None,
        None,
        503,
        Some("database_unavailable"),
    )
    .await;
    down.expect(
        ("GET", ROOMS, ROOMS),
        Some(ALICE),
        None,
        503,
        Some("database_unavailable"),
    )
    .await;

    spec.assert_covered();
}

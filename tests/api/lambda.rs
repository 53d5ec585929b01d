//! The function binaries as AWS Lambda runs them: each one its own process speaking the
//! Lambda Runtime API (`shared::host`'s `lambda_http` host), under `cargo lambda watch
//! --only-lambda-apis`, which emulates that API and serves function URLs at
//! `/lambda-url/<function>/<path>`. Requests go through the emulator's function URLs, so
//! they take the payload 2.0 event, the buffered answer and, for the stream, response
//! streaming, as on Lambda.
//!
//! `cargo-lambda` is `CARGO_LAMBDA`, else the one on `PATH`, else one installed once from
//! PyPI into `target/cargo-lambda-venv`. The binaries are `LAMBDA_BIN_DIR`'s when set (CI
//! points it at the release build), else the debug ones Cargo builds for these tests.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chat_dev::EmbeddedS3;
use chat_dev::token::mint_token;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared::Function;
use shared::config::Config;
use uuid::Uuid;

use crate::helpers::{ALICE, base_env, fresh_database};
use crate::sse_client::RawStream;

/// The emulator whose behaviour these tests were written against, installed when missing.
const CARGO_LAMBDA_VERSION: &str = "1.9.2";
/// A venv and a pip install from PyPI, on a slow machine.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);
const INSTALL_HINT: &str = "These tests need cargo-lambda: set CARGO_LAMBDA to it, put it \
    on PATH, or have python3 with venv (Debian: python3-venv) and PyPI reachable to install it.";
/// The emulator runs `cargo metadata` before it listens.
const EMULATOR_START_LIMIT: Duration = Duration::from_secs(60);
/// Any one SSE block; the first invocation of a function also connects its pool.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_functions_serve_list_post_and_presign_under_the_lambda_emulator() {
    use Function::*;
    let lambda = LambdaApp::start(&[Rooms, ListMessages, PostMessage, PresignUpload], &[]).await;
    lambda.room("general").await;
    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(lambda.send("general", &format!("message {n}")).await);
    }
    let seqs: Vec<&Value> = sent.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [1, 2, 3]);

    let newest = lambda
        .json(
            lambda
                .get(ListMessages, "/api/rooms/general/messages?limit=2")
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        newest,
        json!({"messages": [sent[1], sent[2]], "has_more": true, "last_event_id": 3})
    );
    let older = lambda
        .json(
            lambda
                .get(ListMessages, "/api/rooms/general/messages?before=2&limit=2")
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        older,
        json!({"messages": [sent[0]], "has_more": false, "last_event_id": 3})
    );

    let bytes = b"uploaded under the Lambda emulator";
    let request = json!({"room_id": "general", "file_name": "notes.txt",
        "content_type": "text/plain", "size": bytes.len()});
    let upload = lambda
        .json(
            lambda.post(PresignUpload, "/api/uploads", &request).await,
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["content-type"], "text/plain");
    assert_eq!(upload["headers"]["content-length"], bytes.len().to_string());
    let mut put = lambda
        .client
        .put(upload["url"].as_str().expect("url"))
        .body(bytes.to_vec());
    for (name, value) in upload["headers"].as_object().expect("headers") {
        put = put.header(name, value.as_str().expect("header value"));
    }
    let put = put.send().await.expect("PUT to the presigned url");
    assert_eq!(
        put.status(),
        StatusCode::OK,
        "the storage server took the PUT"
    );

    // The post function checks the object is in storage before it attaches it.
    let attached = lambda
        .json(
            lambda
                .post(
                    PostMessage,
                    "/api/rooms/general/messages",
                    &json!({"content": "see attached", "file_ids": [upload["id"]]}),
                )
                .await,
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(attached["seq"], 4);
    assert_eq!(attached["files"][0]["id"], upload["id"]);
    assert_eq!(attached["files"][0]["size"], bytes.len());
    let listed = lambda
        .json(
            lambda
                .get(ListMessages, "/api/rooms/general/messages?after=3")
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(listed["messages"][0]["files"][0]["id"], upload["id"]);
}

#[tokio::test]
async fn the_stream_streams_frame_by_frame_and_resumes_under_the_lambda_emulator() {
    use Function::*;
    let lifetime = Duration::from_secs(8);
    let lifetime_setting = lifetime.as_secs().to_string();
    let lambda = LambdaApp::start(
        &[Rooms, PostMessage, Stream],
        &[("STREAM_MAX_SECONDS", &lifetime_setting)],
    )
    .await;
    lambda.room("general").await;
    // A refusal is a streamed answer too: its status and body come in the prelude and frames.
    let refused = lambda
        .client
        .get(lambda.url(Stream, "/api/rooms/general/stream"))
        .send()
        .await
        .expect("open the stream without a token");
    let refused = lambda.json(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["error"]["code"], "unauthorized");
    lambda.send("general", "before the stream").await;

    let opened = Instant::now();
    let mut stream = lambda.open_stream("general", "0").await;
    let answered = opened.elapsed();
    assert!(
        answered < lifetime / 2,
        "the stream answered after {answered:?}, near the end of its {lifetime:?}: buffered"
    );
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(
        stream.next(WAIT).await.expect("a first block").retry,
        Some(1000)
    );
    assert_eq!(seq_of(stream.next_event(WAIT).await), 1);
    // Each message posted while the stream is open must arrive while it is still open: a
    // response held back until the invocation ends would end before any of them.
    for seq in 2..=3 {
        let sent = lambda.send("general", &format!("live {seq}")).await;
        let event = stream.next_event(WAIT).await.unwrap_or_else(|| {
            panic!("the stream ended before message {seq}, posted while it was open, arrived")
        });
        assert_eq!(event.id, Some(seq.to_string()));
        assert_eq!(event.json(), sent);
    }
    // Its lifetime over, the stream ends by itself, and the end comes through too.
    let after_end = stream.next_event(lifetime * 2).await;
    assert!(after_end.is_none(), "nothing more was sent: {after_end:?}");

    lambda.send("general", "while away 4").await;
    lambda.send("general", "while away 5").await;
    let mut resumed = lambda.open_stream("general", "3").await;
    assert_eq!(
        resumed.next(WAIT).await.expect("a first block").retry,
        Some(1000)
    );
    let mut seqs = vec![
        seq_of(resumed.next_event(WAIT).await),
        seq_of(resumed.next_event(WAIT).await),
    ];
    lambda.send("general", "after the resume").await;
    // Everything until the stream ends: exactly what followed Last-Event-ID, once each.
    while let Some(event) = resumed.next_event(lifetime * 2).await {
        seqs.push(seq_of(Some(event)));
    }
    assert_eq!(seqs, [4, 5, 6]);
}

fn seq_of(event: Option<crate::sse_client::Block>) -> i64 {
    let event = event.expect("a message, not the end of the stream");
    assert_eq!(event.event.as_deref(), Some("message"), "{event:?}");
    let seq = event.json()["seq"].as_i64().expect("seq");
    assert_eq!(event.id, Some(seq.to_string()));
    seq
}

/// The emulator and one process per function, with a fresh database and an S3 server;
/// every process is killed on drop, also when the test panics, whose output then ends
/// with each process's log.
struct LambdaApp {
    /// `http://127.0.0.1:PORT`, the emulator.
    address: String,
    client: reqwest::Client,
    config: Config,
    processes: Vec<Process>,
    logs: PathBuf,
    _s3: EmbeddedS3,
}

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for LambdaApp {
    fn drop(&mut self) {
        // Functions first, then the emulator they poll.
        for process in self.processes.iter_mut().rev() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if std::thread::panicking() {
            for process in &self.processes {
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- {} ({}):\n{tail}", process.name, process.log.display());
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}

impl LambdaApp {
    /// Starts the emulator on a free loopback port and `functions` as processes polling it,
    /// with the tests' settings (`base_env`, the NOTIFY wake-up on) and `settings` on top.
    async fn start(functions: &[Function], settings: &[(&'static str, &str)]) -> Self {
        let cargo_lambda = tokio::task::spawn_blocking(cargo_lambda)
            .await
            .expect("find or install cargo-lambda");
        let database_url = fresh_database().await;
        let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
        let mut env = base_env(&database_url, &s3);
        env.insert("DATABASE_URL_UNPOOLED", database_url.clone());
        env.insert("RUST_LOG", "info".to_owned());
        env.extend(
            settings
                .iter()
                .map(|&(name, value)| (name, value.to_owned())),
        );
        let config = Config::from_lookup(|name| env.get(name).cloned()).expect("config");
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("lambda-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs).expect("log directory");
        let mut app = Self {
            address: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            config,
            processes: Vec::new(),
            logs,
            _s3: s3,
        };
        let port = app.start_emulator(&cargo_lambda).await;
        app.address = format!("http://127.0.0.1:{port}");
        for &function in functions {
            let name = function.name();
            let mut command = Command::new(binary(function));
            command
                .env_clear()
                .envs(&env)
                // What Lambda sets, and what `cargo lambda watch` says to set: the runtime
                // API of this function on the emulator.
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("{}/.rt/{name}", app.address),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("test/{name}"))
                .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"));
            app.spawn(name, command);
        }
        app
    }

    /// Starts `cargo-lambda lambda watch --only-lambda-apis` on 127.0.0.1 and waits until it
    /// listens; returns its port. A port taken between choosing and binding is chosen again.
    async fn start_emulator(&mut self, cargo_lambda: &Path) -> u16 {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        for attempt in 1..=3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let mut command = Command::new(cargo_lambda);
            command
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
                // The app's own CORS headers, not the emulator's permissive ones.
                .arg("--disable-cors")
                .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
                .arg(port.to_string())
                .arg("--manifest-path")
                .arg(&manifest)
                .env_remove("AWS_LAMBDA_RUNTIME_API");
            let name = format!("cargo-lambda-{attempt}");
            self.spawn(&name, command);
            let deadline = Instant::now() + EMULATOR_START_LIMIT;
            loop {
                let emulator = self.processes.last_mut().expect("the emulator");
                if let Some(status) = emulator.child.try_wait().expect("emulator status") {
                    eprintln!("the emulator exited ({status}) on port {port}; trying another");
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return port;
                }
                assert!(
                    Instant::now() < deadline,
                    "the emulator did not listen within {EMULATOR_START_LIMIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("the emulator did not start");
    }

    /// Starts `command` with its output in `logs/<name>.log`, owned by this guard.
    fn spawn(&mut self, name: &str, mut command: Command) {
        let log = self.logs.join(format!("{name}.log"));
        let file = File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        self.processes.push(Process {
            name: name.to_owned(),
            child,
            log,
        });
    }

    /// The function URL of `function` for `path` (`/api/...`, with any query).
    fn url(&self, function: Function, path: &str) -> String {
        format!("{}/lambda-url/{}{path}", self.address, function.name())
    }

    fn token(&self) -> String {
        mint_token(&self.config.auth, ALICE, 3600).expect("token")
    }

    async fn get(&self, function: Function, path: &str) -> Response {
        self.client
            .get(self.url(function, path))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path} through {function:?}: {err}"))
    }

    async fn post(&self, function: Function, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(function, path))
            .bearer_auth(self.token())
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path} through {function:?}: {err}"))
    }

    /// Asserts the status and returns the JSON body.
    async fn json(&self, response: Response, status: StatusCode) -> Value {
        let url = response.url().clone();
        assert_eq!(response.status(), status, "{url}");
        response.json().await.expect("a JSON body")
    }

    async fn room(&self, id: &str) {
        let response = self
            .post(Function::Rooms, "/api/rooms", &json!({ "id": id }))
            .await;
        self.json(response, StatusCode::CREATED).await;
    }

    /// Posts `content` to `room` and returns the stored message.
    async fn send(&self, room: &str, content: &str) -> Value {
        let response = self
            .post(
                Function::PostMessage,
                &format!("/api/rooms/{room}/messages"),
                &json!({ "content": content, "client_id": Uuid::new_v4() }),
            )
            .await;
        self.json(response, StatusCode::CREATED).await
    }

    /// Opens `room`'s stream with `Authorization: Bearer` and `Last-Event-ID`.
    async fn open_stream(&self, room: &str, last_event_id: &str) -> RawStream {
        let response = self
            .client
            .get(self.url(Function::Stream, &format!("/api/rooms/{room}/stream")))
            .bearer_auth(self.token())
            .header("last-event-id", last_event_id)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("open the stream");
        RawStream::from_response(response)
    }
}

/// Where `function`'s binary is: `LAMBDA_BIN_DIR/<name>`, else the one built for these tests.
fn binary(function: Function) -> PathBuf {
    if let Some(dir) = std::env::var_os("LAMBDA_BIN_DIR").filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(function.name());
        assert!(path.is_file(), "LAMBDA_BIN_DIR has no {}", path.display());
        return path;
    }
    PathBuf::from(match function {
        Function::Rooms => env!("CARGO_BIN_EXE_rooms"),
        Function::ListMessages => env!("CARGO_BIN_EXE_list_messages"),
        Function::PostMessage => env!("CARGO_BIN_EXE_post_message"),
        Function::PresignUpload => env!("CARGO_BIN_EXE_presign_upload"),
        Function::Stream => env!("CARGO_BIN_EXE_stream"),
        other => panic!("no binary listed here for {other:?}"),
    })
}

/// The `cargo-lambda` binary: `CARGO_LAMBDA`, else the one on `PATH`, else one installed
/// into `target/cargo-lambda-venv`, once, by whichever test (or test process) asks first.
fn cargo_lambda() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CARGO_LAMBDA").filter(|p| !p.is_empty()) {
                return path.into();
            }
            let on_path = std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("cargo-lambda"))
                    .find(|path| path.is_file())
            });
            on_path.unwrap_or_else(install_cargo_lambda)
        })
        .clone()
}

/// `python3 -m venv target/cargo-lambda-venv` and `pip install cargo-lambda` into it, under
/// a file lock, unless an earlier run did.
fn install_cargo_lambda() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory");
    let venv = target.join("cargo-lambda-venv");
    let binary = venv.join("bin").join("cargo-lambda");
    let lock = File::create(target.join("cargo-lambda-venv.lock")).expect("lock file");
    lock.lock().expect("lock the cargo-lambda install");
    if !binary.is_file() {
        // What an interrupted install left behind.
        let _ = std::fs::remove_dir_all(&venv);
        let log = target.join("cargo-lambda-venv.log");
        run_bounded(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            &log,
        );
        run_bounded(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("cargo-lambda=={CARGO_LAMBDA_VERSION}")),
            &log,
        );
        assert!(binary.is_file(), "pip installed no {}", binary.display());
    }
    binary
}

/// Runs `command` to success within `INSTALL_LIMIT`, appending its output to `log`;
/// panics with that output otherwise.
fn run_bounded(command: &mut Command, log: &Path) {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("install log");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("install log"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|err| panic!("start {command:?}: {err}\n{INSTALL_HINT}"));
    let deadline = Instant::now() + INSTALL_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("install status") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.is_some_and(|s| s.success()) {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        panic!(
            "{command:?} failed ({status:?}, limit {INSTALL_LIMIT:?}):\n{output}\n{INSTALL_HINT}"
        );
    }
}

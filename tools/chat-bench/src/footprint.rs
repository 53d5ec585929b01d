//! Footprint: the RSS of a stream-serving process at 0 and at N open streams, the size of
//! each release function binary, and cold start (spawn to first response) of release
//! function binaries with and without a database call.

use std::path::Path;
use std::time::Duration;

use super::fanout::short;
use super::process::{self, Function};
use super::report::{Table, count, median, ms, one};
use super::sse::Subscribers;
use super::{Ctx, Server};

/// The function binaries `api/` builds (the root `Cargo.toml`'s `[[bin]]` entries).
const FUNCTIONS: [&str; 12] = [
    "rooms",
    "list_messages",
    "post_message",
    "presign_upload",
    "stream",
    "members",
    "cleanup-uploads",
    "archive",
    "health",
    "message",
    "read",
    "presence",
];
/// How long a spawned function may take to answer at all.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// A database URL nothing listens on: functions connect lazily, so requests that need no
/// database never notice.
const NO_DATABASE: &str = "postgres://bench:bench@127.0.0.1:9/bench";

pub async fn run(ctx: &mut Ctx) {
    rss(ctx).await;
    sizes(ctx);
    cold_starts(ctx).await;
}

/// RSS of each `--server-pid`, and of the release `stream` function spawned here.
async fn rss(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let n = plan.footprint_streams;
    let mut table = Table::new(
        "Footprint: RSS of the stream process",
        &[
            "process",
            "streams",
            "RSS at 0 MiB",
            "RSS at N MiB",
            "KiB per stream",
            "delivered to all",
        ],
    );
    table.param(format!(
        "{} streams on one room, each its own user and TCP connection; RSS = VmRSS from /proc/<pid>/status",
        count(n as f64)
    ));
    for server in &ctx.servers {
        let Some(pid) = server.pid else {
            table.note(format!("{}: no --server-pid, RSS not read.", server.label));
            continue;
        };
        let name = format!("dev server, {} (all routes, in-process S3)", server.label);
        let room = ctx.room("rss");
        match measure(ctx, server, pid, &room, n, true).await {
            Ok(cells) => table.row([vec![name, count(n as f64)], cells].concat()),
            Err(err) => {
                ctx.failures
                    .add(format!("footprint RSS on {}: {err:#}", server.label));
                table.row(vec![
                    name,
                    count(n as f64),
                    format!("failed: {}", short(&format!("{err:#}"))),
                ]);
            }
        }
    }
    let bin = plan.bin_dir.join("stream");
    match (&ctx.db, bin.exists()) {
        (Some(db), true) => {
            for wake_up in [true, false] {
                let name = format!(
                    "release `stream` function, {}",
                    if wake_up {
                        "wake-up on"
                    } else {
                        "polling only"
                    }
                );
                let result = async {
                    let room = ctx.room("rss-fn");
                    db.ensure_room(&room).await?;
                    let mut extra = vec![("STREAM_MAX_PER_INSTANCE", (n + 100).to_string())];
                    if wake_up {
                        extra.push(("DATABASE_URL_UNPOOLED", db.url.clone()));
                    }
                    let function = Function::spawn(&bin, &db.url, &secret(ctx), &extra)?;
                    let pid = function.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
                    // Any answer means it is up; the stream route without a token is a 401.
                    function
                        .first_response("/api/rooms/x/stream", &[], START_TIMEOUT)
                        .await?;
                    let server = Server {
                        api: super::client::Api::new(&function.base, ctx.tokens.clone())?,
                        label: name.clone(),
                        pid: Some(pid),
                        baseline: false,
                    };
                    let cells = measure(ctx, &server, pid, &room, n, false).await;
                    function.stop().await;
                    cells
                }
                .await;
                match result {
                    Ok(cells) => table.row([vec![name, count(n as f64)], cells].concat()),
                    Err(err) => {
                        ctx.failures
                            .add(format!("footprint RSS of {name}: {err:#}"));
                        table.row(vec![
                            name,
                            count(n as f64),
                            format!("failed: {}", short(&format!("{err:#}"))),
                        ]);
                    }
                }
            }
        }
        (None, _) => {
            table.note("The release `stream` function is spawned only with --database-url.")
        }
        (_, false) => table.note(format!(
            "{} is not built: `cargo build --release` for the function binaries.",
            bin.display()
        )),
    }
    table.print();
}

/// RSS at 0 and at `n` streams; with `post`, also checks one message reaches every stream.
async fn measure(
    ctx: &Ctx,
    server: &Server,
    pid: u32,
    room: &str,
    n: usize,
    post: bool,
) -> anyhow::Result<Vec<String>> {
    let api = &server.api;
    if post {
        wait_no_streams(server).await;
        api.create_room(room).await?;
    }
    let at_zero = process::rss_kib(pid)?;
    let subscribers =
        Subscribers::connect(api, room, "rss", n, ctx.plan.connect_concurrency).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = if post {
        let token = ctx.tokens.for_user("poster")?;
        api.post_message(room, &token, "footprint").await?;
        let all = subscribers
            .wait_for(n as u64, Duration::from_secs(15))
            .await;
        if all { "yes" } else { "NO" }
    } else {
        "—"
    };
    let at_n = process::rss_kib(pid)?;
    let feeds = subscribers.close().await;
    let errors: usize = feeds.iter().map(|f| f.errors.len()).sum();
    if delivered == "NO" || errors > 0 {
        anyhow::bail!("{errors} stream errors; message delivered to all: {delivered}");
    }
    let per_stream = if n > 0 {
        (at_n as f64 - at_zero as f64) / n as f64
    } else {
        0.0
    };
    Ok(vec![
        one(at_zero as f64 / 1024.0),
        one(at_n as f64 / 1024.0),
        one(per_stream),
        delivered.into(),
    ])
}

/// Waits (up to 20 s) for the server's `open_streams` to drop to 0 after earlier runs.
async fn wait_no_streams(server: &Server) {
    for _ in 0..200 {
        match server.api.open_streams().await {
            Ok(Some(0)) | Ok(None) | Err(_) => return,
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn sizes(ctx: &mut Ctx) {
    let dir = &ctx.plan.bin_dir;
    let mut table = Table::new(
        "Footprint: release binary sizes",
        &["binary", "MiB", "goal ≤ 20 MB"],
    );
    table.param(format!(
        "{} (built by `cargo build --release`)",
        dir.display()
    ));
    for name in FUNCTIONS {
        match std::fs::metadata(dir.join(name)) {
            Ok(meta) => {
                let mib = meta.len() as f64 / 1024.0 / 1024.0;
                let met = meta.len() <= 20_000_000;
                table.row(vec![
                    name.into(),
                    one(mib),
                    if met { "met" } else { "MISSED" }.into(),
                ]);
            }
            Err(_) => table.row(vec![name.into(), "not built".into(), "—".into()]),
        }
    }
    table.print();
}

/// Spawn → first response, for a request that needs no database (a 401 from
/// `list_messages`) and one that does (`health`: pool connect + `SELECT 1`).
async fn cold_starts(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Footprint: cold start (spawn → first response)",
        &[
            "function", "request", "answer", "starts", "p50 ms", "min ms", "max ms",
        ],
    );
    table.param(format!(
        "release binaries in {}, spawned with VERCEL_DEV_PORT on a free port and polled every 1 ms",
        plan.bin_dir.display()
    ));
    let mut cases: Vec<(&str, &str, String, u16)> = vec![(
        "list_messages",
        "GET messages, no token: auth only, no DB call",
        NO_DATABASE.to_owned(),
        401,
    )];
    match &ctx.db {
        Some(db) => cases.push((
            "health",
            "GET /api/health: DB connect + SELECT 1",
            db.url.clone(),
            200,
        )),
        None => table.note("The run with a DB call (health) needs --database-url."),
    }
    for (name, request, database_url, expect) in cases {
        let bin = plan.bin_dir.join(name);
        if !bin.exists() {
            table.row(vec![name.into(), request.into(), "not built".into()]);
            continue;
        }
        let path = if name == "health" {
            "/api/health"
        } else {
            "/api/rooms/bench/messages"
        };
        let mut times = Vec::new();
        let mut answer = String::new();
        for _ in 0..plan.cold_starts {
            match start_once(&bin, &database_url, &secret(ctx), path).await {
                Ok((status, took)) => {
                    if status != expect {
                        ctx.failures.add(format!(
                            "cold start {name}: answered {status}, expected {expect}"
                        ));
                    }
                    answer = status.to_string();
                    times.push(took.as_secs_f64() * 1000.0);
                }
                Err(err) => {
                    ctx.failures.add(format!("cold start {name}: {err:#}"));
                    answer = format!("failed: {}", short(&format!("{err:#}")));
                    break;
                }
            }
        }
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        table.row(vec![
            name.into(),
            request.into(),
            answer,
            times.len().to_string(),
            ms(median(times.clone())),
            if times.is_empty() {
                "—".into()
            } else {
                ms(min)
            },
            ms(max),
        ]);
    }
    table.print();
}

async fn start_once(
    bin: &Path,
    database_url: &str,
    secret: &str,
    path: &str,
) -> anyhow::Result<(u16, Duration)> {
    let function = Function::spawn(bin, database_url, secret, &[])?;
    let result = function.first_response(path, &[], START_TIMEOUT).await;
    function.stop().await;
    result
}

/// The secret spawned functions verify tokens with: the one tokens are minted with.
fn secret(ctx: &Ctx) -> String {
    match &ctx.tokens {
        super::client::Tokens::Mint(minter) => minter.secret.clone(),
        super::client::Tokens::Fixed(_) => super::args::DEV_JWT_SECRET.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::FUNCTIONS;

    #[test]
    fn every_function_binary_is_measured() {
        let manifest = include_str!("../../../Cargo.toml");
        let mut built: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|entry| {
                let line = entry.lines().find(|l| l.trim_start().starts_with("name"))?;
                line.split('"').nth(1)
            })
            .collect();
        let mut measured = FUNCTIONS.to_vec();
        built.sort_unstable();
        measured.sort_unstable();
        assert_eq!(built, measured);
    }
}

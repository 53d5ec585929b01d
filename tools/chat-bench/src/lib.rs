//! `chat-bench`: drives the public HTTP API of a dev server or deployment and prints one
//! Markdown table per scenario (fan-out, idle cost, deep room, room list, writes, write
//! cost, footprint, presence), with
//! its parameters. A direct Postgres URL adds the database's own figures and seeding.
//!
//! Modules: `args` (flags and the smoke plan), `client` (the HTTP API), `sse` (raw SSE
//! subscribers), `pg` (the database side), `report` (histograms and tables), `process`
//! (RSS and spawned functions), then one module per scenario.

mod archive;
pub mod args;
pub mod client;
mod deep;
mod fanout;
mod footprint;
mod idle;
pub mod pg;
mod presence;
pub mod process;
pub mod report;
mod rooms;
mod search;
pub mod sse;
mod storm;
mod write_cost;
mod writes;

use std::process::ExitCode;

use clap::Parser;

use self::args::{Args, Plan, Scenario};
use self::client::{Api, Minter, Tokens, check_reachable};
use self::pg::Db;
use self::report::Failures;

/// One server under test.
#[derive(Clone)]
pub struct Server {
    pub api: Api,
    /// "wake-up on" or "polling only" (the server's NOTIFY listener), plus its URL when two
    /// servers share a mode.
    pub label: String,
    pub pid: Option<u32>,
    /// The plain-insert baseline (`chat-baseline`): it serves posts only.
    pub baseline: bool,
}

/// What every scenario gets.
pub struct Ctx {
    pub plan: Plan,
    pub servers: Vec<Server>,
    pub db: Option<Db>,
    pub tokens: Tokens,
    pub failures: Failures,
    /// Makes this run's room ids unique.
    pub run_id: String,
}

impl Ctx {
    /// A fresh room id with this run's tag.
    pub fn room(&self, what: &str) -> String {
        let n = rand::random::<u32>() % 1_000_000;
        format!("bench-{what}-{}-{n}", self.run_id)
    }
}

/// The entry point of the `chat-bench` binary.
pub async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("\nchat-bench: {} failure(s):", failures.all().len());
            for f in failures.all() {
                eprintln!("  - {f}");
            }
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("chat-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<Failures> {
    let nofile = process::raise_nofile_limit();
    let plan = args.plan();
    let tokens = match &args.token {
        Some(token) => Tokens::Fixed(token.clone()),
        None => Tokens::Mint(Minter {
            secret: args.secret.clone(),
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
        }),
    };
    let mut servers = Vec::new();
    for (i, url) in args.urls.iter().enumerate() {
        let api = Api::new(url, tokens.clone())?;
        check_reachable(&api).await?;
        let health = api.health().await?;
        let baseline = health["server"] == "chat-baseline";
        // "disconnected" before the first stream: the hub starts its listener on demand.
        let label = match health["streams"]["listener"].as_str().unwrap_or("unknown") {
            _ if baseline => "plain insert (baseline)".to_owned(),
            "off" => "polling only".to_owned(),
            "connected" | "disconnected" => "wake-up on".to_owned(),
            other => format!("listener {other}"),
        };
        servers.push(Server {
            api,
            label,
            pid: args.server_pids.get(i).copied(),
            baseline,
        });
    }
    let labels: Vec<String> = servers.iter().map(|s| s.label.clone()).collect();
    for server in &mut servers {
        if labels.iter().filter(|l| **l == server.label).count() > 1 {
            server.label = format!("{} ({})", server.label, server.api.base);
        }
    }
    let db = match &args.database_url {
        Some(url) => Some(Db::connect(url).await?),
        None => None,
    };
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);

    println!("# chat-bench{}", if plan.smoke { " (smoke)" } else { "" });
    println!();
    println!("- machine: {}", process::machine());
    println!("- open files limit: {nofile}");
    for s in &servers {
        let pid = s.pid.map_or(String::new(), |p| format!(", pid {p}"));
        println!("- server: {} — {}{pid}", s.api.base, s.label);
    }
    println!(
        "- database: {}",
        if db.is_some() {
            "--database-url given"
        } else {
            "none (pg_stat_database figures, deep room and spawned functions are skipped)"
        }
    );
    println!("- runs per configuration: {}", plan.repeat);

    let mut ctx = Ctx {
        plan,
        servers,
        db,
        tokens,
        failures: Failures::default(),
        run_id,
    };
    let wants = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    // The baseline serves posts only: it takes part in the write scenarios alone.
    let everyone = ctx.servers.clone();
    let api_only: Vec<Server> = everyone.iter().filter(|s| !s.baseline).cloned().collect();
    if api_only.len() < everyone.len() {
        println!(
            "- the plain-insert baseline takes part in `storm`, `writes` and `write-cost` only"
        );
    }
    // The storm compares the hub with the baseline's per-connection poller.
    if wants(Scenario::Storm) {
        storm::storm(&mut ctx).await;
    }
    ctx.servers = api_only.clone();
    if wants(Scenario::Spread) {
        storm::spread(&mut ctx).await;
    }
    if wants(Scenario::Fanout) {
        fanout::run(&mut ctx).await;
    }
    if wants(Scenario::Idle) {
        idle::run(&mut ctx).await;
    }
    if wants(Scenario::Deep) {
        deep::run(&mut ctx).await;
    }
    if wants(Scenario::Search) {
        search::run(&mut ctx).await;
    }
    if wants(Scenario::Rooms) {
        rooms::run(&mut ctx).await;
    }
    if wants(Scenario::Presence) {
        presence::run(&mut ctx).await;
    }
    ctx.servers = everyone;
    if wants(Scenario::Writes) {
        writes::run(&mut ctx).await;
    }
    if wants(Scenario::WriteCost) {
        write_cost::run(&mut ctx).await;
    }
    ctx.servers = api_only;
    if wants(Scenario::Footprint) {
        footprint::run(&mut ctx).await;
    }
    if args.scenario == Scenario::Archive {
        archive::run(
            &mut ctx,
            args.archive_messages,
            args.archive_catch_up,
            args.cron_secret.as_deref(),
        )
        .await;
    }
    Ok(ctx.failures)
}

//! Write cost: what one write to a room's log costs in CPU, server and Postgres, side by
//! side with the plain-insert baseline (`chat-baseline`).
//!
//! For each server, and each kind of write (a post; for the API also an edit, a reaction
//! added or removed, a delete), N clients (default 32, each its own user and connection)
//! write back to back into R rooms (default 100) for S seconds (default 8) after one
//! second of warm-up. Just as the window opens and as it closes, the CPU time (user +
//! system, from `/proc/<pid>/stat`) of the server process (`--server-pid`) and of every
//! Postgres process (comm `postgres`: backends and background processes; only the
//! `--database-url` cluster when its postmaster is on this machine) is read; the
//! difference over the writes completed in the window is the CPU per write. With
//! `--database-url` and `pg_stat_statements` loaded, the statements with the most
//! execution time in the window are listed too.
//!
//! Edits, reactions and deletes need messages: each client's users post them before the
//! window (not measured), one message per user for edits and reactions, one per delete.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use uuid::Uuid;

use super::args::Event;
use super::fanout::short;
use super::pg::StatementStat;
use super::process::{cpu_ms, postgres_cpu_ms, self_cpu_ms};
use super::report::{Latency, Table, count, median_by, ms, one};
use super::{Ctx, Server};

/// Writes by one user before the next one takes over: no per-user limit binds (posts
/// 30/10 s, edits and deletes 30/10 s, reactions 60/10 s by default).
const PER_USER: usize = 20;
const CONTENT: &str =
    "Write benchmark message: the quick brown fox jumps over the lazy dog, then checks the chat.";
const EDITED: &str =
    "Edited benchmark message: the quick brown fox jumps over the lazy dog, then edits the chat.";
/// Reactions alternate: add one, remove it, add the next.
const EMOJI: [&str; 5] = ["👍", "🎉", "❤️", "😂", "👀"];
/// Statements listed per window.
const TOP_STATEMENTS: i64 = 12;
/// Writes per second assumed before a server's post rate is known.
const DEFAULT_RATE: f64 = 3000.0;

/// One write a client will do: as which user (index into its tokens), where, on what.
#[derive(Clone)]
struct Op {
    user: usize,
    room: String,
    id: Uuid,
}

/// What a client writes during the window.
enum Work {
    /// Posts into these rooms, a new user every [`PER_USER`].
    Post { rooms: Vec<String> },
    /// These writes, in order, with these users' tokens; the client stops when they run out.
    Ops { tokens: Vec<String>, ops: Vec<Op> },
}

/// CPU times read at one moment, in ms.
struct Sample {
    at: Instant,
    server: Option<f64>,
    postgres: f64,
    postgres_procs: usize,
    clients: f64,
}

struct Run {
    events: u64,
    secs: f64,
    server_ms: Option<f64>,
    postgres_ms: f64,
    postgres_procs: usize,
    clients_ms: f64,
    latency: Latency,
    errors: u64,
    /// A client used up its prepared writes before the window closed.
    ran_out: bool,
    statements: Vec<StatementStat>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }
    fn per_event(&self, ms: f64) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            ms / self.events as f64
        }
    }
    fn server(&self) -> Option<f64> {
        self.server_ms.map(|ms| self.per_event(ms))
    }
    fn postgres(&self) -> f64 {
        self.per_event(self.postgres_ms)
    }
    fn total(&self) -> Option<f64> {
        self.server().map(|s| s + self.postgres())
    }
}

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Write cost: CPU per write to the log (server and Postgres, from /proc)",
        &[
            "server",
            "write",
            "run",
            "events",
            "events/s",
            "p50 ms",
            "server CPU ms/event",
            "Postgres CPU ms/event",
            "total ms/event",
            "clients' CPU ms/event",
            "errors",
        ],
    );
    table.param(format!(
        "{} clients (each its own user and connection, a new user every {PER_USER} writes) write back to back into {} rooms (client i: rooms i, i+{}, ...) for {:.0} s after {:.1} s of warm-up",
        plan.cost_clients,
        plan.cost_rooms,
        plan.cost_clients,
        plan.cost_seconds.as_secs_f64(),
        plan.cost_warmup.as_secs_f64()
    ));
    table.param(
        "CPU = utime + stime from /proc/<pid>/stat (10 ms ticks) at the window's start and end, over the writes completed in it; edits, reactions and deletes act on messages posted before the window".to_owned(),
    );
    let postmaster = match &ctx.db {
        Some(db) => db.postmaster_pid().await,
        None => None,
    };
    let (_, procs) = postgres_cpu_ms(postmaster);
    table.param(match postmaster {
        Some(pm) => format!(
            "Postgres: the --database-url cluster, postmaster {pm} and its children ({procs} processes now; exited backends counted through the postmaster's reaped-children time)"
        ),
        None => format!(
            "Postgres: every process named `postgres` on this machine ({procs} now; no --database-url cluster on this machine to narrow it to), other clusters included"
        ),
    });
    let tracking = match &ctx.db {
        Some(db) => db.statements_tracking().await,
        None => None,
    };
    table.param(match &tracking {
        Some(track) => format!(
            "pg_stat_statements: loaded, track = {track}; execution time is wall time in Postgres; with track = all a function's inner statements are listed too and their time is also in their caller's"
        ),
        None => "pg_stat_statements: not loaded (start Postgres with shared_preload_libraries=pg_stat_statements, and give --database-url); no statement figures".to_owned(),
    });
    if ctx.servers.iter().any(|s| s.pid.is_none()) {
        table.note("A server without --server-pid has no server CPU figures.");
    }

    // Rooms per server (servers may not share a database).
    let mut rooms: Vec<Vec<String>> = Vec::new();
    for server in &ctx.servers {
        let tag = ctx.room("cost");
        let ids: Vec<String> = (0..plan.cost_rooms).map(|i| format!("{tag}-{i}")).collect();
        for id in &ids {
            if let Err(err) = server.api.create_room(id).await {
                ctx.failures.add(format!(
                    "write cost on {}: creating rooms: {err:#}",
                    server.label
                ));
                break;
            }
        }
        rooms.push(ids);
    }

    let mut results: Vec<(usize, Event, Vec<Run>)> = Vec::new();
    let mut statement_tables: Vec<Table> = Vec::new();
    let mut post_rate: Vec<f64> = vec![DEFAULT_RATE; ctx.servers.len()];
    for rep in 0..plan.repeat {
        for (i, server) in ctx.servers.iter().enumerate() {
            for &event in &plan.cost_events {
                if server.baseline && event != Event::Post {
                    continue;
                }
                let run = match once(
                    ctx,
                    server,
                    &rooms[i],
                    event,
                    post_rate[i],
                    postmaster,
                    tracking.is_some(),
                )
                .await
                {
                    Ok(run) => run,
                    Err(err) => {
                        ctx.failures.add(format!(
                            "write cost ({}) on {}: {err:#}",
                            name(event),
                            server.label
                        ));
                        table.row(vec![
                            server.label.clone(),
                            name(event).into(),
                            (rep + 1).to_string(),
                            format!("failed: {}", short(&format!("{err:#}"))),
                        ]);
                        continue;
                    }
                };
                if run.errors > 0 {
                    ctx.failures.add(format!(
                        "write cost ({}) on {}: {} failed writes",
                        name(event),
                        server.label,
                        run.errors
                    ));
                }
                if run.ran_out {
                    table.note(format!(
                        "{} on {}, run {}: a client ran out of prepared messages before the window closed; events/s is low",
                        name(event),
                        server.label,
                        rep + 1
                    ));
                }
                if event == Event::Post && run.events > 0 {
                    post_rate[i] = run.per_sec();
                }
                table.row(cells(server, event, &(rep + 1).to_string(), &run));
                if !run.statements.is_empty() {
                    statement_tables.push(statements_table(server, event, rep + 1, &run));
                }
                match results.iter_mut().find(|(s, e, _)| *s == i && *e == event) {
                    Some((_, _, runs)) => runs.push(run),
                    None => results.push((i, event, vec![run])),
                }
            }
        }
    }
    if plan.repeat > 1 {
        for (i, event, runs) in &results {
            let server = &ctx.servers[*i];
            let opt = |f: &dyn Fn(&Run) -> Option<f64>| {
                if runs.iter().all(|r| f(r).is_some()) {
                    format!("**{}**", ms3(median_by(runs, |r| f(r).unwrap_or(0.0))))
                } else {
                    "—".into()
                }
            };
            table.row(vec![
                format!("**{}**", server.label),
                format!("**{}**", name(*event)),
                "**median**".into(),
                count(median_by(runs, |r| r.events as f64)),
                format!("**{}**", one(median_by(runs, Run::per_sec))),
                ms(median_by(runs, |r| r.latency.ms(0.5))),
                opt(&Run::server),
                format!("**{}**", ms3(median_by(runs, Run::postgres))),
                opt(&Run::total),
                ms3(median_by(runs, |r| r.per_event(r.clients_ms))),
                runs.iter().map(|r| r.errors).sum::<u64>().to_string(),
            ]);
        }
    }
    if let Some(run) = results.first().and_then(|(_, _, runs)| runs.first()) {
        table.param(format!(
            "Postgres processes summed in the first window: {}",
            run.postgres_procs
        ));
    }
    table.print();
    for t in statement_tables {
        t.print();
    }
}

fn name(event: Event) -> &'static str {
    match event {
        Event::Post => "post",
        Event::Edit => "edit",
        Event::React => "reaction (add/remove)",
        Event::Delete => "delete",
    }
}

/// Three decimals: CPU per event is a fraction of a millisecond.
fn ms3(v: f64) -> String {
    format!("{v:.3}")
}

fn cells(server: &Server, event: Event, run_name: &str, run: &Run) -> Vec<String> {
    vec![
        server.label.clone(),
        name(event).into(),
        run_name.into(),
        count(run.events as f64),
        one(run.per_sec()),
        ms(run.latency.ms(0.5)),
        run.server().map_or("—".into(), ms3),
        ms3(run.postgres()),
        run.total().map_or("—".into(), ms3),
        ms3(run.per_event(run.clients_ms)),
        run.errors.to_string(),
    ]
}

fn statements_table(server: &Server, event: Event, rep: usize, run: &Run) -> Table {
    let mut t = Table::new(
        &format!(
            "Statements in the window: {}, {}, run {rep} ({} events)",
            server.label,
            name(event),
            count(run.events as f64)
        ),
        &[
            "database",
            "top",
            "calls",
            "calls/event",
            "exec ms",
            "exec µs/event",
            "µs/call",
            "plan ms",
            "rows",
            "query",
        ],
    );
    let events = run.events.max(1) as f64;
    for s in &run.statements {
        let query: String = s.query.chars().take(140).collect();
        t.row(vec![
            s.database.clone(),
            if s.toplevel { "yes" } else { "no" }.into(),
            count(s.calls as f64),
            format!("{:.2}", s.calls as f64 / events),
            one(s.exec_ms),
            one(s.exec_ms * 1000.0 / events),
            one(s.exec_ms * 1000.0 / (s.calls.max(1) as f64)),
            one(s.plan_ms),
            count(s.rows as f64),
            format!("`{}`", query.replace('|', "/").replace('`', "'")),
        ]);
    }
    t
}

async fn sample(server: &Server, postmaster: Option<u32>) -> Sample {
    let (postgres, postgres_procs) = postgres_cpu_ms(postmaster);
    Sample {
        at: Instant::now(),
        server: server.pid.and_then(|pid| cpu_ms(pid).ok()),
        postgres,
        postgres_procs,
        clients: self_cpu_ms(),
    }
}

/// One window of one kind of write on one server.
async fn once(
    ctx: &Ctx,
    server: &Server,
    rooms: &[String],
    event: Event,
    rate: f64,
    postmaster: Option<u32>,
    statements: bool,
) -> anyhow::Result<Run> {
    let plan = &ctx.plan;
    let clients = plan.cost_clients;
    let work = prepare(ctx, server, rooms, event, rate).await?;

    let start = Instant::now();
    let measure_from = start + plan.cost_warmup;
    let end = measure_from + plan.cost_seconds;
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run_no = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = std::process::id();
    let mut tasks = JoinSet::new();
    for (c, work) in work.into_iter().enumerate() {
        let api = server.api.clone();
        let tokens = ctx.tokens.clone();
        tasks.spawn(async move {
            let mut latency = Latency::default();
            let (mut events, mut errors, mut ran_out) = (0u64, 0u64, false);
            let mut token = String::new();
            let mut k = 0usize;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = match &work {
                    Work::Post { rooms } => {
                        if k.is_multiple_of(PER_USER) {
                            let user = format!("cost-{nonce}-{run_no}-{c}-{}", k / PER_USER);
                            match tokens.for_user(&user) {
                                Ok(t) => token = t,
                                Err(_) => break,
                            }
                        }
                        let room = &rooms[k % rooms.len()];
                        api.post_for_id(room, &token, CONTENT).await.map(|_| ())
                    }
                    Work::Ops { tokens, ops } => {
                        let Some(op) = ops.get(k) else {
                            ran_out = true;
                            break;
                        };
                        let token = &tokens[op.user];
                        match event {
                            Event::Edit => api
                                .edit_message(&op.room, &op.id.to_string(), token, EDITED)
                                .await
                                .map(|_| ()),
                            Event::React => {
                                // Each user's k-th write on its message: add, remove, add, …
                                let n = k % PER_USER;
                                let emoji = EMOJI[(n / 2) % EMOJI.len()];
                                api.react(&op.room, op.id, token, emoji, n.is_multiple_of(2))
                                    .await
                            }
                            Event::Delete => api.delete_message(&op.room, op.id, token).await,
                            Event::Post => unreachable!("posts are not prepared"),
                        }
                    }
                };
                k += 1;
                let done = Instant::now();
                match result {
                    Ok(()) if done >= measure_from && done <= end => {
                        events += 1;
                        latency.record(done - sent);
                    }
                    Ok(()) => {}
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("write cost: a {} failed: {err:#}", name(event));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (events, errors, ran_out, latency)
        });
    }
    debug_assert_eq!(tasks.len(), clients);

    tokio::time::sleep_until(measure_from.into()).await;
    if statements && let Some(db) = &ctx.db {
        db.reset_statements().await?;
    }
    let before = sample(server, postmaster).await;
    tokio::time::sleep_until(end.into()).await;
    let after = sample(server, postmaster).await;
    let top = match (&ctx.db, statements) {
        (Some(db), true) => db.top_statements(TOP_STATEMENTS).await?,
        _ => Vec::new(),
    };

    let mut run = Run {
        events: 0,
        secs: (after.at - before.at).as_secs_f64(),
        server_ms: match (before.server, after.server) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        },
        postgres_ms: after.postgres - before.postgres,
        postgres_procs: after.postgres_procs,
        clients_ms: after.clients - before.clients,
        latency: Latency::default(),
        errors: 0,
        ran_out: false,
        statements: top,
    };
    while let Some(joined) = tasks.join_next().await {
        let (events, errors, ran_out, latency) = joined?;
        run.events += events;
        run.errors += errors;
        run.ran_out |= ran_out;
        run.latency.add(&latency);
    }
    Ok(run)
}

/// What each client writes: posts need nothing; edits and reactions one message per user,
/// deletes one per delete, posted now (outside the window) by the client's users.
async fn prepare(
    ctx: &Ctx,
    server: &Server,
    rooms: &[String],
    event: Event,
    rate: f64,
) -> anyhow::Result<Vec<Work>> {
    let plan = &ctx.plan;
    let clients = plan.cost_clients;
    let mine = |c: usize| -> Vec<String> {
        let picked: Vec<String> = rooms
            .iter()
            .skip(c % rooms.len())
            .step_by(clients)
            .cloned()
            .collect();
        if picked.is_empty() {
            vec![rooms[c % rooms.len()].clone()]
        } else {
            picked
        }
    };
    if event == Event::Post {
        return Ok((0..clients)
            .map(|c| Work::Post { rooms: mine(c) })
            .collect());
    }
    // Enough for the whole run at 1.5-2× the post rate, in whole users.
    let secs = (plan.cost_warmup + plan.cost_seconds).as_secs_f64();
    let margin = if event == Event::Delete { 1.5 } else { 2.0 };
    let per_client = ((rate * secs * margin) / clients as f64).ceil() as usize;
    let users = per_client.div_ceil(PER_USER).max(1);
    let messages_per_user = if event == Event::Delete { PER_USER } else { 1 };

    static PREPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let batch = PREPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = std::process::id();
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let api = server.api.clone();
        let minter = ctx.tokens.clone();
        let rooms = mine(c);
        tasks.spawn(async move {
            let mut tokens = Vec::with_capacity(users);
            let mut ops = Vec::with_capacity(users * PER_USER);
            for u in 0..users {
                let who = format!("cost-{nonce}-p{batch}-{c}-{u}");
                let token = minter.for_user(&who)?;
                let mut posted = Vec::with_capacity(messages_per_user);
                for m in 0..messages_per_user {
                    let room = rooms[(u * messages_per_user + m) % rooms.len()].clone();
                    let id = api.post_for_id(&room, &token, CONTENT).await?;
                    posted.push(Op { user: u, room, id });
                }
                tokens.push(token);
                if messages_per_user == 1 {
                    ops.extend(std::iter::repeat_n(posted[0].clone(), PER_USER));
                } else {
                    ops.extend(posted);
                }
            }
            anyhow::Ok((c, Work::Ops { tokens, ops }))
        });
    }
    let mut work: Vec<Option<Work>> = (0..clients).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (c, w) = joined??;
        work[c] = Some(w);
    }
    Ok(work.into_iter().flatten().collect())
}

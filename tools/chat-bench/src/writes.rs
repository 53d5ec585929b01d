//! Writes: post throughput and latency with 1, 8 and 32 concurrent clients, into one hot
//! room and across many rooms. Each client posts back to back for a fixed time, after an
//! unmeasured warm-up.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::fanout::short;
use super::report::{Latency, Table, count, median_by, ms, one};
use super::{Ctx, Server};

/// Posts per simulated user before the next one takes over.
const POSTS_PER_USER: usize = 20;
const CONTENT: &str =
    "Write benchmark message: the quick brown fox jumps over the lazy dog, then checks the chat.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    HotRoom,
    Across,
}

struct Run {
    posts: u64,
    per_sec: f64,
    latency: Latency,
    errors: u64,
}

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Writes: POST /api/rooms/{room}/messages",
        &[
            "server", "target", "clients", "run", "posts", "msgs/s", "p50 ms", "p99 ms", "max ms",
            "errors",
        ],
    );
    table.param(format!(
        "clients: {:?}, each posting back to back (its own user and connection) for {:.0} s after {:.1} s of warm-up",
        plan.write_clients,
        plan.write_seconds.as_secs_f64(),
        plan.write_warmup.as_secs_f64()
    ));
    table.param(format!(
        "hot room: every client into one room; across rooms: client i posts into rooms i, i+clients, ... of {}",
        plan.write_rooms
    ));
    // Rooms per server (servers may not share a database).
    let mut rooms: Vec<(String, Vec<String>)> = Vec::new();
    for server in &ctx.servers {
        let hot = ctx.room("hot");
        let tag = ctx.room("w");
        let many: Vec<String> = (0..plan.write_rooms)
            .map(|i| format!("{tag}-{i}"))
            .collect();
        let mut created = server.api.create_room(&hot).await;
        for room in &many {
            if created.is_ok() {
                created = server.api.create_room(room).await;
            }
        }
        if let Err(err) = created {
            ctx.failures.add(format!(
                "writes on {}: creating rooms: {err:#}",
                server.label
            ));
        }
        rooms.push((hot, many));
    }
    for &clients in &plan.write_clients {
        for target in [Target::HotRoom, Target::Across] {
            for (i, server) in ctx.servers.iter().enumerate() {
                let mut runs = Vec::new();
                for rep in 0..plan.repeat {
                    let targets: Vec<String> = match target {
                        Target::HotRoom => vec![rooms[i].0.clone()],
                        Target::Across => rooms[i].1.clone(),
                    };
                    let name = match target {
                        Target::HotRoom => "hot room".to_owned(),
                        Target::Across => format!("across {} rooms", targets.len()),
                    };
                    let mut row = vec![
                        server.label.clone(),
                        name,
                        clients.to_string(),
                        (rep + 1).to_string(),
                    ];
                    match once(ctx, server, &targets, clients).await {
                        Ok(run) => {
                            if run.errors > 0 {
                                ctx.failures.add(format!(
                                    "writes ({clients} clients) on {}: {} failed posts",
                                    server.label, run.errors
                                ));
                            }
                            row.extend(cells(&run));
                            runs.push(run);
                        }
                        Err(err) => {
                            ctx.failures
                                .add(format!("writes on {}: {err:#}", server.label));
                            row.push(format!("failed: {}", short(&format!("{err:#}"))));
                        }
                    }
                    table.row(row);
                }
                if runs.len() > 1 {
                    table.row(vec![
                        format!("**{}**", server.label),
                        match target {
                            Target::HotRoom => "**hot room**".into(),
                            Target::Across => format!("**across {} rooms**", rooms[i].1.len()),
                        },
                        format!("**{clients}**"),
                        "**median**".into(),
                        count(median_by(&runs, |r| r.posts as f64)),
                        format!("**{}**", one(median_by(&runs, |r| r.per_sec))),
                        format!("**{}**", ms(median_by(&runs, |r| r.latency.ms(0.5)))),
                        format!("**{}**", ms(median_by(&runs, |r| r.latency.ms(0.99)))),
                        ms(median_by(&runs, |r| r.latency.max_ms())),
                        runs.iter().map(|r| r.errors).sum::<u64>().to_string(),
                    ]);
                }
            }
        }
    }
    table.print();
}

async fn once(ctx: &Ctx, server: &Server, rooms: &[String], clients: usize) -> anyhow::Result<Run> {
    let plan = &ctx.plan;
    let start = Instant::now();
    let measure_from = start + plan.write_warmup;
    let end = measure_from + plan.write_seconds;
    // Users are new to every run: a writer of the previous run may still hold few tokens.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = std::process::id();
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let api = server.api.clone();
        let tokens = ctx.tokens.clone();
        let mine: Vec<String> = rooms
            .iter()
            .skip(c % rooms.len())
            .step_by(clients.max(1))
            .cloned()
            .collect();
        let mine = if mine.is_empty() {
            vec![rooms[c % rooms.len()].clone()]
        } else {
            mine
        };
        tasks.spawn(async move {
            let mut latency = Latency::default();
            let (mut posts, mut errors) = (0u64, 0u64);
            let mut k = 0usize;
            let mut token = String::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let room = &mine[k % mine.len()];
                // A new user every few posts: per-user post limits never bind.
                if k.is_multiple_of(POSTS_PER_USER) {
                    let user = format!("writer-{nonce}-{run}-{c}-{}", k / POSTS_PER_USER);
                    match tokens.for_user(&user) {
                        Ok(t) => token = t,
                        Err(_) => break,
                    }
                }
                k += 1;
                // The id only: the plain-insert baseline answers with no `seq`.
                let result = api.post_for_id(room, &token, CONTENT).await;
                let done = Instant::now();
                let counted = sent >= measure_from && done <= end;
                match result {
                    Ok(_) if counted => {
                        posts += 1;
                        latency.record(done - sent);
                    }
                    Ok(_) => {}
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("writes: a post failed: {err:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (posts, errors, latency)
        });
    }
    let mut run = Run {
        posts: 0,
        per_sec: 0.0,
        latency: Latency::default(),
        errors: 0,
    };
    while let Some(joined) = tasks.join_next().await {
        let (posts, errors, latency) = joined?;
        run.posts += posts;
        run.errors += errors;
        run.latency.add(&latency);
    }
    run.per_sec = run.posts as f64 / plan.write_seconds.as_secs_f64();
    Ok(run)
}

fn cells(run: &Run) -> Vec<String> {
    vec![
        count(run.posts as f64),
        one(run.per_sec),
        ms(run.latency.ms(0.5)),
        ms(run.latency.ms(0.99)),
        ms(run.latency.max_ms()),
        run.errors.to_string(),
    ]
}

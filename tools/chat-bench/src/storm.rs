//! Reconnect storms and fan-out across processes (issue 16).
//!
//! - `storm`: N clients resume at once, each `--storm-behind` events back, with
//!   `Last-Event-ID`, on a room the server has no stream on (as after a deploy); per client
//!   the time from the storm's start until it holds the room's last event, and every
//!   client's ids checked for loss, duplication and order. Side by side with the baseline's
//!   per-connection poller (`chat-baseline`). With `--database-url` and
//!   `pg_stat_statements`, the statements the whole cluster ran during the storm.
//! - `spread`: every `--url` is a server process on the same Postgres; each gets
//!   `--spread-subscribers` on one room; `--messages` posts at `--rate`, each through the
//!   next process in turn. Delivery p50/p99 over all subscribers, each process's hub
//!   statements per second idle and busy, and the `LISTEN` connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::fanout::check;
use super::report::{Latency, Table, count, ms, one};
use super::sse::{self, Parser, Subscribers};
use super::{Ctx, Server};

/// How long a storm client may take to catch up before it counts as failed.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
const CONTENT: &str =
    "Storm benchmark message: the quick brown fox jumps over the lazy dog, then checks the chat.";

struct StormRun {
    caught_up: usize,
    latency: Latency,
    lost: u64,
    duplicated: u64,
    failed: usize,
    statements: Option<i64>,
    hub_statements: Option<u64>,
    took: Duration,
}

pub async fn storm(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Reconnect storm",
        &[
            "server",
            "clients",
            "caught up",
            "p50 ms",
            "p99 ms",
            "max ms",
            "lost",
            "dup",
            "DB statements",
            "hub statements",
            "storm s",
        ],
    );
    table.param(format!(
        "clients: {:?}, all at once, each resuming {} events behind with Last-Event-ID, on a room the server holds no stream on (as after a deploy); {} runs",
        plan.storm_clients, plan.storm_behind, plan.repeat
    ));
    table.param("caught up: the client holds the room's last event; latency from the storm's start (just before the first request) until then");
    table.param("DB statements: top-level calls in pg_stat_statements (the whole cluster, the benchmark's own excluded) from just before the storm until every client caught up");
    match &ctx.db {
        None => table.note("DB statements need --database-url."),
        Some(db) if db.statements_tracking().await.is_none() => {
            table.note("DB statements need pg_stat_statements (PG_SETTINGS=shared_preload_libraries=pg_stat_statements).")
        }
        Some(_) => {}
    }
    for &n in &plan.storm_clients {
        for _ in 0..plan.repeat {
            for server in ctx.servers.clone() {
                let row = match storm_once(ctx, &server, n).await {
                    Ok(run) => {
                        if run.lost + run.duplicated > 0 || run.failed > 0 {
                            ctx.failures.add(format!(
                                "storm {n} on {}: {} lost, {} duplicated, {} failed",
                                server.label, run.lost, run.duplicated, run.failed
                            ));
                        }
                        vec![
                            server.label.clone(),
                            count(n as f64),
                            format!("{} / {n}", run.caught_up),
                            ms(run.latency.ms(0.50)),
                            ms(run.latency.ms(0.99)),
                            ms(run.latency.max_ms()),
                            run.lost.to_string(),
                            run.duplicated.to_string(),
                            run.statements.map_or("—".into(), |s| s.to_string()),
                            run.hub_statements.map_or("—".into(), |s| s.to_string()),
                            one(run.took.as_secs_f64()),
                        ]
                    }
                    Err(err) => {
                        ctx.failures
                            .add(format!("storm {n} on {}: {err:#}", server.label));
                        vec![
                            server.label.clone(),
                            count(n as f64),
                            format!("failed: {err:#}"),
                        ]
                    }
                };
                table.row(row);
            }
        }
    }
    table.print();
}

async fn storm_once(ctx: &Ctx, server: &Server, n: usize) -> anyhow::Result<StormRun> {
    let plan = &ctx.plan;
    let api = &server.api;
    let room = ctx.room("storm");
    api.create_room(&room).await?;
    // A fresh room's log: each post takes the next event id (the baseline's ids are
    // positions, which count the same way).
    let posts = plan.storm_behind + 10;
    let mut last = 0;
    for k in 0..posts {
        // A user per post: per-user post limits never bind.
        let writer = ctx.tokens.for_user(&format!("storm-writer-{k}"))?;
        last = match api.post_message(&room, &writer, CONTENT).await {
            Ok(posted) => posted.event_id,
            // The baseline answers no event id.
            Err(_) if server.baseline => last + 1,
            Err(err) => return Err(err),
        };
    }
    if server.baseline {
        last = posts as i64;
    }
    let from = last - plan.storm_behind as i64;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        tokens.push(ctx.tokens.for_user(&format!("storm-{i}"))?);
    }
    // Every statement of the posts is counted before the window opens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tracking = match &ctx.db {
        Some(db) if db.statements_tracking().await.is_some() => {
            db.reset_statements().await?;
            true
        }
        _ => false,
    };
    let hub_before = api.hub_statements().await.ok().flatten();

    let start = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut clients = JoinSet::new();
    for token in tokens {
        let (api, room, done, mut stop) =
            (api.clone(), room.clone(), done_tx.clone(), stop_rx.clone());
        clients.spawn(async move {
            let response = match sse::open(&api, &room, &token, Some(from)).await {
                Ok(response) => response,
                Err(err) => return Err(format!("{err}")),
            };
            let mut body = response.bytes_stream();
            let mut parser = Parser::default();
            let mut ids = Vec::new();
            let mut reported = false;
            loop {
                tokio::select! {
                    _ = stop.changed() => return Ok(ids),
                    chunk = body.next() => match chunk {
                        Some(Ok(bytes)) => parser.feed(&bytes, |event| {
                            if let sse::Event::Message { id, .. } = event {
                                ids.push(id);
                            }
                        }),
                        _ => return Ok(ids),
                    },
                }
                if !reported && ids.last() == Some(&last) {
                    reported = true;
                    let _ = done.send(start.elapsed());
                }
            }
        });
    }
    drop(done_tx);
    let mut latency = Latency::default();
    let mut caught_up = 0;
    let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
    while caught_up < n {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(took)) => {
                latency.record(took);
                caught_up += 1;
            }
            _ => break,
        }
    }
    let took = start.elapsed();
    let statements = match &ctx.db {
        Some(db) if tracking => Some(db.statements_since_reset().await?),
        _ => None,
    };
    let hub_statements = match (hub_before, api.hub_statements().await.ok().flatten()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    stop.send_replace(true);
    let (mut lost, mut duplicated, mut failed) = (0u64, 0u64, 0usize);
    let expected: Vec<i64> = (from + 1..=last).collect();
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(Ok(ids)) => {
                let mut seen = HashMap::new();
                for id in &ids {
                    *seen.entry(*id).or_insert(0u32) += 1;
                }
                duplicated += seen.values().map(|&c| u64::from(c - 1)).sum::<u64>();
                lost += expected.iter().filter(|id| !seen.contains_key(id)).count() as u64;
                if ids.windows(2).any(|w| w[0] >= w[1]) {
                    failed += 1;
                }
            }
            Ok(Err(err)) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("storm: {err}");
                }
            }
            Err(_) => failed += 1,
        }
    }
    Ok(StormRun {
        caught_up,
        latency,
        lost,
        duplicated,
        failed,
        statements,
        hub_statements,
        took,
    })
}

pub async fn spread(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let servers = ctx.servers.clone();
    let mut table = Table::new(
        "Fan-out across processes",
        &[
            "processes",
            "subscribers",
            "delivered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "lost",
            "dup",
            "reordered",
            "LISTEN connections",
        ],
    );
    let mut per_process = Table::new(
        "Fan-out across processes: each process's hub",
        &["process", "idle statements/s", "busy statements/s"],
    );
    table.param(format!(
        "{} processes ({}) on one Postgres, {} subscribers each on one room; {} posts at {} per second, each through the next process in turn",
        servers.len(),
        servers.iter().map(|s| s.label.as_str()).collect::<Vec<_>>().join(", "),
        plan.spread_subscribers,
        plan.messages,
        plan.rate
    ));
    table.param("delivery = event parsed by the subscriber − just before the POST was sent (one client process, one clock)");
    per_process.param(format!(
        "statements/s: the delta of `streams.statements_total` in each process's /api/health over {:.0} s idle (subscribers connected, nothing posted), then over the posting",
        plan.idle_window.as_secs_f64()
    ));
    match spread_once(ctx, &servers).await {
        Ok((row, processes)) => {
            table.row(row);
            for p in processes {
                per_process.row(p);
            }
        }
        Err(err) => {
            ctx.failures.add(format!("spread: {err:#}"));
            table.note(format!("failed: {err:#}"));
        }
    }
    table.print();
    per_process.print();
}

async fn hub_counts(servers: &[Server]) -> Vec<Option<u64>> {
    let mut counts = Vec::new();
    for s in servers {
        counts.push(s.api.hub_statements().await.ok().flatten());
    }
    counts
}

fn rates(before: &[Option<u64>], after: &[Option<u64>], secs: f64) -> Vec<Option<f64>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Some((a.as_ref()? - b.as_ref()?) as f64 / secs))
        .collect()
}

async fn spread_once(
    ctx: &mut Ctx,
    servers: &[Server],
) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let plan = ctx.plan.clone();
    let room = ctx.room("spread");
    servers[0].api.create_room(&room).await?;
    let mut groups = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        groups.push(
            Subscribers::connect(
                &s.api,
                &room,
                &format!("spread{i}"),
                plan.spread_subscribers,
                plan.connect_concurrency,
            )
            .await?,
        );
    }
    let listen = match &ctx.db {
        Some(db) => Some(db.listen_connections().await?),
        None => None,
    };
    // Idle: the joins settle, then a window with nothing posted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = hub_counts(servers).await;
    let idle_start = Instant::now();
    tokio::time::sleep(plan.idle_window).await;
    let idle = rates(
        &before,
        &hub_counts(servers).await,
        idle_start.elapsed().as_secs_f64(),
    );

    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let before = hub_counts(servers).await;
    let busy_start = Instant::now();
    let start = tokio::time::Instant::now();
    let mut posts = JoinSet::new();
    for k in 0..plan.messages {
        tokio::time::sleep_until(start + interval * k as u32).await;
        let api = servers[k % servers.len()].api.clone();
        let token = ctx.tokens.for_user(&format!("spread-poster-{k}"))?;
        let room = room.clone();
        posts.spawn(async move {
            let sent = Instant::now();
            (
                sent,
                api.post_message(&room, &token, CONTENT)
                    .await
                    .map(|p| p.event_id),
            )
        });
    }
    let mut sent_at = HashMap::new();
    while let Some(joined) = posts.join_next().await {
        if let Ok((sent, Ok(id))) = joined {
            sent_at.insert(id, sent);
        } else {
            ctx.failures.add("spread: a post failed");
        }
    }
    let total = sent_at.len() as u64 * plan.spread_subscribers as u64;
    for g in &groups {
        g.wait_for(total / servers.len() as u64, Duration::from_secs(15))
            .await;
    }
    let busy = rates(
        &before,
        &hub_counts(servers).await,
        busy_start.elapsed().as_secs_f64(),
    );
    let mut feeds = Vec::new();
    for g in groups {
        feeds.extend(g.close().await);
    }
    let run = check(&feeds, &sent_at);
    let lost = run.lost;
    if lost + run.duplicated + run.reordered > 0 {
        ctx.failures.add(format!(
            "spread: {} lost, {} duplicated, {} reordered",
            lost, run.duplicated, run.reordered
        ));
    }
    let row = vec![
        servers.len().to_string(),
        count((plan.spread_subscribers * servers.len()) as f64),
        format!("{} / {}", run.delivered, sent_at.len() * feeds.len()),
        ms(run.latency.ms(0.50)),
        ms(run.latency.ms(0.90)),
        ms(run.latency.ms(0.99)),
        ms(run.latency.max_ms()),
        lost.to_string(),
        run.duplicated.to_string(),
        run.reordered.to_string(),
        listen.map_or("—".into(), |l| l.to_string()),
    ];
    let two = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
    let processes = servers
        .iter()
        .zip(idle.into_iter().zip(busy))
        .map(|(s, (i, b))| vec![s.api.base.clone(), two(i), two(b)])
        .collect();
    Ok((row, processes))
}

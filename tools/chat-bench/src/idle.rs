//! Idle cost: with N subscribers connected and nothing posted, the database transactions
//! per second (`pg_stat_database`, the benchmark's own excluded) and the statements the
//! server's hub reports in `/api/health`.

use std::time::Instant;

use super::fanout::short;
use super::report::{Table, count, median_by, one};
use super::sse::Subscribers;
use super::{Ctx, Server, process};

pub struct Run {
    db_xacts_per_sec: Option<f64>,
    hub_statements_per_sec: Option<f64>,
    rss_mib: Option<f64>,
}

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Idle cost",
        &[
            "server",
            "subscribers",
            "run",
            "DB transactions/s",
            "hub statements/s",
            "RSS MiB",
        ],
    );
    table.param(format!(
        "subscribers: {:?} on one room, nothing posted; {:.0} s settle, then a {:.0} s window",
        plan.idle_subscribers,
        plan.idle_settle.as_secs_f64(),
        plan.idle_window.as_secs_f64()
    ));
    table.param("DB transactions/s: xact_commit + xact_rollback of the database in pg_stat_database over the window, minus the benchmark's own read");
    table.param("hub statements/s: the delta of `streams.statements_total` in /api/health (this process's hub only)");
    if ctx.db.is_none() {
        table.note("DB transactions/s needs --database-url (pg_stat_database); only the hub's own count is shown.");
    }
    for &n in &plan.idle_subscribers {
        let mut rows: Vec<Vec<Vec<String>>> = vec![Vec::new(); ctx.servers.len()];
        let mut runs: Vec<Vec<Run>> = (0..ctx.servers.len()).map(|_| Vec::new()).collect();
        for rep in 0..plan.repeat {
            for (i, server) in ctx.servers.iter().enumerate() {
                let room = ctx.room("idle");
                let label = vec![server.label.clone(), count(n as f64), (rep + 1).to_string()];
                match once(ctx, server, &room, n).await {
                    Ok(run) => {
                        let mut row = label;
                        row.extend([
                            run.db_xacts_per_sec.map_or("—".into(), two),
                            run.hub_statements_per_sec.map_or("—".into(), two),
                            run.rss_mib.map_or("—".into(), one),
                        ]);
                        rows[i].push(row);
                        runs[i].push(run);
                    }
                    Err(err) => {
                        ctx.failures
                            .add(format!("idle {n} on {}: {err:#}", server.label));
                        let mut row = label;
                        row.push(format!("failed: {}", short(&format!("{err:#}"))));
                        rows[i].push(row);
                    }
                }
            }
        }
        for (i, server) in ctx.servers.iter().enumerate() {
            for row in rows[i].drain(..) {
                table.row(row);
            }
            let runs = &runs[i];
            if runs.len() > 1 {
                let med = |f: fn(&Run) -> Option<f64>| {
                    if runs.iter().all(|r| f(r).is_some()) {
                        format!("**{}**", two(median_by(runs, |r| f(r).unwrap_or(0.0))))
                    } else {
                        "—".into()
                    }
                };
                table.row(vec![
                    format!("**{}**", server.label),
                    format!("**{}**", count(n as f64)),
                    "**median**".into(),
                    med(|r| r.db_xacts_per_sec),
                    med(|r| r.hub_statements_per_sec),
                    med(|r| r.rss_mib),
                ]);
            }
        }
    }
    table.print();
}

async fn once(ctx: &Ctx, server: &Server, room: &str, n: usize) -> anyhow::Result<Run> {
    let api = &server.api;
    api.create_room(room).await?;
    let subscribers =
        Subscribers::connect(api, room, "idle", n, ctx.plan.connect_concurrency).await?;
    // Health itself runs `SELECT 1`: read it before the settle so that its transaction is
    // published before the window opens.
    let hub_start = (api.hub_statements().await?, Instant::now());
    tokio::time::sleep(ctx.plan.idle_settle).await;
    let db_xacts_per_sec = match &ctx.db {
        Some(db) => {
            let window = db.open_window().await?;
            tokio::time::sleep(ctx.plan.idle_window).await;
            Some(db.close_window(window).await?)
        }
        None => {
            tokio::time::sleep(ctx.plan.idle_window).await;
            None
        }
    };
    let hub_end = api.hub_statements().await?;
    let hub_statements_per_sec = match (hub_start.0, hub_end) {
        (Some(a), Some(b)) => {
            Some(b.saturating_sub(a) as f64 / hub_start.1.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let rss_mib = server
        .pid
        .and_then(|pid| process::rss_kib(pid).ok())
        .map(|kib| kib as f64 / 1024.0);
    let feeds = subscribers.close().await;
    let errors: usize = feeds.iter().map(|f| f.errors.len()).sum();
    if errors > 0 {
        anyhow::bail!("{errors} stream errors while idle");
    }
    Ok(Run {
        db_xacts_per_sec,
        hub_statements_per_sec,
        rss_mib,
    })
}

fn two(v: f64) -> String {
    format!("{v:.2}")
}

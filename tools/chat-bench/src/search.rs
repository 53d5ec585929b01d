//! Search: `GET /api/rooms/{room}/search` over the deep room (seeded as the deep scenario
//! seeds it: every message is `Seeded message <seq>: the quick brown fox …`), for a word in
//! one message, a word in every message, a phrase in every message, a word in none, and a
//! query whose only word is in every message but excluded by `-word` (no match, the worst
//! case: every candidate is tested); with `EXPLAIN (ANALYZE, BUFFERS)` of each.

use std::time::Instant;

use rand::Rng;

use super::deep::{READER_EMAIL, room_name, seed};
use super::fanout::short;
use super::report::{Latency, Table, count, median_by, ms};
use super::{Ctx, Server};

struct Case {
    name: &'static str,
    /// The query; `{n}` is replaced by a random seq of the room.
    q: &'static str,
    /// Whether a page is full (`limit` matches), or holds this many.
    full: bool,
    expect: usize,
}

const CASES: [Case; 5] = [
    Case {
        name: "rare word (1 match)",
        q: "{n}",
        full: false,
        expect: 1,
    },
    Case {
        name: "common word (every message)",
        q: "fox",
        full: true,
        expect: 0,
    },
    Case {
        name: "phrase (every message)",
        q: "\"brown fox\"",
        full: true,
        expect: 0,
    },
    Case {
        name: "word in none",
        q: "zebra",
        full: false,
        expect: 0,
    },
    Case {
        name: "fox -dog (none; every row tested)",
        q: "fox -dog",
        full: false,
        expect: 0,
    },
];

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let Some(db) = ctx.db.as_ref() else {
        let mut table = Table::new("Search", &["skipped"]);
        table.note("Skipped: seeding the deep room needs --database-url.");
        table.print();
        return;
    };
    let room = room_name(&plan);
    let seeding = match seed(ctx, db, &room).await {
        Ok(text) => text,
        Err(err) => {
            ctx.failures.add(format!("search: seeding failed: {err:#}"));
            return;
        }
    };
    let limit = plan.deep_limit;
    let mut table = Table::new(
        "Search: `GET /api/rooms/{room}/search`",
        &[
            "server",
            "query",
            "run",
            "requests",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "DB execution ms (EXPLAIN)",
        ],
    );
    table.param(format!(
        "room `{room}`: {} messages, each `Seeded message <seq>: the quick brown fox jumps over the lazy dog, then checks the chat again.`; {seeding}",
        count(plan.deep_messages as f64)
    ));
    table.param(format!(
        "{} sequential requests per query, `limit={limit}`, `SEARCH_LANGUAGE=simple`; the rare word is a random seq",
        plan.deep_requests
    ));
    let mut plans = Vec::new();
    for case in &CASES {
        let q = case.q.replace("{n}", &(plan.deep_messages / 2).to_string());
        match db.explain_search(&room, &q, limit, READER_EMAIL).await {
            Ok(text) => plans.push((case.name, q, text)),
            Err(err) => ctx.failures.add(format!("search: EXPLAIN failed: {err:#}")),
        }
    }
    let exec_ms = |name: &str| {
        plans
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, _, text)| super::pg::execution_ms(text))
            .map_or("—".into(), ms)
    };
    for server in &ctx.servers {
        for case in &CASES {
            let mut runs: Vec<Latency> = Vec::new();
            for rep in 0..plan.repeat {
                let mut row = vec![
                    server.label.clone(),
                    case.name.into(),
                    (rep + 1).to_string(),
                ];
                match once(ctx, server, &room, case).await {
                    Ok(latency) => {
                        row.extend([
                            latency.count().to_string(),
                            ms(latency.ms(0.5)),
                            ms(latency.ms(0.9)),
                            ms(latency.ms(0.99)),
                            ms(latency.max_ms()),
                            exec_ms(case.name),
                        ]);
                        runs.push(latency);
                    }
                    Err(err) => {
                        ctx.failures
                            .add(format!("search {} on {}: {err:#}", case.name, server.label));
                        row.push(format!("failed: {}", short(&format!("{err:#}"))));
                    }
                }
                table.row(row);
            }
            if runs.len() > 1 {
                table.row(vec![
                    format!("**{}**", server.label),
                    format!("**{}**", case.name),
                    "**median**".into(),
                    runs.iter().map(Latency::count).sum::<u64>().to_string(),
                    format!("**{}**", ms(median_by(&runs, |l| l.ms(0.5)))),
                    ms(median_by(&runs, |l| l.ms(0.9))),
                    format!("**{}**", ms(median_by(&runs, |l| l.ms(0.99)))),
                    ms(median_by(&runs, Latency::max_ms)),
                    exec_ms(case.name),
                ]);
            }
        }
    }
    table.print();
    for (name, q, text) in plans {
        println!("\n`EXPLAIN (ANALYZE, BUFFERS)`, {name} (`q={q}`):\n");
        println!("```\n{text}\n```");
    }
}

async fn once(ctx: &Ctx, server: &Server, room: &str, case: &Case) -> anyhow::Result<Latency> {
    let plan = &ctx.plan;
    let token = ctx.tokens.for_user("reader")?;
    let limit = plan.deep_limit as usize;
    let mut latency = Latency::default();
    for _ in 0..plan.deep_requests {
        let n = rand::rng().random_range(1..=plan.deep_messages);
        let q = case.q.replace("{n}", &n.to_string());
        let started = Instant::now();
        let (found, _) = server
            .api
            .search(room, &token, &q, &format!("limit={limit}"))
            .await?;
        let elapsed = started.elapsed();
        let expected = if case.full { limit } else { case.expect };
        if found != expected {
            anyhow::bail!("`q={q}` found {found} messages, not {expected}");
        }
        latency.record(elapsed);
    }
    Ok(latency)
}

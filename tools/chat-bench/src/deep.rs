//! Deep room: a room of a million messages (10 % with a file, 20 % with reactions, 5 %
//! replies, read marks), seeded straight into
//! Postgres with `generate_series`; list latency for the newest page, a page deep in
//! history (`before`) and catch-up (`after`), with and without subscribers connected, and
//! `EXPLAIN (ANALYZE, BUFFERS)` of each query.

use std::time::Instant;

use rand::Rng;

use super::fanout::short;
use super::pg::{Db, ListKind, Seed, execution_ms};
use super::report::{Latency, Table, count, median_by, ms};
use super::sse::Subscribers;
use super::{Ctx, Server};

/// Who lists the room: `Tokens::for_user("reader")`.
pub(super) const READER_EMAIL: &str = "bench-reader@bench.example";

struct Case {
    name: String,
    kind: ListKind,
    with_subscribers: bool,
}

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let Some(db) = ctx.db.as_ref() else {
        let mut table = Table::new("Deep room: list latency", &["skipped"]);
        table.note("Skipped: seeding the deep room needs --database-url.");
        table.print();
        return;
    };
    let room = room_name(&plan);
    let seeding = match seed(ctx, db, &room).await {
        Ok(text) => text,
        Err(err) => {
            ctx.failures
                .add(format!("deep room: seeding failed: {err:#}"));
            return;
        }
    };
    let limit = plan.deep_limit;
    let total = plan.deep_messages;
    let before_range = (limit + 1, (total / 10).max(limit + 2));
    let after_range = (total / 2, total - limit);
    let mut table = Table::new(
        "Deep room: list latency",
        &[
            "server",
            "page",
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
        "room `{room}`: {} messages, {} % with one file, {} % with reactions, {} % replies; {seeding}",
        count(total as f64),
        plan.deep_files_percent,
        plan.deep_reactions_percent,
        plan.deep_replies_percent
    ));
    match db.conversation_counts(&room).await {
        Ok((messages, reacted, reactions, replies)) => table.param(format!(
            "holds {} messages, {} with reactions ({} `chat_message_reactions` rows), {} replies; listed as `{READER_EMAIL}` (their read mark 1,000 behind, their reactions on every other reacted message)",
            count(messages as f64),
            count(reacted as f64),
            count(reactions as f64),
            count(replies as f64)
        )),
        Err(err) => ctx
            .failures
            .add(format!("deep room: counting failed: {err:#}")),
    }
    table.param(format!(
        "{} sequential requests per page kind, `limit={limit}`; `before` uniform in {:?} (the oldest tenth), `after` uniform in {:?}",
        plan.deep_requests, before_range, after_range
    ));
    let mut cases = vec![
        Case {
            name: "newest".into(),
            kind: ListKind::Newest,
            with_subscribers: false,
        },
        Case {
            name: "before (deep)".into(),
            kind: ListKind::Before,
            with_subscribers: false,
        },
        Case {
            name: "after (catch-up)".into(),
            kind: ListKind::After,
            with_subscribers: false,
        },
    ];
    if plan.deep_subscribers > 0 {
        table.param(format!(
            "\"with subscribers\": {} idle streams open on the same room while listing",
            count(plan.deep_subscribers as f64)
        ));
        cases.push(Case {
            name: format!(
                "newest, {} subscribers",
                count(plan.deep_subscribers as f64)
            ),
            kind: ListKind::Newest,
            with_subscribers: true,
        });
    }

    let mut plans = Vec::new();
    for kind in [ListKind::Newest, ListKind::Before, ListKind::After] {
        let cursor = match kind {
            ListKind::Newest => 0,
            ListKind::Before => (before_range.0 + before_range.1) / 2,
            ListKind::After => (after_range.0 + after_range.1) / 2,
        };
        match db
            .explain_list(kind, &room, cursor, limit, READER_EMAIL)
            .await
        {
            Ok(text) => plans.push((kind, cursor, text)),
            Err(err) => ctx
                .failures
                .add(format!("deep room: EXPLAIN failed: {err:#}")),
        }
    }
    let exec_ms = |kind: ListKind| {
        plans
            .iter()
            .find(|(k, _, _)| *k == kind)
            .and_then(|(_, _, text)| execution_ms(text))
            .map_or("—".into(), ms)
    };

    for server in &ctx.servers {
        for case in &cases {
            let mut runs: Vec<Latency> = Vec::new();
            for rep in 0..plan.repeat {
                let result = once(ctx, server, &room, case, before_range, after_range).await;
                let mut row = vec![
                    server.label.clone(),
                    case.name.clone(),
                    (rep + 1).to_string(),
                ];
                match result {
                    Ok(latency) => {
                        row.extend([
                            latency.count().to_string(),
                            ms(latency.ms(0.5)),
                            ms(latency.ms(0.9)),
                            ms(latency.ms(0.99)),
                            ms(latency.max_ms()),
                            exec_ms(case.kind),
                        ]);
                        runs.push(latency);
                    }
                    Err(err) => {
                        ctx.failures.add(format!(
                            "deep room {} on {}: {err:#}",
                            case.name, server.label
                        ));
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
                    exec_ms(case.kind),
                ]);
            }
        }
    }
    table.print();
    for (kind, cursor, text) in plans {
        println!(
            "\n`EXPLAIN (ANALYZE, BUFFERS)`, {kind:?} page (cursor {cursor}, limit {}):\n",
            limit + 1
        );
        println!("```\n{text}\n```");
    }
}

/// The deep room's name. It carries the seeding's shape, so a room seeded otherwise is
/// never reused.
pub(super) fn room_name(plan: &super::args::Plan) -> String {
    format!(
        "bench-deep-{}-f{}-r{}-q{}",
        plan.deep_messages,
        plan.deep_files_percent,
        plan.deep_reactions_percent,
        plan.deep_replies_percent
    )
}

/// Seeds the room unless a complete one is there; a note on what was done.
pub(super) async fn seed(ctx: &Ctx, db: &Db, room: &str) -> anyhow::Result<String> {
    let plan = &ctx.plan;
    if db.last_seq(room).await? == Some(plan.deep_messages)
        && db.message_count(room).await? == plan.deep_messages
    {
        return Ok("seeded by an earlier run".into());
    }
    db.drop_room(room).await?;
    let first = ctx
        .servers
        .first()
        .map(|s| &s.api)
        .ok_or_else(|| anyhow::anyhow!("no server"))?;
    first.create_room(room).await?;
    eprintln!(
        "deep room: seeding {} messages into {room} ...",
        plan.deep_messages
    );
    let seed = Seed {
        files_percent: plan.deep_files_percent,
        reactions_percent: plan.deep_reactions_percent,
        replies_percent: plan.deep_replies_percent,
        viewer: READER_EMAIL.into(),
    };
    let took = db.seed_room(room, plan.deep_messages, &seed).await?;
    Ok(format!(
        "seeded with generate_series in {:.1} s (incl. VACUUM ANALYZE)",
        took.as_secs_f64()
    ))
}

async fn once(
    ctx: &Ctx,
    server: &Server,
    room: &str,
    case: &Case,
    before_range: (i64, i64),
    after_range: (i64, i64),
) -> anyhow::Result<Latency> {
    let plan = &ctx.plan;
    let api = &server.api;
    let token = ctx.tokens.for_user("reader")?;
    let subscribers = if case.with_subscribers {
        let subs = Subscribers::connect(
            api,
            room,
            "deep",
            plan.deep_subscribers,
            plan.connect_concurrency,
        )
        .await?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        Some(subs)
    } else {
        None
    };
    let limit = plan.deep_limit;
    let mut latency = Latency::default();
    let mut failure = None;
    for _ in 0..plan.deep_requests {
        let query = {
            let mut rng = rand::rng();
            match case.kind {
                ListKind::Newest => format!("limit={limit}"),
                ListKind::Before => format!(
                    "limit={limit}&before={}",
                    rng.random_range(before_range.0..=before_range.1)
                ),
                ListKind::After => format!(
                    "limit={limit}&after={}",
                    rng.random_range(after_range.0..=after_range.1)
                ),
            }
        };
        let started = Instant::now();
        match api.list_messages(room, &token, &query).await {
            Ok(n) if n as i64 == limit => latency.record(started.elapsed()),
            Ok(n) => {
                failure = Some(anyhow::anyhow!(
                    "a page of {n} messages, not {limit} ({query})"
                ));
                break;
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    if let Some(subs) = subscribers {
        subs.close().await;
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(latency),
    }
}

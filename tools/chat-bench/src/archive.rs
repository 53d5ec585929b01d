//! History tiered to the bucket: a fresh room seeded straight into Postgres, the server's
//! `/api/cron/archive` called until it says it is done, then the size of the hot tables
//! before and after (`VACUUM FULL`), and list latency for the newest page (hot), pages deep
//! in archived history with a cold per-process segment cache (a different segment each
//! time) and a warm one (the same page again).

use std::time::{Duration, Instant};

use rand::Rng;

use super::Ctx;
use super::pg::Seed;
use super::report::{Latency, Table, count, ms};

/// Who lists the room: `Tokens::for_user("reader")`.
const READER: &str = "bench-reader@bench.example";
const LIMIT: i64 = 50;
const REQUESTS: usize = 200;

pub async fn run(ctx: &mut Ctx, messages: i64, catch_up: i64, secret: Option<&str>) {
    let mut table = Table::new(
        "History tiers: archived pages",
        &["page", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"],
    );
    let (Some(db), Some(secret)) = (ctx.db.as_ref(), secret) else {
        table.note("Skipped: needs --database-url and --cron-secret.");
        table.print();
        return;
    };
    let Some(server) = ctx.servers.first().cloned() else {
        return;
    };
    let room = ctx.room("archive");
    let result: anyhow::Result<()> = async {
        db.ensure_room(&room).await?;
        let seeded = db
            .seed_room(
                &room,
                messages,
                &Seed {
                    files_percent: 10,
                    reactions_percent: 20,
                    replies_percent: 5,
                    viewer: READER.to_owned(),
                },
            )
            .await?;
        let before = db.hot_bytes().await?;
        let started = Instant::now();
        let (mut archived, mut calls) = (0i64, 0);
        loop {
            let response = server
                .api
                .http
                .get(server.api.url("/api/cron/archive"))
                .bearer_auth(secret)
                .timeout(Duration::from_secs(120))
                .send()
                .await?;
            let body = super::client::json_or_error(response).await?;
            calls += 1;
            archived += body["archived"].as_i64().unwrap_or(0);
            if body["more"] != true {
                break;
            }
        }
        let took = started.elapsed();
        let hot = db.message_count(&room).await?;
        let (segments, segment_bytes) = db.segments_of(&room).await?;
        let after = db.hot_bytes_after_vacuum_full().await?;
        table.param(format!(
            "room `{room}`: {} messages seeded in {:.1} s (10 % with a file, 20 % with reactions, 5 % replies); page size {LIMIT}, listed as `{READER}`",
            count(messages as f64),
            seeded.as_secs_f64()
        ));
        table.param(format!(
            "the cron moved {} messages in {calls} calls, {:.1} s ({} messages/s) into {segments} segments of {} bytes in all ({} bytes per message); {} stay hot",
            count(archived as f64),
            took.as_secs_f64(),
            count(archived as f64 / took.as_secs_f64().max(0.001)),
            count(segment_bytes as f64),
            count(segment_bytes as f64 / archived.max(1) as f64),
            count(hot as f64)
        ));
        table.param(format!(
            "hot tables (chat_messages, chat_message_files, chat_message_reactions, with indexes): {} MB before, {} MB after the move and VACUUM FULL (all rooms of the database)",
            one_mb(before),
            one_mb(after)
        ));
        let token = ctx.tokens.for_user("reader")?;
        let archived_top = messages - hot;
        let mut rng = rand::rng();
        let mut cases: Vec<(String, Vec<String>)> = vec![(
            "newest (hot)".into(),
            (0..REQUESTS).map(|_| format!("limit={LIMIT}")).collect(),
        )];
        if archived_top > 2 * LIMIT {
            let cold = (0..REQUESTS)
                .map(|_| format!("limit={LIMIT}&before={}", rng.random_range(LIMIT + 1..archived_top)))
                .collect();
            let cursor = archived_top / 2;
            let warm = (0..REQUESTS)
                .map(|_| format!("limit={LIMIT}&before={cursor}"))
                .collect();
            let boundary = (0..REQUESTS)
                .map(|_| format!("limit={LIMIT}&before={}", archived_top + LIMIT / 2))
                .collect();
            cases.push(("archived, random cursor (mostly cold cache: one S3 GET + decode)".into(), cold));
            cases.push(("archived, same page again (warm cache)".into(), warm));
            cases.push(("across the boundary (hot + archived, warm)".into(), boundary));
        }
        for (name, queries) in cases {
            let mut latency = Latency::default();
            for query in &queries {
                let at = Instant::now();
                let n = server.api.list_messages(&room, &token, query).await?;
                latency.record(at.elapsed());
                anyhow::ensure!(n as i64 == LIMIT, "{name}: a page of {n}");
            }
            table.row(vec![
                name,
                count(latency.count() as f64),
                ms(latency.ms(0.50)),
                ms(latency.ms(0.90)),
                ms(latency.ms(0.99)),
                ms(latency.max_ms()),
            ]);
        }
        if catch_up > 0 {
            // The seed gives message `g` event `g`: the room's newest event is `messages`.
            let latency = catch_ups(&server, &room, &token, messages - catch_up, messages).await?;
            table.row(vec![
                format!(
                    "stream catch-up of {} events (`Last-Event-ID`), until the newest",
                    count(catch_up as f64)
                ),
                count(latency.count() as f64),
                ms(latency.ms(0.50)),
                ms(latency.ms(0.90)),
                ms(latency.ms(0.99)),
                ms(latency.max_ms()),
            ]);
        }
        Ok(())
    }
    .await;
    if let Err(err) = result {
        ctx.failures.add(format!("archive: {err:#}"));
    }
    table.print();
}

fn one_mb(bytes: i64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

/// Streams resuming after event `from`, one after another, each timed from its request until
/// it has sent event `last`; every event in between must come once, in order (a `reset`
/// means the server's `STREAM_MAX_BACKLOG` is below the distance).
async fn catch_ups(
    server: &super::Server,
    room: &str,
    token: &str,
    from: i64,
    last: i64,
) -> anyhow::Result<Latency> {
    use futures_util::StreamExt;

    const RUNS: usize = 20;
    let mut latency = Latency::default();
    for _ in 0..RUNS {
        let at = Instant::now();
        let response = super::sse::open(&server.api, room, token, Some(from)).await?;
        let mut body = response.bytes_stream();
        let mut parser = super::sse::Parser::default();
        let (mut next, mut reset) = (from + 1, false);
        let mut out_of_order = None;
        while next <= last && !reset && out_of_order.is_none() {
            let chunk = tokio::time::timeout(Duration::from_secs(60), body.next())
                .await
                .map_err(|_| anyhow::anyhow!("catch-up: no event for 60 s at {next}"))?;
            let Some(chunk) = chunk else {
                anyhow::bail!("catch-up: the stream ended at {next} of {last}");
            };
            parser.feed(&chunk?, |event| match event {
                super::sse::Event::Message { id, .. } if id == next => next += 1,
                super::sse::Event::Message { id, .. } => {
                    out_of_order.get_or_insert(id);
                }
                super::sse::Event::Reset => reset = true,
            });
        }
        anyhow::ensure!(
            !reset,
            "catch-up: reset (the server's STREAM_MAX_BACKLOG is below {})",
            last - from
        );
        if let Some(id) = out_of_order {
            anyhow::bail!("catch-up: event {id} where {next} was due");
        }
        latency.record(at.elapsed());
    }
    Ok(latency)
}

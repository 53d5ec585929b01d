//! Room list: `GET /api/rooms` for a user in many private rooms (default 200), each with
//! messages, tombstones and the user's read mark somewhere in it, seeded straight into
//! Postgres; list p50/p99, every room's `unread` checked against a count of its messages,
//! and `EXPLAIN (ANALYZE, BUFFERS)` of the query.

use std::collections::HashMap;
use std::time::Instant;

use super::fanout::short;
use super::pg::execution_ms;
use super::report::{Latency, Table, count, median_by, ms};
use super::{Ctx, Server};

/// Who lists: `Tokens::for_user("lister")`.
const LISTER: &str = "lister";
const LISTER_EMAIL: &str = "bench-lister@bench.example";

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let Some(db) = ctx.db.as_ref() else {
        let mut table = Table::new("Room list: latency", &["skipped"]);
        table.note("Skipped: seeding the rooms needs --database-url.");
        table.print();
        return;
    };
    let prefix = format!(
        "bench-rooms-{}x{}-d{}",
        plan.list_rooms, plan.list_room_messages, plan.list_deleted_percent
    );
    let seeding = match db
        .seed_list_rooms(
            &prefix,
            plan.list_rooms as i64,
            plan.list_room_messages,
            plan.list_deleted_percent,
            LISTER_EMAIL,
        )
        .await
    {
        Ok(Some(took)) => format!(
            "seeded with generate_series in {:.1} s (incl. VACUUM ANALYZE)",
            took.as_secs_f64()
        ),
        Ok(None) => "seeded by an earlier run".into(),
        Err(err) => {
            ctx.failures
                .add(format!("room list: seeding failed: {err:#}"));
            return;
        }
    };
    let expected: HashMap<String, i64> = match db.unread_by_scan(&prefix, LISTER_EMAIL).await {
        Ok(rows) => rows.into_iter().collect(),
        Err(err) => {
            ctx.failures
                .add(format!("room list: counting unread failed: {err:#}"));
            return;
        }
    };
    let mut table = Table::new(
        "Room list: latency",
        &[
            "server",
            "run",
            "rooms listed",
            "requests",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "DB execution ms (EXPLAIN)",
        ],
    );
    table.param(format!(
        "`{LISTER_EMAIL}` is a member of {} private rooms `{prefix}-*`, {} messages each by 20 others, {} % tombstones; their read mark in room i is (i mod 10) tenths in, none in every 25th room; {seeding}",
        plan.list_rooms,
        count(plan.list_room_messages as f64),
        plan.list_deleted_percent
    ));
    let total: i64 = expected.values().sum();
    table.param(format!(
        "{} sequential `GET /api/rooms` per run; unread over the seeded rooms: {} in all, every room's `unread` checked against a scan of its messages",
        plan.list_requests,
        count(total as f64)
    ));
    let explain = match db.explain_list_rooms(LISTER_EMAIL, 1000).await {
        Ok(text) => Some(text),
        Err(err) => {
            ctx.failures
                .add(format!("room list: EXPLAIN failed: {err:#}"));
            None
        }
    };
    let exec = explain
        .as_deref()
        .and_then(execution_ms)
        .map_or("—".into(), ms);

    for server in &ctx.servers {
        let mut runs: Vec<Latency> = Vec::new();
        let mut listed = 0;
        for rep in 0..plan.repeat {
            let mut row = vec![server.label.clone(), (rep + 1).to_string()];
            match once(ctx, server, &expected).await {
                Ok((latency, rooms)) => {
                    listed = rooms;
                    row.extend([
                        rooms.to_string(),
                        latency.count().to_string(),
                        ms(latency.ms(0.5)),
                        ms(latency.ms(0.9)),
                        ms(latency.ms(0.99)),
                        ms(latency.max_ms()),
                        exec.clone(),
                    ]);
                    runs.push(latency);
                }
                Err(err) => {
                    ctx.failures
                        .add(format!("room list on {}: {err:#}", server.label));
                    row.push(format!("failed: {}", short(&format!("{err:#}"))));
                }
            }
            table.row(row);
        }
        if runs.len() > 1 {
            table.row(vec![
                format!("**{}**", server.label),
                "**median**".into(),
                listed.to_string(),
                runs.iter().map(Latency::count).sum::<u64>().to_string(),
                format!("**{}**", ms(median_by(&runs, |l| l.ms(0.5)))),
                ms(median_by(&runs, |l| l.ms(0.9))),
                format!("**{}**", ms(median_by(&runs, |l| l.ms(0.99)))),
                ms(median_by(&runs, Latency::max_ms)),
                exec.clone(),
            ]);
        }
    }
    table.print();
    if let Some(text) = explain {
        println!("\n`EXPLAIN (ANALYZE, BUFFERS)` of the room list (`LIMIT 1000`):\n");
        println!("```\n{text}\n```");
    }
}

/// One run: the unread counts checked once, then the timed requests; the latency and the
/// number of rooms listed.
async fn once(
    ctx: &Ctx,
    server: &Server,
    expected: &HashMap<String, i64>,
) -> anyhow::Result<(Latency, usize)> {
    let token = ctx.tokens.for_user(LISTER)?;
    let rooms = server.api.list_rooms(&token).await?;
    check_unread(&rooms, expected)?;
    let mut latency = Latency::default();
    for _ in 0..ctx.plan.list_requests {
        let started = Instant::now();
        let listed = server.api.list_rooms(&token).await?;
        latency.record(started.elapsed());
        anyhow::ensure!(
            listed.len() == rooms.len(),
            "{} rooms listed, then {}",
            rooms.len(),
            listed.len()
        );
    }
    Ok((latency, rooms.len()))
}

/// Every seeded room is listed, with the unread count a scan gives.
fn check_unread(
    rooms: &[serde_json::Value],
    expected: &HashMap<String, i64>,
) -> anyhow::Result<()> {
    let mut seen = 0;
    for room in rooms {
        let Some(id) = room["id"].as_str() else {
            continue;
        };
        if let Some(&want) = expected.get(id) {
            seen += 1;
            let got = room["unread"].as_i64();
            anyhow::ensure!(
                got == Some(want),
                "room {id}: unread {got:?}, a scan counts {want}"
            );
        }
    }
    anyhow::ensure!(
        seen == expected.len(),
        "{seen} of the {} seeded rooms listed",
        expected.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_or_missing_unread_count_fails() {
        let expected: HashMap<String, i64> = [("a".into(), 3), ("b".into(), 0)].into();
        let good = vec![
            serde_json::json!({"id": "a", "unread": 3}),
            serde_json::json!({"id": "b", "unread": 0}),
            serde_json::json!({"id": "other", "unread": 9}),
        ];
        assert!(check_unread(&good, &expected).is_ok());
        let wrong = vec![
            serde_json::json!({"id": "a", "unread": 2}),
            serde_json::json!({"id": "b", "unread": 0}),
        ];
        assert!(check_unread(&wrong, &expected).is_err());
        assert!(check_unread(&good[..1], &expected).is_err());
    }
}

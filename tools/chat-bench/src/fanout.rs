//! Fan-out: N subscribers on one room, M changes at R per second: new messages (POSTs), or
//! edits (PATCHes of M messages posted before the subscribers joined, each by its own
//! author). Delivery latency runs from just before each request is sent to the moment each
//! subscriber has parsed the event, on one clock; every subscriber's events are checked by
//! event id for loss, duplication and order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::report::{Latency, Table, count, median_by, ms, one};
use super::sse::{Feed, Subscribers};
use super::{Ctx, Server, process};

/// How long the last message may take to reach everyone before the rest counts as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// ~100 characters, like a chat line.
const CONTENT: &str =
    "Fan-out benchmark message: the quick brown fox jumps over the lazy dog, then checks the chat.";
/// The same length, edited.
const EDITED: &str =
    "Fan-out benchmark edited!: the quick brown fox jumps over the lazy dog, then checks the chat.";

/// What each timed request changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A new message: `event: message`.
    Post,
    /// An edit of an existing message: `event: message.updated`.
    Edit,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Self::Post => "new message",
            Self::Edit => "edit",
        }
    }
}

pub struct Run {
    pub(crate) delivered: u64,
    pub(crate) expected: u64,
    pub(crate) latency: Latency,
    pub(crate) post_latency: Latency,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) reconnects: u64,
    pub(crate) errors: u64,
    pub(crate) connect: Duration,
    pub(crate) rss_mib: Option<f64>,
}

pub async fn run(ctx: &mut Ctx) {
    let plan = ctx.plan.clone();
    let mut table = Table::new(
        "Fan-out: delivery latency",
        &[
            "server",
            "change",
            "subscribers",
            "run",
            "delivered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "lost",
            "dup",
            "reordered",
            "reconnects",
            "post p50 ms",
            "connect s",
            "RSS MiB",
        ],
    );
    table.param(format!(
        "subscribers: {:?} on one room; {} changes at {} per second per run: new messages, then (a fresh room) edits of messages posted before the subscribers joined",
        plan.fanout_subscribers, plan.messages, plan.rate
    ));
    table.param("delivery = event parsed by the subscriber − just before the POST (or PATCH) was sent (one process, one clock)");
    table.param("RSS: the server process after delivery, with the subscribers still connected (given --server-pid)");
    for (n, change) in plan
        .fanout_subscribers
        .iter()
        .flat_map(|&n| [(n, Change::Post), (n, Change::Edit)])
    {
        let mut rows: Vec<Vec<Vec<String>>> = vec![Vec::new(); ctx.servers.len()];
        let mut runs: Vec<Vec<Run>> = (0..ctx.servers.len()).map(|_| Vec::new()).collect();
        let mut refused = vec![false; ctx.servers.len()];
        for rep in 0..plan.repeat {
            for (i, server) in ctx.servers.iter().enumerate() {
                if refused[i] {
                    continue;
                }
                let room = ctx.room("fanout");
                let what = change.name();
                match once(ctx, server, &room, n, change).await {
                    Ok(run) => {
                        if run.lost + run.duplicated + run.reordered + run.errors > 0 {
                            ctx.failures.add(format!(
                                "fan-out ({what}) {n} on {}: {} lost, {} duplicated, {} reordered, {} errors",
                                server.label, run.lost, run.duplicated, run.reordered, run.errors
                            ));
                        }
                        rows[i].push(cells(&server.label, what, n, &(rep + 1).to_string(), &run));
                        runs[i].push(run);
                    }
                    Err(err) => {
                        ctx.failures
                            .add(format!("fan-out ({what}) {n} on {}: {err:#}", server.label));
                        let mut row = vec![
                            server.label.clone(),
                            what.to_owned(),
                            count(n as f64),
                            (rep + 1).to_string(),
                        ];
                        row.push(format!("failed: {}", short(&format!("{err:#}"))));
                        rows[i].push(row);
                        refused[i] = true;
                    }
                }
            }
        }
        for (i, server) in ctx.servers.iter().enumerate() {
            for row in rows[i].drain(..) {
                table.row(row);
            }
            if runs[i].len() > 1 {
                table.row(median_cells(&server.label, change.name(), n, &runs[i]));
            }
        }
    }
    table.print();
}

async fn once(
    ctx: &Ctx,
    server: &Server,
    room: &str,
    n: usize,
    change: Change,
) -> anyhow::Result<Run> {
    let plan = &ctx.plan;
    let api = &server.api;
    api.create_room(room).await?;
    // The messages the edits change, one author each (per-user edit limits never bind),
    // posted before anyone subscribes: the subscribers see only the edits.
    let mut originals = Vec::new();
    if change == Change::Edit {
        for k in 0..plan.messages {
            let token = ctx.tokens.for_user(&format!("poster-{k}"))?;
            originals.push(api.post_message(room, &token, CONTENT).await?.id);
        }
    }
    let subscribers = Subscribers::connect(api, room, "sub", n, plan.connect_concurrency).await?;
    let connect = subscribers.connect_time;
    // Let the joins' catch-up reads finish before timing anything.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let start = tokio::time::Instant::now();
    let mut posts = JoinSet::new();
    for k in 0..plan.messages {
        tokio::time::sleep_until(start + interval * k as u32).await;
        let api = api.clone();
        // A user per message, as in a busy room: per-user post limits never bind.
        let token = ctx.tokens.for_user(&format!("poster-{k}"))?;
        let room = room.to_owned();
        let original = originals.get(k).cloned();
        posts.spawn(async move {
            let sent = Instant::now();
            let result = match original {
                Some(id) => api.edit_message(&room, &id, &token, EDITED).await,
                None => api.post_message(&room, &token, CONTENT).await,
            };
            (sent, sent.elapsed(), result.map(|posted| posted.event_id))
        });
    }
    let mut sent_at: HashMap<i64, Instant> = HashMap::new();
    let mut post_latency = Latency::default();
    let mut errors = 0u64;
    while let Some(joined) = posts.join_next().await {
        match joined {
            Ok((sent, took, Ok(event_id))) => {
                sent_at.insert(event_id, sent);
                post_latency.record(took);
            }
            Ok((_, _, Err(err))) => {
                errors += 1;
                eprintln!("fan-out: a post failed: {err:#}");
            }
            Err(err) => {
                errors += 1;
                eprintln!("fan-out: a post task failed: {err}");
            }
        }
    }
    let expected = (sent_at.len() * subscribers.len()) as u64;
    subscribers.wait_for(expected, DRAIN_TIMEOUT).await;
    let rss_mib = server
        .pid
        .and_then(|pid| process::rss_kib(pid).ok())
        .map(|kib| kib as f64 / 1024.0);
    let feeds = subscribers.close().await;
    let mut run = check(&feeds, &sent_at);
    run.expected = expected;
    run.post_latency = post_latency;
    run.errors += errors;
    run.connect = connect;
    run.rss_mib = rss_mib;
    Ok(run)
}

/// Counts, per subscriber and event id, what arrived against what was sent.
pub(crate) fn check(feeds: &[Feed], sent_at: &HashMap<i64, Instant>) -> Run {
    let mut run = Run {
        delivered: 0,
        expected: 0,
        latency: Latency::default(),
        post_latency: Latency::default(),
        lost: 0,
        duplicated: 0,
        reordered: 0,
        reconnects: 0,
        errors: 0,
        connect: Duration::ZERO,
        rss_mib: None,
    };
    for feed in feeds {
        let mut seen: HashMap<i64, u32> = HashMap::with_capacity(sent_at.len());
        let mut last = i64::MIN;
        for &(seq, at) in &feed.events {
            if seq <= last {
                run.reordered += 1;
            }
            last = last.max(seq);
            let times = seen.entry(seq).or_insert(0);
            *times += 1;
            if *times > 1 {
                run.duplicated += 1;
                continue;
            }
            run.delivered += 1;
            match sent_at.get(&seq) {
                Some(sent) => run.latency.record(at.saturating_duration_since(*sent)),
                // An event nobody here caused: the room is this run's own, so it is an error.
                None => run.errors += 1,
            }
        }
        run.lost += sent_at.keys().filter(|seq| !seen.contains_key(seq)).count() as u64;
        run.reconnects += u64::from(feed.reconnects);
        run.errors += u64::from(feed.resets + feed.mismatched) + feed.errors.len() as u64;
        for err in feed.errors.iter().take(1) {
            eprintln!("fan-out: {err}");
        }
    }
    run
}

fn cells(label: &str, change: &str, n: usize, run_name: &str, run: &Run) -> Vec<String> {
    vec![
        label.to_owned(),
        change.to_owned(),
        count(n as f64),
        run_name.to_owned(),
        format!(
            "{}/{}",
            count(run.delivered as f64),
            count(run.expected as f64)
        ),
        ms(run.latency.ms(0.5)),
        ms(run.latency.ms(0.9)),
        ms(run.latency.ms(0.99)),
        ms(run.latency.max_ms()),
        run.lost.to_string(),
        run.duplicated.to_string(),
        run.reordered.to_string(),
        run.reconnects.to_string(),
        ms(run.post_latency.ms(0.5)),
        one(run.connect.as_secs_f64()),
        run.rss_mib.map_or("—".into(), one),
    ]
}

fn median_cells(label: &str, change: &str, n: usize, runs: &[Run]) -> Vec<String> {
    let sum = |f: fn(&Run) -> u64| runs.iter().map(f).sum::<u64>().to_string();
    vec![
        format!("**{label}**"),
        format!("**{change}**"),
        format!("**{}**", count(n as f64)),
        "**median**".into(),
        format!(
            "{}/{}",
            count(runs.iter().map(|r| r.delivered).sum::<u64>() as f64),
            count(runs.iter().map(|r| r.expected).sum::<u64>() as f64)
        ),
        format!("**{}**", ms(median_by(runs, |r| r.latency.ms(0.5)))),
        ms(median_by(runs, |r| r.latency.ms(0.9))),
        format!("**{}**", ms(median_by(runs, |r| r.latency.ms(0.99)))),
        ms(median_by(runs, |r| r.latency.max_ms())),
        sum(|r| r.lost),
        sum(|r| r.duplicated),
        sum(|r| r.reordered),
        sum(|r| r.reconnects),
        ms(median_by(runs, |r| r.post_latency.ms(0.5))),
        one(median_by(runs, |r| r.connect.as_secs_f64())),
        if runs.iter().all(|r| r.rss_mib.is_some()) {
            one(median_by(runs, |r| r.rss_mib.unwrap_or(0.0)))
        } else {
            "—".into()
        },
    ]
}

/// The first line of an error, shortened for a table cell.
pub fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let cut: String = line.chars().take(160).collect();
    cut.replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_duplication_and_order_are_counted_by_seq() {
        let t0 = Instant::now();
        let sent_at: HashMap<i64, Instant> = (1..=3).map(|seq| (seq, t0)).collect();
        let later = t0 + Duration::from_millis(5);
        let feed = |seqs: &[i64]| Feed {
            events: seqs.iter().map(|&s| (s, later)).collect(),
            ..Feed::default()
        };
        let run = check(
            &[feed(&[1, 2, 3]), feed(&[1, 3, 3]), feed(&[2, 1, 3])],
            &sent_at,
        );
        assert_eq!(run.delivered, 3 + 2 + 3);
        assert_eq!(run.lost, 1);
        assert_eq!(run.duplicated, 1);
        // The repeated 3 and the 1 after 2.
        assert_eq!(run.reordered, 2);
        assert_eq!(run.errors, 0);
        assert!((run.latency.ms(0.5) - 5.0).abs() < 0.1);
    }
}

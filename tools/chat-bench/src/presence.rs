//! Presence and typing across two servers on one database (`--url A --url B`): typing sent
//! to A timed to a subscriber of B; users opening a stream on A timed until B's subscriber
//! hears them online and B's `GET …/presence` lists them; one closing, until offline; and,
//! with `--presence-kill`, A SIGKILLed, until B reports its users offline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{Api, json_or_error};
use super::report::{Latency, Table, count, ms};
use super::{Ctx, sse};

/// How long one signal may take before it counts as lost.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a list change or a kill may take to show (the list is as of each server's
/// last heartbeat, PRESENCE_HEARTBEAT_SECS = 15 s by default; PRESENCE_TTL_SECS is 45 s).
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `GET …/presence` is polled while waiting for it to change.
const LIST_POLL: Duration = Duration::from_millis(25);

/// A `typing` or `presence` event the watcher parsed, when.
struct Signal {
    event: String,
    data: Value,
    at: Instant,
}

/// A subscriber reading only the id-less events; stops when dropped.
struct Watcher {
    events: mpsc::UnboundedReceiver<Signal>,
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    async fn open(api: &Api, room: &str, token: &str) -> anyhow::Result<Self> {
        let response = sse::open(api, room, token, None).await?;
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&block);
                    let (mut event, mut data) = (None, None);
                    for line in text.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            event = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data = serde_json::from_str(v).ok();
                        }
                    }
                    if let (Some(event), Some(data)) = (event, data)
                        && (event == "typing" || event == "presence")
                    {
                        let _ = tx.send(Signal {
                            event,
                            data,
                            at: Instant::now(),
                        });
                    }
                }
            }
        });
        Ok(Self { events, task })
    }

    /// Waits for `event` from `user` (with `status`, for presence); when it was parsed.
    async fn wait(
        &mut self,
        event: &str,
        user: &str,
        status: Option<&str>,
        timeout: Duration,
    ) -> Option<Instant> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let signal = tokio::time::timeout_at(until, self.events.recv())
                .await
                .ok()??;
            if signal.event == event
                && signal.data["user_email"] == user
                && status.is_none_or(|s| signal.data["status"] == s)
            {
                return Some(signal.at);
            }
        }
    }
}

impl Watcher {
    /// Waits for `event` with `status` from each of `users`, in any order; when each was
    /// parsed (those heard within `timeout`).
    async fn wait_all(
        &mut self,
        event: &str,
        users: &[String],
        status: &str,
        timeout: Duration,
    ) -> Vec<Instant> {
        let until = tokio::time::Instant::now() + timeout;
        let mut heard: HashMap<String, Instant> = HashMap::new();
        while heard.len() < users.len() {
            let Ok(Some(signal)) = tokio::time::timeout_at(until, self.events.recv()).await else {
                break;
            };
            if signal.event != event || signal.data["status"] != status {
                continue;
            }
            if let Some(user) = signal.data["user_email"].as_str()
                && users.iter().any(|u| u == user)
            {
                heard.entry(user.to_owned()).or_insert(signal.at);
            }
        }
        heard.into_values().collect()
    }
}

fn email(who: &str) -> String {
    format!("bench-{who}@bench.example")
}

/// `GET /api/rooms/{room}/presence` on `api`: who it lists.
async fn listed(api: &Api, room: &str, token: &str) -> anyhow::Result<Vec<String>> {
    let response = api
        .http
        .get(api.url(&format!("/api/rooms/{room}/presence")))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("GET …/presence")?;
    let body = json_or_error(response).await?;
    Ok(body["online"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["user_email"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Polls B's list from `started` until `done` holds; the time it took.
async fn list_until(
    api: &Api,
    room: &str,
    token: &str,
    started: Instant,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Duration> {
    loop {
        if done(&listed(api, room, token).await?) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("the list did not change within {timeout:?}");
        }
        tokio::time::sleep(LIST_POLL).await;
    }
}

pub async fn run(ctx: &mut Ctx) {
    if ctx.servers.len() != 2 {
        println!("## Presence and typing across two servers\n");
        println!("Skipped: give exactly two `--url`s, two servers on one database.\n");
        return;
    }
    if let Err(err) = measure(ctx).await {
        ctx.failures.add(format!("presence: {err:#}"));
    }
}

async fn measure(ctx: &mut Ctx) -> anyhow::Result<()> {
    let plan = ctx.plan.clone();
    let (a, b) = (ctx.servers[0].clone(), ctx.servers[1].clone());
    let room = ctx.room("presence");
    a.api.create_room(&room).await?;
    let watcher_token = ctx.tokens.for_user("presence-watcher")?;
    let mut watcher = Watcher::open(&b.api, &room, &watcher_token).await?;
    // Let B's first heartbeat (its silent first read of the room) pass.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Typing: A → B's subscriber, each from its own typist.
    let mut typing = Latency::default();
    let mut typing_lost = 0u64;
    for i in 0..plan.typing_events {
        let who = format!("typist-{}-{i}", ctx.run_id);
        let token = ctx.tokens.for_user(&who)?;
        let sent = Instant::now();
        let response = a
            .api
            .http
            .post(a.api.url(&format!("/api/rooms/{room}/typing")))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .context("POST …/typing")?;
        anyhow::ensure!(response.status() == 204, "typing: {}", response.status());
        match watcher
            .wait("typing", &email(&who), None, SIGNAL_TIMEOUT)
            .await
        {
            Some(at) => typing.record(at - sent),
            None => typing_lost += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut table = Table::new(
        "Typing across servers: delivery latency",
        &[
            "from → to",
            "events",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "lost",
        ],
    );
    table.param(format!(
        "{} typing events, one at a time, each from its own user: from just before `POST …/typing` on the first server to the moment a subscriber of the second has parsed `event: typing`",
        plan.typing_events
    ));
    table.row(vec![
        format!("{} → {}", a.api.base, b.api.base),
        count(typing.count() as f64),
        ms(typing.ms(0.50)),
        ms(typing.ms(0.90)),
        ms(typing.ms(0.99)),
        ms(typing.max_ms()),
        typing_lost.to_string(),
    ]);
    table.print();

    // Joins on A, seen from B: the event, and the list.
    let mut rows: Vec<(String, Latency, Latency, u64)> = Vec::new();
    let (mut join_event, mut join_list, mut join_lost) =
        (Latency::default(), Latency::default(), 0);
    let mut joined: HashMap<String, reqwest::Response> = HashMap::new();
    for i in 0..plan.presence_joins {
        let who = format!("joiner-{}-{i}", ctx.run_id);
        let token = ctx.tokens.for_user(&who)?;
        let started = Instant::now();
        let stream = sse::open(&a.api, &room, &token, None).await?;
        let user = email(&who);
        let list = list_until(&b.api, &room, &watcher_token, started, LIST_TIMEOUT, |l| {
            l.contains(&user)
        });
        let event = watcher.wait("presence", &user, Some("online"), SIGNAL_TIMEOUT);
        let (list, event) = tokio::join!(list, event);
        match event {
            Some(at) => join_event.record(at - started),
            None => join_lost += 1,
        }
        join_list.record(list?);
        joined.insert(user, stream);
    }
    rows.push((
        "join (stream opened on A)".into(),
        join_event,
        join_list,
        join_lost,
    ));

    // One closes its stream: offline after the debounce.
    if let Some(user) = joined.keys().next().cloned() {
        let (mut event_lat, mut list_lat, mut lost) = (Latency::default(), Latency::default(), 0);
        let stream = joined.remove(&user);
        let started = Instant::now();
        drop(stream);
        let list = list_until(&b.api, &room, &watcher_token, started, LIST_TIMEOUT, |l| {
            !l.contains(&user)
        });
        let event = watcher.wait("presence", &user, Some("offline"), SIGNAL_TIMEOUT * 3);
        let (list, event) = tokio::join!(list, event);
        match event {
            Some(at) => event_lat.record(at - started),
            None => lost += 1,
        }
        list_lat.record(list?);
        rows.push((
            "leave (stream closed on A)".into(),
            event_lat,
            list_lat,
            lost,
        ));
    }

    // A is SIGKILLed: B drops its users once their entries lapse.
    if plan.presence_kill {
        let pid = a
            .pid
            .context("--presence-kill needs the first server's --server-pid")?;
        let users: Vec<String> = joined.keys().cloned().collect();
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .context("run kill")?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
        drop(joined);
        let list = list_until(&b.api, &room, &watcher_token, started, LIST_TIMEOUT, |l| {
            users.iter().all(|u| !l.contains(u))
        });
        let events = async {
            let mut lat = Latency::default();
            let heard = watcher
                .wait_all("presence", &users, "offline", LIST_TIMEOUT)
                .await;
            for at in &heard {
                lat.record(*at - started);
            }
            (lat, (users.len() - heard.len()) as u64)
        };
        let (list, (event_lat, lost)) = tokio::join!(list, events);
        let mut list_lat = Latency::default();
        list_lat.record(list?);
        rows.push((
            format!("kill (SIGKILL of A, {} users on it)", users.len()),
            event_lat,
            list_lat,
            lost,
        ));
    }

    let mut table = Table::new(
        "Presence across servers: convergence time",
        &[
            "what",
            "n",
            "event p50 ms",
            "event max ms",
            "list ms (max)",
            "events lost",
        ],
    );
    table.param("event: from the action on the first server to the moment a subscriber of the second has parsed `event: presence` for that user; list: until the second server's `GET …/presence` (polled every 25 ms) shows the change");
    table.param("the second server's PRESENCE_HEARTBEAT_SECS and PRESENCE_TTL_SECS bound the list and the kill; a leave includes the 3 s debounce");
    for (what, event, list, lost) in rows {
        table.row(vec![
            what,
            count((event.count() + lost) as f64),
            ms(event.ms(0.50)),
            ms(event.max_ms()),
            ms(list.max_ms()),
            lost.to_string(),
        ]);
    }
    table.print();
    Ok(())
}

//! Command-line arguments, with the defaults of the performance issue's scenarios.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The secret the dev server signs tokens with when `AUTH_JWT_SECRET` is unset (the same
/// value as `chat_dev::stack::DEV_JWT_SECRET`, which a test keeps in step).
pub const DEV_JWT_SECRET: &str = "dev-only-secret-do-not-deploy";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Fanout,
    Idle,
    Deep,
    Writes,
    WriteCost,
    Footprint,
    Rooms,
    /// Typing and presence across two servers on one database (give two `--url`s).
    Presence,
    Storm,
    Spread,
    /// History tiered to the bucket: seeds a room, calls `/api/cron/archive` until done
    /// (the server's `ARCHIVE_KEEP_PER_ROOM` decides how much moves), then lists hot and
    /// archived pages. Needs --database-url and --cron-secret; never part of `all` (it
    /// changes what the server stores).
    Archive,
    /// Search over the deep room (seeded as `deep` seeds it).
    Search,
    All,
}

/// A write to a room's log, as the write-cost scenario measures it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Event {
    /// `POST …/messages` (the only one the plain-insert baseline serves).
    Post,
    /// `PATCH …/messages/{id}`.
    Edit,
    /// `PUT` and `DELETE …/reactions/{emoji}`, alternating.
    React,
    /// `DELETE …/messages/{id}`.
    Delete,
}

/// Benchmarks the chat API through its public HTTP API and prints one table per scenario.
///
/// Give `--url` more than once to compare servers (e.g. the NOTIFY wake-up on and off) in
/// the same run: every configuration is measured on each in turn.
#[derive(Debug, Parser)]
// A later single-valued flag overrides an earlier one, so a shared set of flags can be
// followed by a scenario-specific `--repeat 1`.
#[command(name = "chat-bench", version, args_override_self = true)]
pub struct Args {
    /// Base URL of a dev server or deployment. Repeat it to compare servers side by side.
    #[arg(long = "url", default_value = "http://localhost:3000")]
    pub urls: Vec<String>,

    /// The PID of each `--url`'s server process (same order), for its RSS (footprint).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,

    /// One bearer token for every simulated user (instead of minting tokens with --secret).
    #[arg(long, env = "CHAT_BENCH_TOKEN")]
    pub token: Option<String>,

    /// The HS256 secret to mint a token per simulated user; defaults to the dev server's.
    #[arg(long, env = "AUTH_JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true, hide_env_values = true)]
    pub secret: String,

    /// `iss` for minted tokens, when the server checks it.
    #[arg(long, env = "AUTH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// `aud` for minted tokens, when the server checks it.
    #[arg(long, env = "AUTH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A direct Postgres URL of the servers' database: pg_stat_database figures, seeding the
    /// deep room, EXPLAIN, and functions spawned for the footprint. Scenarios or figures
    /// that need it are skipped, with a note, without it.
    #[arg(long, env = "CHAT_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,

    /// A few seconds with tiny N, for CI: exits non-zero on any lost or duplicated message
    /// or HTTP error. Runs everything that needs no --database-url (and, given one, the rest
    /// at small sizes).
    #[arg(long)]
    pub smoke: bool,

    /// Runs of each configuration; tables show every run and the median.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,

    /// Stream opens in flight at once while connecting subscribers.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,

    // --- fan-out
    /// Fan-out: subscribers on one room, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    pub fanout_subscribers: Vec<usize>,
    /// Fan-out: messages posted per run.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Fan-out: messages posted per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,

    // --- idle
    /// Idle cost: idle subscribers on one room, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub idle_subscribers: Vec<usize>,
    /// Idle cost: the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_window: f64,

    // --- archive
    /// Archive: messages seeded into a fresh room before the cron runs.
    #[arg(long, default_value_t = 200_000)]
    pub archive_messages: i64,
    /// Archive: streams resuming this many events behind the newest, one after another
    /// (needs the server's `STREAM_MAX_BACKLOG` at least this; 0: none).
    #[arg(long, default_value_t = 10_000)]
    pub archive_catch_up: i64,
    /// Archive: the bearer token of the server's crons (its `CRON_SECRET`).
    #[arg(long, env = "CRON_SECRET", hide_env_values = true)]
    pub cron_secret: Option<String>,

    // --- deep room
    /// Deep room: messages seeded into the room (reused when already seeded).
    #[arg(long, default_value_t = 1_000_000)]
    pub deep_messages: i64,
    /// Deep room: percent of messages with a file.
    #[arg(long, default_value_t = 10)]
    pub deep_files_percent: i64,
    /// Deep room: percent of messages with reactions.
    #[arg(long, default_value_t = 20)]
    pub deep_reactions_percent: i64,
    /// Deep room: percent of messages that reply to an earlier one.
    #[arg(long, default_value_t = 5)]
    pub deep_replies_percent: i64,
    /// Deep room: requests per kind of page.
    #[arg(long, default_value_t = 200)]
    pub deep_requests: usize,
    /// Deep room: the page size (`limit`).
    #[arg(long, default_value_t = 100)]
    pub deep_limit: i64,
    /// Deep room: subscribers connected for the "list under load" row (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub deep_subscribers: usize,

    // --- room list
    /// Room list: private rooms the listing user is a member of.
    #[arg(long, default_value_t = 200)]
    pub list_rooms: usize,
    /// Room list: messages seeded into each room.
    #[arg(long, default_value_t = 1000)]
    pub list_room_messages: i64,
    /// Room list: percent of each room's messages that are tombstones.
    #[arg(long, default_value_t = 2)]
    pub list_deleted_percent: i64,
    /// Room list: requests per run.
    #[arg(long, default_value_t = 200)]
    pub list_requests: usize,

    // --- writes
    /// Writes: concurrent posting clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub write_clients: Vec<usize>,
    /// Writes: rooms for the "across rooms" runs.
    #[arg(long, default_value_t = 100)]
    pub write_rooms: usize,
    /// Writes: seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub write_seconds: f64,

    // --- write cost
    /// Write cost: concurrent clients, each its own connection.
    #[arg(long, default_value_t = 32)]
    pub cost_clients: usize,
    /// Write cost: rooms the clients write into (client i: rooms i, i+clients, ...).
    #[arg(long, default_value_t = 100)]
    pub cost_rooms: usize,
    /// Write cost: seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 8.0)]
    pub cost_seconds: f64,
    /// Write cost: the kinds of writes measured, in order (the baseline serves only posts).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "post,edit,react,delete"
    )]
    pub cost_events: Vec<Event>,

    // --- presence
    /// Presence: typing events sent to the first server and timed to a subscriber of the
    /// second, each from its own user (a user is limited to one a second per room).
    #[arg(long, default_value_t = 200)]
    pub typing_events: usize,
    /// Presence: users who open a stream on the first server, one after the other, timed
    /// until the second server's subscriber hears them online and its list shows them.
    #[arg(long, default_value_t = 10)]
    pub presence_joins: usize,
    /// Presence: at the end, SIGKILL the first server (its `--server-pid`) and time until
    /// the second reports its users offline. The first server is gone afterwards.
    #[arg(long)]
    pub presence_kill: bool,
    // --- reconnect storm
    /// Streams resuming at once, per storm.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub storm_clients: Vec<usize>,
    /// How many events behind each storm stream resumes.
    #[arg(long, default_value_t = 100)]
    pub storm_behind: usize,

    // --- fan-out across processes
    /// Subscribers on each `--url` (each a server process on the same Postgres).
    #[arg(long, default_value_t = 1000)]
    pub spread_subscribers: usize,

    // --- footprint
    /// Footprint: streams held open while the RSS is read.
    #[arg(long, default_value_t = 5000)]
    pub footprint_streams: usize,
    /// Footprint: where the release function binaries are (default: $CARGO_TARGET_DIR or
    /// ./target, then /release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Footprint: cold starts timed per function and kind.
    #[arg(long, default_value_t = 5)]
    pub cold_starts: usize,
}

/// The parameters a run uses, after `--smoke` shrank them.
#[derive(Clone, Debug)]
pub struct Plan {
    pub smoke: bool,
    pub repeat: usize,
    pub connect_concurrency: usize,
    pub fanout_subscribers: Vec<usize>,
    pub messages: usize,
    pub rate: f64,
    pub idle_subscribers: Vec<usize>,
    pub idle_window: Duration,
    pub idle_settle: Duration,
    pub deep_messages: i64,
    pub deep_files_percent: i64,
    pub deep_reactions_percent: i64,
    pub deep_replies_percent: i64,
    pub deep_requests: usize,
    pub deep_limit: i64,
    pub deep_subscribers: usize,
    pub list_rooms: usize,
    pub list_room_messages: i64,
    pub list_deleted_percent: i64,
    pub list_requests: usize,
    pub write_clients: Vec<usize>,
    pub write_rooms: usize,
    pub write_seconds: Duration,
    pub write_warmup: Duration,
    pub cost_clients: usize,
    pub cost_rooms: usize,
    pub cost_seconds: Duration,
    pub cost_warmup: Duration,
    pub cost_events: Vec<Event>,
    pub typing_events: usize,
    pub presence_joins: usize,
    pub presence_kill: bool,
    pub storm_clients: Vec<usize>,
    pub storm_behind: usize,
    pub spread_subscribers: usize,
    pub footprint_streams: usize,
    pub bin_dir: PathBuf,
    pub cold_starts: usize,
}

impl Args {
    pub fn plan(&self) -> Plan {
        let bin_dir = self.bin_dir.clone().unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"))
                .join("release")
        });
        let full = Plan {
            smoke: false,
            repeat: self.repeat.max(1),
            connect_concurrency: self.connect_concurrency.max(1),
            fanout_subscribers: self.fanout_subscribers.clone(),
            messages: self.messages.max(1),
            rate: self.rate.max(0.1),
            idle_subscribers: self.idle_subscribers.clone(),
            idle_window: Duration::from_secs_f64(self.idle_window.max(1.0)),
            // Postgres 15 publishes an idle backend's counters up to 10 s late
            // (PGSTAT_IDLE_INTERVAL): the subscribers' join queries must show up before the
            // window opens, not inside it.
            idle_settle: Duration::from_secs(11),
            deep_messages: self.deep_messages.max(1000),
            deep_files_percent: self.deep_files_percent.clamp(0, 100),
            deep_reactions_percent: self.deep_reactions_percent.clamp(0, 100),
            deep_replies_percent: self.deep_replies_percent.clamp(0, 100),
            deep_requests: self.deep_requests.max(1),
            deep_limit: self.deep_limit.clamp(1, 200),
            deep_subscribers: self.deep_subscribers,
            list_rooms: self.list_rooms.clamp(1, 999),
            list_room_messages: self.list_room_messages.max(10),
            list_deleted_percent: self.list_deleted_percent.clamp(0, 100),
            list_requests: self.list_requests.max(1),
            write_clients: self.write_clients.clone(),
            write_rooms: self.write_rooms.max(1),
            write_seconds: Duration::from_secs_f64(self.write_seconds.max(0.5)),
            write_warmup: Duration::from_secs(1),
            cost_clients: self.cost_clients.max(1),
            cost_rooms: self.cost_rooms.max(1),
            cost_seconds: Duration::from_secs_f64(self.cost_seconds.max(0.5)),
            cost_warmup: Duration::from_secs(1),
            cost_events: self.cost_events.clone(),
            typing_events: self.typing_events.max(1),
            presence_joins: self.presence_joins.max(1),
            presence_kill: self.presence_kill,
            storm_clients: self.storm_clients.clone(),
            storm_behind: self.storm_behind.max(1),
            spread_subscribers: self.spread_subscribers,
            footprint_streams: self.footprint_streams,
            bin_dir,
            cold_starts: self.cold_starts.max(1),
        };
        if !self.smoke {
            return full;
        }
        Plan {
            smoke: true,
            repeat: 1,
            fanout_subscribers: vec![5],
            messages: 10,
            rate: 50.0,
            idle_subscribers: vec![2],
            idle_window: Duration::from_secs(2),
            idle_settle: Duration::from_secs(1),
            deep_messages: 2000,
            deep_requests: 10,
            deep_subscribers: 5,
            list_rooms: 5,
            list_room_messages: 50,
            list_requests: 10,
            write_clients: vec![2],
            write_rooms: 3,
            write_seconds: Duration::from_secs(1),
            write_warmup: Duration::from_millis(200),
            cost_clients: 2,
            cost_rooms: 3,
            cost_seconds: Duration::from_secs(1),
            cost_warmup: Duration::from_millis(200),
            typing_events: 10,
            presence_joins: 2,
            storm_clients: vec![10],
            storm_behind: 10,
            spread_subscribers: 5,
            footprint_streams: 20,
            cold_starts: 1,
            ..full
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_arguments_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn smoke_shrinks_every_scenario() {
        let args = Args::parse_from(["chat-bench", "--smoke"]);
        let plan = args.plan();
        assert!(plan.fanout_subscribers.iter().all(|&n| n <= 10));
        assert!(plan.messages <= 10 && plan.footprint_streams <= 20);
        assert_eq!(args.urls, vec!["http://localhost:3000".to_owned()]);
    }

    #[test]
    fn a_later_flag_overrides_and_urls_still_accumulate() {
        let args = Args::parse_from([
            "chat-bench",
            "--url",
            "http://a",
            "--repeat",
            "3",
            "--url",
            "http://b",
            "--repeat",
            "1",
        ]);
        assert_eq!(args.repeat, 1);
        assert_eq!(
            args.urls,
            vec!["http://a".to_owned(), "http://b".to_owned()]
        );
    }

    #[test]
    fn the_default_secret_is_the_dev_servers() {
        assert_eq!(DEV_JWT_SECRET, chat_dev::stack::DEV_JWT_SECRET);
    }
}

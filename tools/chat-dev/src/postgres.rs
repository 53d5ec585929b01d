//! A throwaway PostgreSQL cluster for local dev and tests: `initdb` into a fresh temp
//! dir, then a server on a free 127.0.0.1 port that never outlives the process that
//! started it.
//!
//! The server is not started directly but through a small `sh` watchdog whose stdin is a
//! pipe held by this process. When this process goes away, however it dies (test
//! binaries and Ctrl-C'd dev servers exit without running destructors, SIGKILL runs
//! nothing at all), the kernel closes the pipe, the watchdog sees EOF, shuts the server
//! down and removes the temp dir.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, User, geteuid};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::Mutex;

/// How long `start`/`restart` wait for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for a fast shutdown before killing the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// `Drop` blocks the thread it runs on, so it gives up (and SIGKILLs) sooner.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// Another process may grab the free port between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// The watchdog, run as `sh -c WATCHDOG <postgres> <args>...` with `PG_LOG` and `PG_TMP`
/// in its environment.
///
/// * postgres runs in the background with its output appended to `$PG_LOG`;
/// * a background reader blocks on our stdin pipe (through fd 3, because a background
///   list's stdin is /dev/null in a non-interactive shell). On a `keep` line (`stop()`)
///   it stops postgres and keeps the data; on EOF (we dropped it, or this process died)
///   it stops postgres and the temp dir is removed;
/// * the postgres pid is printed on stdout, and stdout is closed once postgres exits, so
///   the owner notices a server that dies during startup without polling pids.
const WATCHDOG: &str = r#"
exec 2>>"$PG_LOG"
"$0" "$@" </dev/null >>"$PG_LOG" 2>&1 &
pid=$!
exec 3<&0
( IFS= read -r cmd <&3 || cmd=; kill -INT "$pid" 2>/dev/null; [ "$cmd" = keep ] ) >/dev/null &
reader=$!
exec 3<&-
echo "$pid"
wait "$pid"
exec >&-
if ! wait "$reader"; then rm -rf -- "$PG_TMP"; fi
"#;

/// A throwaway PostgreSQL cluster (see the module docs). Connect as the `postgres`
/// superuser without a password via [`EmbeddedPostgres::url`].
///
/// Dropping it stops the server (blocking the current thread for a moment) and removes
/// its data.
pub struct EmbeddedPostgres {
    port: u16,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    /// `None` while stopped. An async mutex so `stop`/`restart` hold it across awaits.
    server: Mutex<Option<Server>>,
    /// Declared last so it is removed only after `Drop::drop` has stopped the server.
    dir: TempDir,
}

/// The user to run `initdb`, the watchdog and postgres as, when we are root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

/// A running watchdog. std (not tokio) process types, so that stopping works from any
/// runtime or none: tests keep a shared server in a static and each test has its own
/// runtime, while tokio's child handles are bound to the runtime that spawned them.
struct Server {
    watchdog: Child,
    /// Holding the write end open keeps the server alive.
    stdin: Option<ChildStdin>,
}

impl EmbeddedPostgres {
    /// Creates a cluster in a fresh temp dir and starts the server on a free port,
    /// returning once it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin_dir = find_bin_dir().await?;
        let run_as = run_as()?;

        let dir = tempfile::Builder::new()
            .prefix("chat-pg-")
            .tempdir_in(std::env::temp_dir())
            .context("failed to create a temp dir for PostgreSQL")?;
        // PostgreSQL insists on owning its directories, with no access for others.
        let path = dir.path();
        if let Some(user) = run_as {
            chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("failed to chown {} to postgres", path.display()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to chmod {}", path.display()))?;

        initdb(&bin_dir, run_as, path).await?;
        Self::boot(bin_dir, run_as, dir).await
    }

    /// A streaming replica of this cluster, as a cluster of its own on another free port:
    /// `pg_basebackup -R` (which writes `standby.signal` and `primary_conninfo`) into a
    /// fresh temp dir, then a second `postgres` in hot standby, returning once it accepts
    /// (read-only) connections. Run as `postgres` when we are root, like the primary.
    /// Pause its replay with `SELECT pg_wal_replay_pause()`; stop it with
    /// [`EmbeddedPostgres::stop`], or drop it.
    pub async fn start_replica(&self) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chat-pg-replica-")
            .tempdir_in(std::env::temp_dir())
            .context("failed to create a temp dir for the replica")?;
        let path = dir.path();
        if let Some(user) = self.run_as {
            chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("failed to chown {} to postgres", path.display()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to chmod {}", path.display()))?;
        let basebackup = self.bin_dir.join("pg_basebackup");
        let mut cmd = tokio::process::Command::new(&basebackup);
        cmd.args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg("-D")
            .arg(path.join("data"))
            // A standby's settings (`-R`), the WAL made meanwhile streamed along (`-X
            // stream`), and no waiting for the primary's next checkpoint.
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .current_dir(path)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(user) = self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let out = cmd
            .output()
            .await
            .with_context(|| format!("failed to run {}", basebackup.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}):\n{}{}",
                basebackup.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self::boot(self.bin_dir.clone(), self.run_as, dir).await
    }

    /// Starts a server on the data dir in `dir` on a free port.
    async fn boot(bin_dir: PathBuf, run_as: Option<RunAs>, dir: TempDir) -> Result<Self> {
        let mut pg = Self {
            port: 0,
            bin_dir,
            run_as,
            server: Mutex::new(None),
            dir,
        };
        let mut attempt = 1;
        loop {
            pg.port = free_port()?;
            match pg.launch().await {
                Ok(server) => {
                    *pg.server.get_mut() = Some(server);
                    return Ok(pg);
                }
                Err(err)
                    if attempt < PORT_ATTEMPTS
                        && format!("{err:#}").contains("Address already in use") =>
                {
                    tracing::debug!(port = pg.port, "postgres port was taken, retrying");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on the same cluster (create it first).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown: open sessions are disconnected) and waits until
    /// it is down. The data stays, for tests that restart the database. A no-op when
    /// already stopped.
    pub async fn stop(&self) -> Result<()> {
        let mut server = self.server.lock().await;
        match server.take() {
            Some(running) => running.shutdown(true, STOP_TIMEOUT).await,
            None => Ok(()),
        }
    }

    /// Starts the server again on the same port and data dir (stopping it first if it
    /// is running), returning once it accepts connections.
    pub async fn restart(&self) -> Result<()> {
        let mut server = self.server.lock().await;
        if let Some(running) = server.take() {
            running.shutdown(true, STOP_TIMEOUT).await?;
        }
        *server = Some(self.launch().await?);
        Ok(())
    }

    /// Freezes the server, as a hung host would: SIGSTOP to the postmaster and every
    /// backend. Connections stay open and nothing answers until [`EmbeddedPostgres::thaw`].
    pub fn freeze(&self) -> Result<()> {
        self.signal_all(Signal::SIGSTOP)
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) -> Result<()> {
        self.signal_all(Signal::SIGCONT)
    }

    /// The postmaster (first line of `postmaster.pid`) and its children, found in `/proc`.
    fn signal_all(&self, signal: Signal) -> Result<()> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .context("the server is not running")?;
        let postmaster: i32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .context("postmaster.pid has no pid")?;
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // `/proc/<pid>/stat`: `pid (comm) state ppid …`; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            nix::sys::signal::kill(Pid::from_raw(pid), signal)
                .with_context(|| format!("signal {signal} to postgres {pid}"))?;
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Starts the watchdog and the server and waits until it accepts connections.
    async fn launch(&self) -> Result<Server> {
        let log = self.log_path();
        // Only this launch's part of the log explains a failure of this launch.
        let log_offset = std::fs::metadata(&log).map_or(0, |m| m.len());

        let dir = self.dir.path();
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.port),
            format!("unix_socket_directories={}", dir.display()),
            // Durability is pointless for a throwaway cluster; these make it much faster.
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "max_connections=500".to_owned(),
            "shared_buffers=128MB".to_owned(),
            "logging_collector=off".to_owned(),
            // Whole statements in `pg_stat_activity` (tests check where a read ran).
            "track_activity_query_size=16384".to_owned(),
            // What a streaming replica needs (`start_replica`); a standby ignores them but
            // must have at least its primary's `max_wal_senders`.
            "wal_level=replica".to_owned(),
            "max_wal_senders=10".to_owned(),
            "hot_standby=on".to_owned(),
        ];
        // `PG_SETTINGS`: more `name=value` settings, separated by spaces, after (so
        // overriding) the ones above, e.g. `shared_preload_libraries=pg_stat_statements
        // pg_stat_statements.track=all` for the write-cost benchmark.
        settings.extend(extra_settings(
            std::env::var("PG_SETTINGS").ok().as_deref().unwrap_or(""),
        )?);

        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg(self.bin_dir.join("postgres"))
            .arg("-D")
            .arg(self.data_dir());
        for setting in &settings {
            cmd.arg("-c").arg(setting);
        }
        cmd.env("PG_LOG", &log)
            .env("PG_TMP", dir)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C in the terminal must not stop the database
            // under a dev server that is still shutting down gracefully; the pipe does it.
            .process_group(0);
        if let Some(user) = self.run_as {
            // The watchdog runs as the postgres user too, so that it may signal postgres.
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let mut watchdog = cmd
            .spawn()
            .context("failed to run /bin/sh to start postgres")?;
        let stdin = watchdog.stdin.take();
        let stdout = watchdog.stdout.take();
        let server = Server { watchdog, stdin };

        let ready = async {
            let stdout = stdout.context("watchdog stdout was not captured")?;
            let stdout = tokio::process::ChildStdout::from_std(stdout)
                .context("failed to watch postgres' output")?;
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // The watchdog prints postgres' pid first and closes stdout when it exits.
            tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line))
                .await
                .context("timed out waiting for the postgres watchdog")?
                .context("failed to read from the postgres watchdog")?;
            ensure!(
                !line.is_empty(),
                "the postgres watchdog exited before starting postgres"
            );
            tokio::select! {
                read = stdout.read_line(&mut line) => {
                    read.context("failed to read from the postgres watchdog")?;
                    bail!("postgres exited during startup");
                }
                ready = self.wait_until_ready() => ready,
            }
        };
        match ready.await {
            Ok(()) => Ok(server),
            Err(err) => {
                // Keep the dir: the log explains the failure, and `start` may retry.
                let _ = server.shutdown(true, DROP_TIMEOUT).await;
                Err(err.context(format!(
                    "PostgreSQL ({}) did not start on 127.0.0.1:{}; its log:\n{}",
                    self.bin_dir.display(),
                    self.port,
                    log_tail(&log, log_offset)
                )))
            }
        }
    }

    /// Polls until the server accepts connections: a TCP connect first (cheap), then
    /// `pg_isready`, which also knows "the database system is starting up".
    async fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let pg_isready = self.bin_dir.join("pg_isready");
        let has_pg_isready = pg_isready.is_file();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                if !has_pg_isready {
                    return Ok(());
                }
                let status = tokio::process::Command::new(&pg_isready)
                    .args([
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-t",
                        "1",
                        "-p",
                    ])
                    .arg(self.port.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await
                    .with_context(|| format!("failed to run {}", pg_isready.display()))?;
                if status.success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {} s waiting for PostgreSQL to accept connections",
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("url", &self.url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedPostgres {
    /// Stops the server, blocking until it is down, and removes the data.
    fn drop(&mut self) {
        if let Some(server) = self.server.get_mut().take()
            && let Err(err) = server.shutdown_now(false)
        {
            tracing::warn!("embedded postgres: {err:#}");
        }
    }
}

impl Server {
    /// Asks the watchdog to stop postgres (keeping or removing the data) and waits for
    /// it, yielding to the runtime while waiting.
    async fn shutdown(mut self, keep: bool, timeout: Duration) -> Result<()> {
        self.request_stop(keep);
        let deadline = Instant::now() + timeout;
        while !self.exited()? {
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "PostgreSQL did not shut down within {} s; killed it",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Like [`Server::shutdown`], but blocking: for `Drop`.
    fn shutdown_now(mut self, keep: bool) -> Result<()> {
        self.request_stop(keep);
        let deadline = Instant::now() + DROP_TIMEOUT;
        while !self.exited()? {
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "PostgreSQL did not shut down within {} s; killed it",
                    DROP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn request_stop(&mut self, keep: bool) {
        // Dropping the write end (at the end of this function) is the EOF the watchdog
        // waits for.
        let Some(mut stdin) = self.stdin.take() else {
            return;
        };
        if keep {
            // A few bytes into an empty pipe never block. A failed write (the watchdog
            // is already gone) leaves nothing to stop.
            let _ = stdin.write_all(b"keep\n");
        }
    }

    fn exited(&mut self) -> Result<bool> {
        let status = self
            .watchdog
            .try_wait()
            .context("failed to wait for the postgres watchdog")?;
        Ok(status.is_some())
    }

    /// Last resort: SIGKILL the watchdog's process group (watchdog, reader and postmaster;
    /// the backends run in sessions of their own and exit when the postmaster dies).
    fn kill(&mut self) {
        if let Ok(pgid) = i32::try_from(self.watchdog.id()) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = self.watchdog.wait();
    }
}

/// `PG_SETTINGS` as settings: `name=value` words separated by whitespace.
fn extra_settings(raw: &str) -> Result<Vec<String>> {
    raw.split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((name, _)) if !name.is_empty() => Ok(word.to_owned()),
            _ => bail!("PG_SETTINGS: `{word}` is not `name=value`"),
        })
        .collect()
}

/// Where the server binaries are: `PG_BIN_DIR`, the Debian/Ubuntu locations (15 first,
/// then the newest), then `pg_config --bindir`.
async fn find_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        ensure!(
            has_server(&dir),
            "PG_BIN_DIR={} contains no initdb and postgres",
            dir.display()
        );
        return Ok(dir);
    }
    let default = Path::new("/usr/lib/postgresql/15/bin");
    if has_server(default) {
        return Ok(default.to_owned());
    }
    if let Some(dir) = newest_debian_bin_dir() {
        return Ok(dir);
    }
    if let Ok(out) = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, postgres) not found: install the PostgreSQL server \
         package (e.g. `apt-get install postgresql`), point PG_BIN_DIR at its bin dir, or set \
         DATABASE_URL to use an existing database"
    )
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// `/usr/lib/postgresql/<version>/bin` with the highest version.
fn newest_debian_bin_dir() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let version: Vec<u32> = name
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// PostgreSQL refuses to run as root, so as root everything runs as `postgres`.
fn run_as() -> Result<Option<RunAs>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .context("failed to look up the postgres user")?
        .ok_or_else(|| {
            anyhow!(
                "running as root, but PostgreSQL refuses to run as root and there is no `postgres` \
                 user to run it as: create one (the PostgreSQL server package does) or set DATABASE_URL"
            )
        })?;
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

async fn initdb(bin_dir: &Path, run_as: Option<RunAs>, dir: &Path) -> Result<()> {
    let initdb = bin_dir.join("initdb");
    let mut cmd = tokio::process::Command::new(&initdb);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
        // Nothing here needs to survive a crash, and syncing is most of initdb's time.
        .arg("--no-sync")
        // initdb fails with "could not change directory" if it cannot read its cwd.
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(user) = run_as {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("failed to run {}", initdb.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}); note that the postgres user must be able to reach {} (set TMPDIR \
             elsewhere if it cannot):\n{}{}",
            initdb.display(),
            out.status,
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("failed to find a free port")?;
    Ok(listener
        .local_addr()
        .context("failed to find a free port")?
        .port())
}

/// The last lines of the server log written since `offset`.
fn log_tail(log: &Path, offset: u64) -> String {
    const LINES: usize = 40;
    let Ok(bytes) = std::fs::read(log) else {
        return format!("({} could not be read)", log.display());
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "(empty)".to_owned();
    }
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::extra_settings;

    #[test]
    fn pg_settings_are_name_value_words() {
        assert_eq!(
            extra_settings(
                " shared_preload_libraries=pg_stat_statements  pg_stat_statements.track=all "
            )
            .unwrap(),
            vec![
                "shared_preload_libraries=pg_stat_statements".to_owned(),
                "pg_stat_statements.track=all".to_owned()
            ]
        );
        assert!(extra_settings("").unwrap().is_empty());
        assert!(extra_settings("fsync").is_err());
        assert!(extra_settings("=on").is_err());
    }
}

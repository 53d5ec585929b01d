//! Processes: the descriptor limit, RSS from `/proc`, the machine, and release function
//! binaries spawned on a free port.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft open-files limit to the hard one (every stream is a socket); the
/// resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// `/proc` reports CPU times in clock ticks of `USER_HZ`, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// A process's `/proc/<pid>/stat`: comm, ppid, and CPU time in ticks (utime + stime of
/// every thread; cutime + cstime of the children it has reaped).
struct Stat {
    comm: String,
    ppid: u32,
    own: u64,
    reaped: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        comm,
        ppid: num(1)? as u32,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

/// CPU time (user + system, every thread) a process has used, in ms.
pub fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let s = stat(pid).with_context(|| format!("read /proc/{pid}/stat"))?;
    Ok(s.own as f64 * 1000.0 / TICKS_PER_SEC)
}

/// The parent of a process (e.g. a Postgres backend's postmaster).
pub fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|s| s.ppid)
}

/// CPU time of Postgres, in ms, and how many processes it summed: every process whose comm
/// is `postgres`, all backends and background processes. With `postmaster`, only that
/// cluster (the postmaster and its children), plus what its backends that exited had used
/// (the postmaster's reaped-children time); without, every `postgres` process on the
/// machine.
pub fn postgres_cpu_ms(postmaster: Option<u32>) -> (f64, usize) {
    let mut ticks = 0u64;
    let mut count = 0usize;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0.0, 0);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(s) = stat(pid) else { continue };
        if s.comm != "postgres" {
            continue;
        }
        match postmaster {
            Some(pm) if pid == pm => ticks += s.own + s.reaped,
            Some(pm) if s.ppid == pm => ticks += s.own,
            Some(_) => continue,
            None => ticks += s.own,
        }
        count += 1;
    }
    (ticks as f64 * 1000.0 / TICKS_PER_SEC, count)
}

/// CPU time this process (the benchmark's clients) has used, in ms.
pub fn self_cpu_ms() -> f64 {
    cpu_ms(std::process::id()).unwrap_or(0.0)
}

/// Cores, memory and CPU model, from `/proc`.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores, {mem_gib:.1} GiB, {cpu}")
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A release function binary serving on `127.0.0.1:{port}` (`VERCEL_DEV_PORT`), killed on
/// drop.
pub struct Function {
    child: tokio::process::Child,
    pub base: String,
    pub spawned_at: Instant,
}

impl Function {
    /// Spawns `bin` with only the settings the API needs (plus `extra`).
    pub fn spawn(
        bin: &Path,
        database_url: &str,
        secret: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = tokio::process::Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("VERCEL_DEV_PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("AUTH_JWT_SECRET", secret)
            // Storage is never called by the requests timed here; presigning needs no I/O.
            .env("S3_ENDPOINT", "http://127.0.0.1:9")
            .env("S3_BUCKET", "bench")
            .env("S3_ACCESS_KEY_ID", "bench")
            .env("S3_SECRET_ACCESS_KEY", "bench")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra {
            command.env(k, v);
        }
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            spawned_at,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Retries `GET {path}` until the process answers; the status and the time since the
    /// spawn.
    pub async fn first_response(
        &self,
        path: &str,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> anyhow::Result<(u16, Duration)> {
        let http = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(0)
            .build()?;
        let url = format!("{}{path}", self.base);
        loop {
            let mut request = http.get(&url).timeout(Duration::from_secs(10));
            for (k, v) in headers {
                request = request.header(*k, v);
            }
            if let Ok(response) = request.send().await {
                return Ok((response.status().as_u16(), self.spawned_at.elapsed()));
            }
            if self.spawned_at.elapsed() > timeout {
                anyhow::bail!("{url} did not answer within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_an_rss() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(machine().contains("cores"));
        assert!(cpu_ms(std::process::id()).is_ok());
        assert_eq!(
            parent(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}

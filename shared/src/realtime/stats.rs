//! Per-process counters for `/api/health` and the once-a-minute log line.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Instant;

use serde::Serialize;

/// Events counted in one-second buckets over the last minute.
pub struct LastMinute {
    start: Instant,
    buckets: Mutex<[(u64, u64); 60]>,
}

impl Default for LastMinute {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            buckets: Mutex::new([(u64::MAX, 0); 60]),
        }
    }
}

impl LastMinute {
    pub fn add(&self, n: u64) {
        let second = self.start.elapsed().as_secs();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = &mut buckets[(second % 60) as usize];
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        bucket.1 += n;
    }

    pub fn total(&self) -> u64 {
        let now = self.start.elapsed().as_secs();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .iter()
            .filter(|(second, _)| *second != u64::MAX && now - second < 60)
            .map(|(_, count)| count)
            .sum()
    }
}

#[derive(Default)]
pub struct Stats {
    pub open_streams: AtomicUsize,
    pub polls: LastMinute,
    pub notifications: LastMinute,
    /// Statements the hub sent since the process started (idle-cost tests read this).
    pub statements: AtomicU64,
    /// The same, over the last minute (`GET /api/admin/stats`: statements per second).
    pub statements_last_minute: LastMinute,
    pub listener_connected: AtomicBool,
    pub listener_connects: AtomicU64,
    /// Stream opens whose room lookup cost no query of their own: answered from the hub's
    /// state of the room, or by another stream's lookup.
    pub lookups_saved: AtomicU64,
    /// Catch-ups (whole or in part) sent from a room's window.
    pub window_catch_ups: AtomicU64,
    /// Catch-up pages a stream read from Postgres alone.
    pub own_catch_up_reads: AtomicU64,
}

impl Stats {
    /// One statement the hub sent.
    pub fn count_statement(&self) {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.statements_last_minute.add(1);
    }
}

/// What `/api/health` shows of the hub.
#[derive(Debug, Serialize)]
pub struct StatsView {
    pub open_streams: usize,
    pub watched_rooms: usize,
    pub polls_last_minute: u64,
    pub notifications_last_minute: u64,
    pub statements_total: u64,
    pub listener: &'static str,
    pub listener_connects: u64,
    pub lookups_saved: u64,
    pub window_catch_ups: u64,
    pub own_catch_up_reads: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_within_the_minute() {
        let counter = LastMinute::default();
        counter.add(2);
        counter.add(3);
        assert_eq!(counter.total(), 5);
    }
}

//! Per-user token buckets in `chat_rate_limits`, taken in the same statement as the write
//! they guard: no extra round trip, and they hold across every instance.
//!
//! Each guarded statement (`INSERT_MESSAGE`, `INSERT_ROOM`, `INSERT_UPLOAD`) writes the
//! bucket out in full: a `quota` CTE that upserts the (`user_email`, `action`) row, refilled
//! by `refill_per_sec` for each second since its last take and capped at `capacity`, minus
//! the one token taken; the update is skipped, so `quota` has no row, when fewer than one
//! token is there, and the write checks `EXISTS (SELECT 1 FROM quota)`. Two columns then
//! report to [`RateLimit::outcome`]: `tokens_left` (from `quota`) and `tokens_before` (the
//! bucket as it stood before the statement, refilled to now).

use std::time::Duration;

/// A token bucket: `capacity` tokens (the burst), refilled continuously so that `capacity`
/// tokens come back every `window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub action: &'static str,
    pub capacity: u32,
    pub window: Duration,
}

impl RateLimit {
    /// Parses `N/30s`, `N/10m` or `N/1h`; `off` lifts the limit.
    pub fn parse(action: &'static str, raw: &str) -> Result<Self, String> {
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Self {
                action,
                capacity: 1_000_000_000,
                window: Duration::from_secs(1),
            });
        }
        let (count, window) = raw
            .split_once('/')
            .ok_or("expected `N/<seconds>s`, e.g. `30/10s`")?;
        let capacity: u32 = count
            .trim()
            .parse()
            .map_err(|_| "the count must be a whole number")?;
        let window = window.trim();
        let (number, unit) = window.split_at(window.len().saturating_sub(1));
        let seconds: u64 = number
            .parse()
            .map_err(|_| "the window must be like `10s`, `1m` or `1h`")?;
        let seconds = match unit {
            "s" => seconds,
            "m" => seconds * 60,
            "h" => seconds * 3600,
            _ => return Err("the window must end in s, m or h".into()),
        };
        if capacity == 0 || seconds == 0 {
            return Err("count and window must be above zero".into());
        }
        Ok(Self {
            action,
            capacity,
            window: Duration::from_secs(seconds),
        })
    }

    /// Tokens regained per second.
    pub fn refill_per_sec(&self) -> f64 {
        f64::from(self.capacity) / self.window.as_secs_f64()
    }

    pub fn capacity(&self) -> f64 {
        f64::from(self.capacity)
    }

    /// What a guarded statement reported: the tokens left after taking one (`None` when it
    /// was refused) and the bucket before (for `Retry-After`).
    pub fn outcome(
        &self,
        tokens_left: Option<f64>,
        tokens_before: Option<f64>,
    ) -> Result<Quota, Refused> {
        let rate = self.refill_per_sec();
        let reset = |tokens: f64| ((self.capacity() - tokens).max(0.0) / rate).ceil() as u64;
        match tokens_left {
            Some(left) => Ok(Quota {
                limit: self.capacity,
                remaining: left.max(0.0).floor() as u32,
                reset_secs: reset(left),
            }),
            None => {
                let now = tokens_before.unwrap_or(0.0);
                Err(Refused {
                    retry_after: ((1.0 - now) / rate).ceil().max(1.0) as u64,
                    quota: Quota {
                        limit: self.capacity,
                        remaining: 0,
                        reset_secs: reset(now),
                    },
                })
            }
        }
    }
}

/// What a limited route reports in `RateLimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A guarded write refused for an empty bucket: when to retry, and the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: u64,
    pub quota: Quota,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_count_and_window() {
        let limit = RateLimit::parse("post", "30/10s").unwrap();
        assert_eq!(
            (limit.capacity, limit.window),
            (30, Duration::from_secs(10))
        );
        assert_eq!(
            RateLimit::parse("x", "20/1m").unwrap().window,
            Duration::from_secs(60)
        );
        assert_eq!(
            RateLimit::parse("x", "10/1h").unwrap().window,
            Duration::from_secs(3600)
        );
        assert!(RateLimit::parse("x", "off").unwrap().capacity > 1_000_000);
        for bad in ["30", "a/10s", "30/10", "30/10d", "0/1s", "30/0s", ""] {
            assert!(RateLimit::parse("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_bucket_says_when_to_retry() {
        let limit = RateLimit::parse("post", "30/10s").unwrap();
        assert_eq!(
            limit.outcome(Some(29.0), None).unwrap(),
            Quota {
                limit: 30,
                remaining: 29,
                reset_secs: 1
            }
        );
        match limit.outcome(None, Some(0.2)) {
            Err(Refused { retry_after, quota }) => {
                assert_eq!(retry_after, 1);
                assert_eq!(quota.remaining, 0);
                assert_eq!(quota.reset_secs, 10);
            }
            other => panic!("{other:?}"),
        }
        let hourly = RateLimit::parse("room", "10/1h").unwrap();
        assert!(matches!(
            hourly.outcome(None, Some(0.0)),
            Err(Refused {
                retry_after: 360,
                ..
            })
        ));
    }
}

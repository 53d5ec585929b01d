//! Paging parameters for the message list and the stream's resume point.

use super::Invalid;

/// `limit`: 1..=200, default 100. Out of range is an error, never clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimit(i64);

impl PageLimit {
    pub const DEFAULT: Self = Self(100);
    pub const MAX: i64 = 200;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.parse::<i64>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(bad_query("limit", "must be a whole number from 1 to 200")),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A message sequence number given by a client: a whole number, zero or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(i64);

impl Cursor {
    pub fn parse(name: &str, raw: &str) -> Result<Self, Invalid> {
        // Digits only: rejects "+1", " 1", "1.0" and negatives that `parse` might accept.
        if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_query(name, "must be a whole number, zero or more"));
        }
        raw.parse()
            .map(Self)
            .map_err(|_| bad_query(name, "is out of range"))
    }

    pub fn new(seq: i64) -> Self {
        Self(seq.max(0))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Which page of a room's messages to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest `limit` messages.
    Latest(PageLimit),
    /// The newest `limit` messages with `seq < cursor`.
    Before(Cursor, PageLimit),
    /// The oldest `limit` messages with `seq > cursor`.
    After(Cursor, PageLimit),
}

impl Page {
    /// From the `limit`, `before` and `after` query parameters.
    pub fn parse(
        limit: Option<&str>,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<Self, Invalid> {
        let limit = limit
            .map(PageLimit::parse)
            .transpose()?
            .unwrap_or(PageLimit::DEFAULT);
        let before = before.map(|v| Cursor::parse("before", v)).transpose()?;
        let after = after.map(|v| Cursor::parse("after", v)).transpose()?;
        match (before, after) {
            (Some(_), Some(_)) => Err(Invalid::Query("Give `before` or `after`, not both.".into())),
            (Some(b), None) => Ok(Self::Before(b, limit)),
            (None, Some(a)) => Ok(Self::After(a, limit)),
            (None, None) => Ok(Self::Latest(limit)),
        }
    }
}

fn bad_query(name: &str, rule: &str) -> Invalid {
    Invalid::Query(format!("`{name}` {rule}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page from a query string, as the list route reads one.
    fn page(q: &str) -> Result<Page, Invalid> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        Page::parse(get("limit"), get("before"), get("after"))
    }

    #[test]
    fn limit_accepts_1_to_200_only() {
        assert_eq!(page("").unwrap(), Page::Latest(PageLimit(100)));
        assert_eq!(page("limit=200").unwrap(), Page::Latest(PageLimit(200)));
        for bad in [
            "limit=0",
            "limit=201",
            "limit=abc",
            "limit=-1",
            "limit=",
            "limit=1.5",
        ] {
            assert!(page(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_are_non_negative_integers_and_exclusive() {
        assert_eq!(
            page("before=7").unwrap(),
            Page::Before(Cursor(7), PageLimit(100))
        );
        assert_eq!(
            page("after=0&limit=5").unwrap(),
            Page::After(Cursor(0), PageLimit(5))
        );
        for bad in [
            "before=-1",
            "after=x",
            "after=+1",
            "before=1&after=2",
            "after=99999999999999999999",
        ] {
            assert!(page(bad).is_err(), "{bad}");
        }
    }
}

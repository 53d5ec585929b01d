//! Message content, attachments and idempotency keys.

use uuid::Uuid;

use super::Invalid;
use super::invalid;

pub const MAX_CONTENT_CHARS: usize = 4000;
pub const MAX_FILES: usize = 10;

/// 1 to 4000 characters, stored byte-for-byte; blank only when files are attached. No NUL
/// (U+0000): Postgres `text` cannot hold it, so it is refused rather than altered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    pub fn parse(raw: String, has_files: bool) -> Result<Self, Invalid> {
        if raw.chars().count() > MAX_CONTENT_CHARS {
            return Err(invalid(
                "content",
                format!("must be at most {MAX_CONTENT_CHARS} characters"),
            ));
        }
        if raw.contains('\0') {
            return Err(invalid("content", "must not contain NUL (U+0000)"));
        }
        if raw.trim().is_empty() && !has_files {
            return Err(invalid(
                "content",
                "must not be empty unless files are attached",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Up to 10 distinct upload ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileIds(Vec<Uuid>);

impl FileIds {
    pub fn parse(ids: Vec<Uuid>) -> Result<Self, Invalid> {
        if ids.len() > MAX_FILES {
            return Err(invalid(
                "file_ids",
                format!("may hold at most {MAX_FILES} ids"),
            ));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != ids.len() {
            return Err(invalid("file_ids", "must not repeat an id"));
        }
        Ok(Self(ids))
    }

    pub fn as_slice(&self) -> &[Uuid] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's idempotency key for a send.
pub type ClientId = Uuid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_with_nul_is_refused() {
        assert!(MessageContent::parse("a\0b".into(), false).is_err());
        assert!(MessageContent::parse("a\tb\nc".into(), false).is_ok());
    }

    #[test]
    fn content_is_1_to_4000_characters() {
        assert!(MessageContent::parse("😀".repeat(4000), false).is_ok());
        assert!(MessageContent::parse("a".repeat(4001), false).is_err());
        assert!(MessageContent::parse(String::new(), false).is_err());
    }

    #[test]
    fn blank_content_needs_files() {
        assert!(MessageContent::parse(" \n ".into(), false).is_err());
        assert!(MessageContent::parse(" \n ".into(), true).is_ok());
        assert!(MessageContent::parse(String::new(), true).is_ok());
    }

    #[test]
    fn content_is_kept_byte_for_byte() {
        let raw = "  hi\r\n\u{202e}x  ";
        assert_eq!(
            MessageContent::parse(raw.into(), false).unwrap().as_str(),
            raw
        );
    }

    #[test]
    fn at_most_ten_distinct_file_ids() {
        let ids: Vec<Uuid> = (0..11).map(|_| Uuid::new_v4()).collect();
        assert!(FileIds::parse(ids[..10].to_vec()).is_ok());
        assert!(FileIds::parse(ids).is_err());
        let id = Uuid::new_v4();
        assert!(FileIds::parse(vec![id, id]).is_err());
    }
}

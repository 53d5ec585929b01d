//! Room identifiers and display names.

use super::Invalid;
use super::invalid;

/// `^[A-Za-z0-9_-]{1,64}$`: safe in paths, object keys and channel names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

impl RoomId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid("id", "must be 1 to 64 letters, digits, `_` or `-`"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who may see a room: every signed-in user, or its owner and members only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            _ => Err(invalid("visibility", "must be `public` or `private`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// 1 to 100 characters after trimming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if (1..=100).contains(&chars) && !trimmed.chars().any(char::is_control) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(invalid(
                "name",
                "must be 1 to 100 characters with no control characters",
            ))
        }
    }

    pub fn from_id(id: &RoomId) -> Self {
        Self(id.0.clone())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_follow_the_pattern() {
        for ok in ["general", "a", "A-b_9", &"x".repeat(64)] {
            assert!(RoomId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a.b", &"x".repeat(65), "../x"] {
            assert!(RoomId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_names_are_1_to_100_characters() {
        assert!(RoomName::parse(&"é".repeat(100)).is_ok());
        assert!(RoomName::parse(&"é".repeat(101)).is_err());
        assert!(RoomName::parse("   ").is_err());
        assert!(RoomName::parse("a\u{0}b").is_err());
        assert_eq!(RoomName::parse("  General ").unwrap().as_str(), "General");
    }
}

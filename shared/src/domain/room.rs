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

    /// A fresh id nobody can guess: 128 random bits from the thread's CSPRNG (ChaCha,
    /// seeded by the OS), as 22 characters of unpadded base64url. Ids are global, so an
    /// explicit one can be probed (`409 room_exists`); this one cannot.
    pub fn generate() -> Self {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bits: u128 = rand::random();
        // 22 sextets carry 132 bits: the top four are always zero.
        let id = (0..22)
            .rev()
            .map(|i| ALPHABET[((bits >> (i * 6)) & 0x3f) as usize] as char)
            .collect();
        Self(id)
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
    fn generated_room_ids_are_valid_22_character_ids_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| RoomId::generate().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 22, "{id}");
            assert_eq!(RoomId::parse(id).unwrap().as_str(), id);
        }
        // Every position but the first (which holds the top two bits) takes all 64 symbols.
        let last: std::collections::HashSet<char> =
            ids.iter().map(|id| id.chars().last().unwrap()).collect();
        assert!(last.len() > 50, "{last:?}");
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

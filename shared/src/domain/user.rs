//! The authenticated caller.

use super::Invalid;
use super::invalid;

/// A signed-in user; the email always comes from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub email: String,
}

/// An email address as the API compares them: trimmed, ASCII letters lower-cased, exactly one
/// `@` with text on both sides, at most 320 bytes. Only ASCII is case-folded: every other
/// character is compared byte for byte, so `\u{212A}ate@…` (KELVIN SIGN) is not `kate@…`
/// (Unicode lower-casing maps it to ASCII `k`, which would merge two identities).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_ascii_lowercase();
        let ok = email.len() <= 320
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(email))
        } else {
            Err(invalid("email", "must be an email address"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ascii_is_case_folded() {
        assert_eq!(
            Email::parse("\u{212A}ate@example.com").unwrap().as_str(),
            "\u{212A}ate@example.com"
        );
        assert_ne!(
            Email::parse("\u{212A}ate@example.com").unwrap(),
            Email::parse("kate@example.com").unwrap()
        );
        assert_eq!(Email::parse("ÉVE@X.COM").unwrap().as_str(), "Éve@x.com");
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse(" Bob@Example.COM ").unwrap().as_str(),
            "bob@example.com"
        );
        for bad in [
            "",
            "bob",
            "@x.com",
            "bob@",
            "a b@x.com",
            "a@b@c",
            "a\0b@x.com",
            &format!("{}@x.com", "a".repeat(320)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}

//! A reaction's emoji.

use super::Invalid;
use super::invalid;

/// One emoji, as Unicode lists it (skin tones and other variants included), stored as the
/// emoji itself. `:name:` (a GitHub shortcode such as `:+1:` or `:tada:`) names the same
/// emoji. With or without the emoji presentation selector (U+FE0F), one emoji is one
/// reaction: it is stored in Unicode's fully-qualified form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emoji(&'static str);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let found = match raw.strip_prefix(':').and_then(|r| r.strip_suffix(':')) {
            Some(name) if !name.is_empty() => emojis::get_by_shortcode(name),
            _ => emojis::get(raw),
        };
        found.map(|e| Self(e.as_str())).ok_or_else(|| {
            invalid(
                "emoji",
                "must be one emoji (e.g. 👍, percent-encoded in the path) or a shortcode such as `:+1:`",
            )
        })
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_and_shortcodes_are_one_reaction() {
        assert_eq!(Emoji::parse("👍").unwrap().as_str(), "👍");
        assert_eq!(Emoji::parse(":+1:").unwrap().as_str(), "👍");
        assert_eq!(Emoji::parse(":tada:").unwrap().as_str(), "🎉");
        assert_eq!(Emoji::parse("👍🏽").unwrap().as_str(), "👍🏽");
        // ZWJ sequences are one emoji.
        assert_eq!(Emoji::parse("👩‍👩‍👧").unwrap().as_str(), "👩‍👩‍👧");
        // With and without U+FE0F: the same, fully qualified.
        assert_eq!(Emoji::parse("❤").unwrap(), Emoji::parse("❤️").unwrap());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "a",
            "ab",
            "👍👍",
            "👍 ",
            ":",
            "::",
            ":nope-not-a-code:",
            "<script>",
            "1",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }
}

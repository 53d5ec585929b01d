//! What a search looks for, and the text search configuration it is parsed with.

use super::Invalid;

/// `q` of a search: 1 to 200 characters, not all white space, no NUL (U+0000, which
/// Postgres `text` cannot hold). Read by `websearch_to_tsquery`, which never fails: a quoted
/// phrase, `or`, and `-word` have their web-search meanings, and any other text is words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery(String);

impl SearchQuery {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: Option<&str>) -> Result<Self, Invalid> {
        let raw = raw.unwrap_or_default();
        if raw.trim().is_empty() {
            return Err(Invalid::Query(
                "`q` must name something to search for.".into(),
            ));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::Query(format!(
                "`q` must be at most {} characters.",
                Self::MAX_CHARS
            )));
        }
        if raw.contains('\0') {
            return Err(Invalid::Query("`q` must not contain NUL (U+0000).".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `SEARCH_LANGUAGE`: one of the text search configurations every Postgres ships
/// (`SELECT cfgname FROM pg_ts_config` on a fresh cluster). It must name the configuration
/// the search index was built with (`migrations/20261203000001_search.sql`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchLanguage(&'static str);

impl SearchLanguage {
    pub const BUILT_IN: [&'static str; 29] = [
        "simple",
        "arabic",
        "armenian",
        "basque",
        "catalan",
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "greek",
        "hindi",
        "hungarian",
        "indonesian",
        "irish",
        "italian",
        "lithuanian",
        "nepali",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "serbian",
        "spanish",
        "swedish",
        "tamil",
        "turkish",
        "yiddish",
    ];

    pub const DEFAULT: Self = Self("simple");

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let wanted = raw.trim().to_ascii_lowercase();
        Self::BUILT_IN
            .iter()
            .find(|name| **name == wanted)
            .map(|name| Self(name))
            .ok_or_else(|| {
                Invalid::Field(format!(
                    "`SEARCH_LANGUAGE` must be one of {}.",
                    Self::BUILT_IN.join(", ")
                ))
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
    fn a_query_must_name_something() {
        for blank in [None, Some(""), Some("   "), Some("\t\n")] {
            assert!(SearchQuery::parse(blank).is_err(), "{blank:?}");
        }
        assert_eq!(SearchQuery::parse(Some(" hi ")).unwrap().as_str(), " hi ");
    }

    #[test]
    fn a_query_is_at_most_200_characters() {
        assert!(SearchQuery::parse(Some(&"é".repeat(200))).is_ok());
        assert!(SearchQuery::parse(Some(&"é".repeat(201))).is_err());
    }

    #[test]
    fn a_query_holds_no_nul() {
        assert!(SearchQuery::parse(Some("a\0b")).is_err());
    }

    #[test]
    fn a_language_is_a_built_in_configuration() {
        assert_eq!(
            SearchLanguage::parse("English").unwrap().as_str(),
            "english"
        );
        assert_eq!(
            SearchLanguage::parse("simple").unwrap(),
            SearchLanguage::DEFAULT
        );
        for bad in ["", "englsh", "pg_catalog.english", "simple;drop"] {
            assert!(SearchLanguage::parse(bad).is_err(), "{bad}");
        }
    }
}

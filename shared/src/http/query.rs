//! Query-string parsing: decoded pairs, with repeated or unknown keys handled by the caller.

use super::ApiError;

/// The decoded `key=value` pairs of a query string.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `key`; a key given twice is a 400 rather than a silent pick.
    pub fn get(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("The query parameter `{key}` is given more than once."),
            ));
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_decoded() {
        let q = Query::parse(Some("a=x%20y&b=1"));
        assert_eq!(q.get("a").unwrap(), Some("x y"));
        assert_eq!(q.get("c").unwrap(), None);
    }

    #[test]
    fn a_repeated_key_is_rejected() {
        assert!(Query::parse(Some("limit=1&limit=2")).get("limit").is_err());
    }
}

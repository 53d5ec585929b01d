//! The authenticated caller.

/// A signed-in user; the email always comes from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub email: String,
}

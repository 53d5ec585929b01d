//! Validated input types. Handlers hold only these, so no check can be forgotten.

mod emoji;
mod message;
mod page;
mod room;
mod search;
mod upload;
mod user;

pub use emoji::Emoji;
pub use message::{ClientId, FileIds, MessageContent};
pub use page::{Cursor, Page, PageLimit};
pub use room::{RoomId, RoomName, Visibility};
pub use search::{SearchLanguage, SearchQuery};
pub use upload::{AllowedTypes, ContentType, FileName, UploadSize, served_inline};
pub use user::{Email, User};

/// Why an input was refused. The domain knows nothing of HTTP: the edge maps each kind to
/// its status and code once (`http::error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A field of a body or path (400 `invalid_field`).
    #[error("{0}")]
    Field(String),
    /// A query parameter (400 `invalid_query`).
    #[error("{0}")]
    Query(String),
    /// A declared upload over the size limit (413 `upload_too_large`).
    #[error("{0}")]
    UploadTooLarge(String),
}

fn invalid(field: &str, message: impl std::fmt::Display) -> Invalid {
    Invalid::Field(format!("`{field}` {message}."))
}

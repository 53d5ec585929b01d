//! Validated input types. Handlers hold only these, so no check can be forgotten.

mod message;
mod page;
mod room;
mod upload;
mod user;

pub use message::{ClientId, FileIds, MessageContent};
pub use page::{Cursor, Page, PageLimit};
pub use room::{RoomId, RoomName, Visibility};
pub use upload::{AllowedTypes, ContentType, FileName, UploadSize};
pub use user::{Email, User};

use crate::http::ApiError;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_field", format!("`{field}` {message}."))
}

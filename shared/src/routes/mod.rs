//! Route handlers, one module per route family. Each takes parsed input and the
//! authenticated user, and returns a response or an [`ApiError`](crate::http::ApiError).

pub mod cleanup;
pub mod health;
pub mod members;
pub mod messages;
pub mod rooms;
pub mod stream;
pub mod uploads;
pub mod views;

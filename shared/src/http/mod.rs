//! HTTP plumbing shared by every function: routing, error rendering, bodies, SSE framing.

pub mod body;
pub mod cors;
pub mod error;
pub mod query;
pub mod router;
pub mod sse;

pub use body::{Body, BoxError, json_response};
pub use error::ApiError;

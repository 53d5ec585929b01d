//! HTTP plumbing shared by every function: the router and its layers, extractors, error
//! rendering, bodies, CORS.

pub mod body;
pub mod cors;
pub mod edge;
pub mod error;
pub mod extract;
pub mod latency;
pub mod query;
pub mod router;

pub use body::{Body, BoxError, json_response};
pub use error::ApiError;

//! The chat API's library: everything the function binaries in `api/` share.
//!
//! Folders by concern: `http/` (routing, errors, bodies, SSE framing), `routes/` (one
//! module per route family), `db/` (pool, migrations and queries), `storage/` (R2/S3
//! presigning and checks), `auth/` (bearer tokens), `domain/` (validated input types).

pub mod app;
pub mod archive;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod host;
pub mod http;
pub mod media;
pub mod realtime;
pub mod routes;
pub mod storage;
pub mod telemetry;
pub mod views;

pub use app::App;
pub use config::Config;
pub use http::router::Function;
pub use routes::table as route_table;

//! Integration tests: the real app over HTTP, real Postgres, a real S3-compatible server.

mod auth;
mod bad_input;
mod failure;
mod helpers;
mod listing;
mod posting;
mod rooms;
mod sse_client;
mod stream;
mod uploads;

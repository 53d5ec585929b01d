//! Integration tests: the real app over HTTP, real Postgres, a real S3-compatible server.

mod auth;
mod bad_input;
mod cleanup;
mod conversations;
mod cors;
mod exactly_once;
mod failure;
mod hardening;
mod helpers;
mod jwks;
mod lambda;
mod limits;
mod listing;
mod openapi;
mod posting;
mod presence;
mod private_rooms;
mod realtime;
mod rooms;
mod safe_files;
mod security;
mod sse_client;
mod static_files;
mod storm;
mod stream;
mod uploads;

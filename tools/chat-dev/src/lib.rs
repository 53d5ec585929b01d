//! The local dev kit, a crate of its own beside the product: a throwaway PostgreSQL
//! cluster run from the installed server binaries, an in-process S3-compatible server that
//! verifies SigV4 signatures, the configuration that points at them (`stack`) and the
//! all-routes dev server (`server`), so the dev server and the tests need no external
//! services. Binaries: `dev-server` (`cargo dev`) and `migrate` (`cargo migrate`).

pub mod hyper_errors;
pub mod postgres;
pub mod s3;
pub mod server;
pub mod stack;
pub mod token;

pub use postgres::EmbeddedPostgres;
pub use s3::EmbeddedS3;

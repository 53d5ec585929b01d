//! `GET /api/rooms/{room}/stream` (Server-Sent Events): a thin entry point; the handler lives in `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    shared::vercel::run(app, shared::Function::Stream).await
}

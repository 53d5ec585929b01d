//! `GET /api/rooms` and `POST /api/rooms`: a thin entry point; the handler lives in `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    shared::vercel::run(app, shared::Function::Rooms).await
}

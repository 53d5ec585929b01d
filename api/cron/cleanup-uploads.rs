//! `GET /api/cron/cleanup-uploads` (Vercel Cron): a thin entry point; the handler lives in
//! `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    shared::vercel::run(app, shared::Function::CleanupUploads).await
}

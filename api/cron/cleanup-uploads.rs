//! `GET /api/cron/cleanup-uploads` (Vercel Cron): a thin entry point; the handler lives in
//! `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::host::main(shared::Function::CleanupUploads).await
}

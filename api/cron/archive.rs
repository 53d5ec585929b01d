//! `GET /api/cron/archive` (Vercel Cron): a thin entry point; the handler lives in
//! `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::host::main(shared::Function::Archive).await
}

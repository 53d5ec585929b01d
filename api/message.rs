//! `PATCH|DELETE /api/rooms/{room}/messages/{message}` and
//! `PUT|DELETE /api/rooms/{room}/messages/{message}/reactions/{emoji}` and
//! `POST /api/rooms/{room}/typing`: a thin entry point; the handlers live in `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::host::main(shared::Function::Message).await
}

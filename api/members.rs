//! `GET|POST /api/rooms/{room}/members` and `DELETE /api/rooms/{room}/members/{email}`: a thin
//! entry point; the handler lives in `shared`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    shared::host::main(shared::Function::Members).await
}

//! `chat-bench`: the benchmark tool (see BENCHMARKS.md). `cargo chat-bench --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chat_bench::main().await
}

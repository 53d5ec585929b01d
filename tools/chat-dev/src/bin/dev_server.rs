//! The local dev server: every route on `http://localhost:$PORT` (default 3000). With
//! nothing configured it starts a throwaway Postgres and an in-process S3 server.

use anyhow::Context;
use chat_dev::server::serve;
use chat_dev::stack::DevStack;
use chat_dev::token::mint_token;
use shared::{App, db, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A local `.env`, if any, fills in what the shell does not set.
    let _ = dotenvy::dotenv();
    telemetry::init();
    let stack = DevStack::from_env().await?;
    db::migrate(&stack.config.database)
        .await
        .context("migrate the database")?;
    let app = App::new(stack.config.clone()).await?;

    let port: u16 = match std::env::var("PORT") {
        Ok(p) if !p.trim().is_empty() => p.trim().parse().context("PORT must be a port number")?,
        _ => 3000,
    };
    let listener = listen(port).with_context(|| format!("listen on port {port}"))?;
    let token = mint_token(&stack.config.auth, "dev@example.com", 7 * 24 * 3600)?;

    println!("chat API dev server on http://localhost:{port}");
    match &stack.postgres {
        Some(pg) => println!(
            "  database: throwaway Postgres at {} (gone when this stops)",
            pg.url()
        ),
        None => println!("  database: DATABASE_URL"),
    }
    if let Some(replica) = &stack.replica {
        println!(
            "  replica:  streaming replica at {} (DEV_READ_REPLICA; pages and catch-up read there)",
            replica.url()
        );
    }
    match &stack.s3 {
        Some(s3) => println!(
            "  storage:  in-process S3 at {} (bucket {})",
            s3.endpoint, s3.bucket
        ),
        None => println!("  storage:  S3_ENDPOINT"),
    }
    println!("  dev token (dev@example.com, 7 days):\n    {token}");
    println!(
        "  more tokens: curl -s -X POST localhost:{port}/api/dev/token -d '{{\"email\":\"you@example.com\"}}'"
    );

    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(stack);
    Ok(())
}

/// A listener on `port` with a deep accept queue (`LISTEN_BACKLOG`, capped by the kernel's
/// `somaxconn`): a thousand browsers reconnecting at once overflow tokio's default of 1,024
/// while the server is busy, and each dropped SYN costs its client a 1 s retransmit.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    const LISTEN_BACKLOG: u32 = 8192;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind((std::net::Ipv4Addr::UNSPECIFIED, port).into())?;
    socket.listen(LISTEN_BACKLOG)
}

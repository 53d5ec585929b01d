//! The public HTTP API as the benchmark uses it: tokens, rooms, posts, pages and health.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

/// How long minted tokens live: longer than any run.
const TOKEN_TTL_SECS: i64 = 6 * 3600;
/// A request that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where tokens come from: one given token for everyone, or minted per simulated user.
#[derive(Clone)]
pub enum Tokens {
    Fixed(String),
    Mint(Minter),
}

/// Mints HS256 tokens with an `email` claim, as the dev kit's `chat_dev::token::mint_token` does.
#[derive(Clone)]
pub struct Minter {
    pub secret: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl Tokens {
    /// The token of simulated user `who` (e.g. `sub-17`).
    pub fn for_user(&self, who: &str) -> anyhow::Result<String> {
        match self {
            Self::Fixed(token) => Ok(token.clone()),
            Self::Mint(minter) => minter.mint(&format!("bench-{who}@bench.example")),
        }
    }
}

impl Minter {
    pub fn mint(&self, email: &str) -> anyhow::Result<String> {
        let exp = chrono::Utc::now().timestamp() + TOKEN_TTL_SECS;
        let mut claims = serde_json::json!({ "email": email, "exp": exp });
        if let Some(iss) = &self.issuer {
            claims["iss"] = iss.clone().into();
        }
        if let Some(aud) = &self.audience {
            claims["aud"] = aud.clone().into();
        }
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )?)
    }
}

/// One server under test.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub tokens: Tokens,
}

/// A request the server answered with an unexpected status.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: String = self.body.chars().take(300).collect();
        write!(f, "HTTP {}: {body}", self.status)?;
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            f.write_str(
                " (a per-user rate limit of the server: raise RATE_LIMIT_POSTS / RATE_LIMIT_ROOMS \
                 on the server under test for benchmarks)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

/// An HTTP/1.1 client that keeps one TCP connection per concurrent request, like browsers'
/// `EventSource` over HTTP/1.1.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?)
}

impl Api {
    pub fn new(base: &str, tokens: Tokens) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client()?,
            tokens,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /api/health`.
    pub async fn health(&self) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(self.url("/api/health"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {}/api/health", self.base))?;
        json_or_error(response).await
    }

    /// `"connected"`, `"disconnected"` or `"off"`: the server's NOTIFY listener.
    pub async fn listener_mode(&self) -> anyhow::Result<String> {
        let health = self.health().await?;
        Ok(health["streams"]["listener"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned())
    }

    /// `streams.statements_total` from health: statements the hub sent since start.
    pub async fn hub_statements(&self) -> anyhow::Result<Option<u64>> {
        Ok(self.health().await?["streams"]["statements_total"].as_u64())
    }

    /// `streams.open_streams` from health.
    pub async fn open_streams(&self) -> anyhow::Result<Option<u64>> {
        Ok(self.health().await?["streams"]["open_streams"].as_u64())
    }

    /// `POST /api/rooms`; a room that already exists is fine.
    pub async fn create_room(&self, id: &str) -> anyhow::Result<()> {
        // An owner per room: per-user rate limits on room creation never bind.
        let token = self.tokens.for_user(&format!("owner-{id}"))?;
        let response = self
            .http
            .post(self.url("/api/rooms"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "id": id, "name": id }).to_string())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("POST /api/rooms")?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        json_or_error(response).await.map(|_| ())
    }

    /// `POST /api/rooms/{room}/messages`; the stored message.
    pub async fn post_message(
        &self,
        room: &str,
        token: &str,
        content: &str,
    ) -> anyhow::Result<Posted> {
        let body = serde_json::json!({ "content": content, "client_id": Uuid::new_v4() });
        let response = self
            .http
            .post(self.url(&format!("/api/rooms/{room}/messages")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("POST messages")?;
        if response.status() != StatusCode::CREATED {
            return Err(http_error(response).await.into());
        }
        Posted::from_json(&json_or_error(response).await?)
    }

    /// `PATCH /api/rooms/{room}/messages/{id}` (as its author); the edited message.
    pub async fn edit_message(
        &self,
        room: &str,
        id: &str,
        token: &str,
        content: &str,
    ) -> anyhow::Result<Posted> {
        let body = serde_json::json!({ "content": content });
        let response = self
            .http
            .patch(self.url(&format!("/api/rooms/{room}/messages/{id}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("PATCH message")?;
        if response.status() != StatusCode::OK {
            return Err(http_error(response).await.into());
        }
        Posted::from_json(&json_or_error(response).await?)
    }

    /// `POST /api/rooms/{room}/messages` with a fresh `client_id`; the stored message's id.
    /// Needs no `seq` in the answer (the plain-insert baseline has none).
    pub async fn post_for_id(
        &self,
        room: &str,
        token: &str,
        content: &str,
    ) -> anyhow::Result<Uuid> {
        let body = serde_json::json!({ "content": content, "client_id": Uuid::new_v4() });
        let request = self
            .http
            .post(self.url(&format!("/api/rooms/{room}/messages")))
            .header("content-type", "application/json")
            .body(body.to_string());
        let message = self.send(request, token, StatusCode::CREATED).await?;
        message["id"]
            .as_str()
            .and_then(|id| Uuid::try_parse(id).ok())
            .context("the posted message has no id")
    }

    /// `PUT` (`add`) or `DELETE …/messages/{id}/reactions/{emoji}`.
    pub async fn react(
        &self,
        room: &str,
        id: Uuid,
        token: &str,
        emoji: &str,
        add: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!(
            "/api/rooms/{room}/messages/{id}/reactions/{}",
            percent_encode(emoji)
        ));
        let request = if add {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        self.send(request, token, StatusCode::OK).await.map(|_| ())
    }

    /// `DELETE /api/rooms/{room}/messages/{id}`.
    pub async fn delete_message(&self, room: &str, id: Uuid, token: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .delete(self.url(&format!("/api/rooms/{room}/messages/{id}")));
        self.send(request, token, StatusCode::OK).await.map(|_| ())
    }

    /// Sends with the token; the JSON answer when the status is `expected`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
        expected: StatusCode,
    ) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        if response.status() != expected {
            return Err(http_error(response).await.into());
        }
        json_or_error(response).await
    }

    /// `GET /api/rooms/{room}/messages?{query}`; the number of messages in the page.
    pub async fn list_messages(
        &self,
        room: &str,
        token: &str,
        query: &str,
    ) -> anyhow::Result<usize> {
        let response = self
            .http
            .get(self.url(&format!("/api/rooms/{room}/messages?{query}")))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("GET messages")?;
        let page = json_or_error(response).await?;
        Ok(page["messages"].as_array().map_or(0, Vec::len))
    }
}

impl Api {
    /// `GET /api/rooms/{room}/search?q=…&{rest}`: how many messages the page holds, and
    /// `has_more`.
    pub async fn search(
        &self,
        room: &str,
        token: &str,
        q: &str,
        rest: &str,
    ) -> anyhow::Result<(usize, bool)> {
        let response = self
            .http
            .get(self.url(&format!(
                "/api/rooms/{room}/search?q={}&{rest}",
                percent_encode(q)
            )))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("GET search")?;
        let page = json_or_error(response).await?;
        Ok((
            page["messages"].as_array().map_or(0, Vec::len),
            page["has_more"].as_bool().unwrap_or(false),
        ))
    }
}

/// Every byte but ASCII letters and digits as `%XX` (a path segment).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Api {
    /// `GET /api/rooms`: the `rooms` array.
    pub async fn list_rooms(&self, token: &str) -> anyhow::Result<Vec<Value>> {
        let response = self
            .http
            .get(self.url("/api/rooms"))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("GET /api/rooms")?;
        let list = json_or_error(response).await?;
        list["rooms"]
            .as_array()
            .cloned()
            .context("GET /api/rooms has no rooms array")
    }
}

/// The body as JSON when the status is a success; otherwise an [`HttpError`].
pub async fn json_or_error(response: reqwest::Response) -> anyhow::Result<Value> {
    if !response.status().is_success() {
        return Err(http_error(response).await.into());
    }
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).context("the response is not JSON")
}

pub async fn http_error(response: reqwest::Response) -> HttpError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    HttpError { status, body }
}

/// Fails unless the server answers health with 200.
pub async fn check_reachable(api: &Api) -> anyhow::Result<()> {
    match api.health().await {
        Ok(_) => Ok(()),
        Err(err) => bail!(
            "{} does not answer GET /api/health ({err:#}); start a server (`cargo dev`) or pass --url",
            api.base
        ),
    }
}

/// What a post or an edit answered: the message's id, seq, and the event that changed it
/// last (its stream `id:`).
#[derive(Clone, Debug)]
pub struct Posted {
    pub id: String,
    pub seq: i64,
    pub event_id: i64,
}

impl Posted {
    fn from_json(message: &Value) -> anyhow::Result<Self> {
        Ok(Self {
            id: message["id"]
                .as_str()
                .context("the message has no id")?
                .to_owned(),
            seq: message["seq"].as_i64().context("the message has no seq")?,
            // A server from before change events (issue 11) has no `event_id`: its
            // stream ids are the messages' seqs, so the bench can still compare it.
            event_id: message["event_id"]
                .as_i64()
                .or_else(|| message["seq"].as_i64())
                .context("the message has no event_id")?,
        })
    }
}

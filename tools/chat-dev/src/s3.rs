//! An in-process S3-compatible server for local dev and tests, built on `s3s` (request
//! parsing and SigV4 verification, header auth and presigned URLs alike) and `s3s-fs`
//! (objects as files: bucket `b` is the directory `<root>/b`).
//!
//! It runs on its own thread with its own tokio runtime, so it works whatever runtime
//! the caller has, and outlives none: tests typically create a runtime per test.
//! A thin wrapper answers CORS, because browsers PUT to presigned URLs from another
//! origin.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow, ensure};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    HeaderMap, HeaderValue, ORIGIN, VARY,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A running S3-compatible server (see the module docs). Dropping it stops the server;
/// a temp root is removed, a caller's root is left alone.
pub struct EmbeddedS3 {
    /// `http://127.0.0.1:PORT`; use path-style addressing.
    pub endpoint: String,
    /// Any region verifies; this is what clients should sign with.
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Declared last so it is removed only after the server thread has finished.
    _tempdir: Option<TempDir>,
}

impl EmbeddedS3 {
    /// Starts a server on a free 127.0.0.1 port with fresh random credentials and an
    /// (empty, unless `root` already holds it) bucket named `bucket`. `root` is where
    /// objects are stored; `None` means a fresh temp dir, removed on drop.
    ///
    /// Returns once the server is listening and the bucket exists.
    pub fn start(bucket: &str, root: Option<PathBuf>) -> Result<Self> {
        ensure!(
            is_valid_bucket_name(bucket),
            "invalid S3 bucket name {bucket:?}"
        );

        let (root, tempdir) = match root {
            Some(root) => {
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("failed to create {}", root.display()))?;
                (root, None)
            }
            None => {
                let tempdir = tempfile::Builder::new()
                    .prefix("chat-s3-")
                    .tempdir()
                    .context("failed to create a temp dir for S3 objects")?;
                (tempdir.path().to_owned(), Some(tempdir))
            }
        };
        // s3s-fs maps a bucket to a directory under its root; creating it here means no
        // CreateBucket round trip and no dependency on the server being up yet.
        let bucket_dir = root.join(bucket);
        std::fs::create_dir_all(&bucket_dir)
            .with_context(|| format!("failed to create {}", bucket_dir.display()))?;

        let access_key_id = format!("AKIA{}", random_string(16).to_uppercase());
        let secret_access_key = random_string(40);

        // s3s_fs::Error implements only Debug.
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|err| anyhow!("failed to open {} as S3 storage: {err:?}", root.display()))?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(
                access_key_id.clone(),
                secret_access_key.clone(),
            ));
            builder.build()
        };

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to build the S3 server's runtime")?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("failed to bind the S3 server")?;
        let addr = listener
            .local_addr()
            .context("failed to bind the S3 server")?;
        listener
            .set_nonblocking(true)
            .context("failed to bind the S3 server")?;
        let listener = {
            // Register the socket with the server's own runtime, not the caller's.
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).context("failed to bind the S3 server")?
        };

        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("embedded-s3-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(serve(listener, service, shutdown_rx));
                // Requests still in flight are cut off; nothing waits for them.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })
            .context("failed to start the S3 server thread")?;

        Ok(Self {
            endpoint: format!("http://{addr}"),
            region: "us-east-1".to_owned(),
            bucket: bucket.to_owned(),
            access_key_id,
            secret_access_key,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _tempdir: tempdir,
        })
    }
}

impl std::fmt::Debug for EmbeddedS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The thread only finishes its accept loop and drops its runtime: quick.
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    service: S3Service,
    mut shutdown: oneshot::Receiver<()>,
) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // E.g. EMFILE; back off instead of spinning.
                    tracing::warn!("embedded s3: accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let service = service.clone();
        let conn = builder
            .serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req| with_cors(service.clone(), req)),
            )
            .into_owned();
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, "embedded s3: connection error: {err}");
            }
        });
    }
}

/// Answers CORS preflights itself and adds CORS headers to every S3 response.
async fn with_cors(
    service: S3Service,
    req: Request<Incoming>,
) -> Result<Response<s3s::Body>, s3s::HttpError> {
    let origin = req.headers().get(ORIGIN).cloned();
    if req.method() == Method::OPTIONS {
        let mut resp = Response::new(s3s::Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let headers = resp.headers_mut();
        add_cors_headers(headers, origin);
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PUT, HEAD, POST, DELETE"),
        );
        let allow_headers = req
            .headers()
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600"));
        return Ok(resp);
    }
    let overrides = if req.method() == Method::GET {
        response_overrides(req.uri().query())
    } else {
        Vec::new()
    };
    let mut resp = service.call(req.map(s3s::Body::from)).await?;
    if resp.status().is_success() {
        // s3s-fs ignores `response-content-*` on a (signed) GET; S3 and R2 apply them, and
        // the API relies on them to force downloads, so do as they do.
        for (name, value) in overrides {
            resp.headers_mut().insert(name, value);
        }
    }
    add_cors_headers(resp.headers_mut(), origin);
    Ok(resp)
}

/// The response headers a GET's `response-content-type` / `response-content-disposition`
/// query parameters ask for.
fn response_overrides(query: Option<&str>) -> Vec<(http::HeaderName, HeaderValue)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter_map(|(key, value)| {
            let name = match key.as_ref() {
                "response-content-type" => http::header::CONTENT_TYPE,
                "response-content-disposition" => http::header::CONTENT_DISPOSITION,
                _ => return None,
            };
            Some((name, HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}

fn add_cors_headers(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    match origin {
        Some(origin) => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            // The answer depends on the request's Origin; keep caches from mixing them up.
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
    // Multipart uploads from a browser need each part's ETag.
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The S3 rules that matter here: the name becomes a directory under the root.
fn is_valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

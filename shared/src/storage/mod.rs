//! Object storage (Cloudflare R2, or any S3-compatible server): presigned PUTs and GETs,
//! the HEAD check that an upload really arrived, and the copy that fixes an attached
//! file's bytes.
//!
//! An upload lives at its staging key (`rooms/{room}/{id}.{ext}`, see [`Storage::object_key`])
//! and its presigned PUT stays valid for [`UPLOAD_URL_TTL`]. When a message attaches it, the
//! send copies it to [`attached_key`] (`attached/` + the staging key), a key no presigned
//! PUT ever names, on the condition that its ETag is still the one the HEAD check saw; the
//! message records that key, and the staging object is deleted after the send commits. So
//! a PUT through the old URL after the send changes nothing anyone downloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};

use crate::config::StorageConfig;
use crate::domain::{ContentType, RoomId, UploadSize};

/// How long a presigned PUT stays valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a presigned GET in a message stays valid.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// How long a presigned GET is reused before a fresh one is signed: a served url always has
/// at least five of its six hours left.
const DOWNLOAD_URL_REUSE: Duration = Duration::from_secs(60 * 60);
/// Presigned GETs remembered per process.
const DOWNLOAD_URL_CACHE: usize = 10_000;

/// The S3 client and bucket, built once per process. Building it does no I/O.
#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    bucket: String,
    public_base_url: Option<String>,
    /// Presigned GETs by object key: signing costs ~100 µs, and a page of messages or a
    /// stream's catch-up would otherwise sign the same files again and again.
    download_urls: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

/// A presigned request the browser sends as is.
#[derive(Debug)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// What a HEAD found.
#[derive(Debug, PartialEq, Eq)]
pub enum ObjectState {
    Missing,
    /// With the ETag storage reported (always, on S3 and R2).
    Present {
        size: i64,
        etag: Option<String>,
    },
}

/// Where attached files are copied to. Keys under it are never presigned for a PUT
/// ([`Storage::presign_put`] only signs [`Storage::object_key`]s, which start with `rooms/`).
/// `chat_post` (migrations/20261201000002_log_writes.sql) writes the same expression,
/// `'attached/' || object_key`, into `chat_message_files`.
pub const ATTACHED_PREFIX: &str = "attached/";

/// Where an attached image's thumbnail is stored: beside the file, under `attached/`.
pub fn thumbnail_key(attached_key: &str) -> String {
    format!("{attached_key}.thumb.webp")
}

/// The key an upload's bytes are copied to when a message attaches it.
pub fn attached_key(staging_key: &str) -> String {
    format!("{ATTACHED_PREFIX}{staging_key}")
}

/// An upload a send attaches: its id, its staging key, and the ETag its HEAD check saw.
#[derive(Debug, Clone, Copy)]
pub struct Staged<'a> {
    pub id: uuid::Uuid,
    pub key: &'a str,
    pub etag: Option<&'a str>,
}

/// Why a send's files could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("upload {0} changed after it was checked")]
    Changed(uuid::Uuid),
    #[error("upload {0} is no longer in storage")]
    Missing(uuid::Uuid),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

/// What copying an upload to its attached key found.
#[derive(Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// Copied: the attached key holds the bytes the HEAD check saw.
    Pinned,
    /// The staging object's ETag is no longer the one seen (it was overwritten since).
    Changed,
    /// The staging object is gone.
    Missing,
}

impl Storage {
    pub async fn new(config: &StorageConfig) -> Self {
        let credentials = Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            None,
            None,
            "chat-api-config",
        );
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .endpoint_url(&config.endpoint)
            .load()
            .await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            // Checksums only when an operation requires them: presigned URLs that carry
            // `x-amz-checksum-*` break R2 and browser uploads.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
            public_base_url: config.public_base_url.clone(),
            download_urls: Arc::default(),
        }
    }

    /// The server-chosen key: `rooms/{room}/{upload id}{.ext}`. Nothing the uploader typed
    /// becomes a path segment: the room id is validated, the id is ours, and the extension
    /// comes from the (allow-listed) content type. The file name travels as metadata.
    pub fn object_key(room: &RoomId, upload_id: uuid::Uuid, content_type: &ContentType) -> String {
        format!(
            "rooms/{}/{}{}",
            room.as_str(),
            upload_id,
            content_type.extension()
        )
    }

    /// A presigned PUT whose signature covers `content-type` and `content-length`, so
    /// storage refuses a body of another size or type.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &ContentType,
        size: UploadSize,
    ) -> anyhow::Result<PresignedPut> {
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type.as_str())
            .content_length(size.get() as i64)
            .presigned(PresigningConfig::expires_in(UPLOAD_URL_TTL)?)
            .await
            .context("presign upload")?;
        let headers = presigned
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        Ok(PresignedPut {
            url: presigned.uri().to_owned(),
            headers,
            expires_at: Utc::now() + UPLOAD_URL_TTL,
        })
    }

    /// The url a message shows for a file: public when a public base is configured,
    /// otherwise a presigned GET whose response is forced to the recorded type and, for
    /// anything but a raster image, audio or video ([`crate::domain::served_inline`]), to
    /// `Content-Disposition: attachment`, so an uploaded page or script is downloaded,
    /// never rendered on the storage origin.
    pub async fn file_url(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
    ) -> anyhow::Result<String> {
        if let Some(base) = &self.public_base_url {
            return Ok(format!("{base}/{key}"));
        }
        if let Some(url) = self.cached_download_url(key) {
            return Ok(url);
        }
        let disposition = if crate::domain::served_inline(content_type) {
            "inline"
        } else {
            "attachment"
        };
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .response_content_disposition(content_disposition(disposition, file_name))
            .presigned(PresigningConfig::expires_in(DOWNLOAD_URL_TTL)?)
            .await
            .context("presign download")?;
        let url = presigned.uri().to_owned();
        self.remember_download_url(key, &url);
        Ok(url)
    }

    fn cached_download_url(&self, key: &str) -> Option<String> {
        let cache = self.download_urls.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(_, signed)| signed.elapsed() < DOWNLOAD_URL_REUSE)
            .map(|(url, _)| url.clone())
    }

    fn remember_download_url(&self, key: &str, url: &str) {
        let mut cache = self.download_urls.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= DOWNLOAD_URL_CACHE {
            cache.retain(|_, (_, signed)| signed.elapsed() < DOWNLOAD_URL_REUSE);
            if cache.len() >= DOWNLOAD_URL_CACHE {
                cache.clear();
            }
        }
        cache.insert(key.to_owned(), (url.to_owned(), Instant::now()));
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("DELETE {key}"))?;
        Ok(())
    }

    /// Deletes objects, all at once; a missing one is not an error.
    pub async fn delete_objects(&self, keys: &[String]) -> anyhow::Result<()> {
        futures_util::future::try_join_all(keys.iter().map(|key| self.delete(key))).await?;
        Ok(())
    }

    /// Reads a whole object, refusing one larger than `max_bytes` (its HEAD-free
    /// `Content-Length` is checked before the body is read).
    pub async fn get_bytes(&self, key: &str, max_bytes: u64) -> anyhow::Result<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("GET {key}"))?;
        let length = out.content_length().unwrap_or(-1);
        if length < 0 || length as u64 > max_bytes {
            anyhow::bail!("GET {key}: {length} bytes, over the {max_bytes}-byte limit");
        }
        let body = out
            .body
            .collect()
            .await
            .with_context(|| format!("GET {key}: read the body"))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Writes an object (server-side only: processed copies and thumbnails under
    /// `attached/`).
    pub async fn put_bytes(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .with_context(|| format!("PUT {key}"))?;
        Ok(())
    }

    /// HEADs an object to learn whether it exists and its size.
    pub async fn head(&self, key: &str) -> anyhow::Result<ObjectState> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(ObjectState::Present {
                size: out.content_length().unwrap_or(-1),
                etag: out.e_tag().map(str::to_owned),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                Ok(ObjectState::Missing)
            }
            Err(err) => Err(anyhow::Error::new(err).context(format!("HEAD {key}"))),
        }
    }
}

impl Storage {
    /// Copies the upload at `staging_key` to its [`attached_key`], server-side, only if its
    /// ETag is still `etag` (`x-amz-copy-source-if-match`): an overwrite between the HEAD
    /// check and this copy is [`PinOutcome::Changed`], never attached. Metadata (the type,
    /// the file name) is copied with the bytes.
    ///
    /// Call it while holding the upload's row lock (`db::uploads::lock_pending`) until the
    /// message commits: the attached key is derived from the upload, so two sends of one
    /// upload must not both copy.
    pub async fn pin(&self, staging_key: &str, etag: &str) -> anyhow::Result<PinOutcome> {
        let target = attached_key(staging_key);
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&target)
            .copy_source(format!("{}/{staging_key}", self.bucket))
            .copy_source_if_match(etag)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(PinOutcome::Pinned),
            Err(err) => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let status = err.raw_response().map(|r| r.status().as_u16());
                let code = err.as_service_error().and_then(|e| e.code());
                match (status, code) {
                    (Some(412), _) | (_, Some("PreconditionFailed")) => Ok(PinOutcome::Changed),
                    (Some(404), _) | (_, Some("NoSuchKey")) => Ok(PinOutcome::Missing),
                    _ => {
                        Err(anyhow::Error::new(err)
                            .context(format!("COPY {staging_key} to {target}")))
                    }
                }
            }
        }
    }

    /// [`Storage::pin`]s every file of a send, concurrently; the first that changed or
    /// vanished fails the send.
    pub async fn pin_all(&self, files: &[Staged<'_>]) -> Result<(), PinError> {
        let pins = files.iter().map(|file| async move {
            let etag = file
                .etag
                .ok_or_else(|| anyhow::anyhow!("HEAD {} gave no ETag", file.key))?;
            match self.pin(file.key, etag).await? {
                PinOutcome::Pinned => Ok(()),
                PinOutcome::Changed => Err(PinError::Changed(file.id)),
                PinOutcome::Missing => Err(PinError::Missing(file.id)),
            }
        });
        futures_util::future::try_join_all(pins).await?;
        Ok(())
    }

    /// Deletes the staging objects of uploads a committed send attached: nothing reads them
    /// any more. Failures are logged, not returned: the send has answered by then, and a
    /// leftover staging object is never served.
    pub async fn delete_staging(self, keys: Vec<String>) {
        let deletions = keys.iter().map(|key| self.delete(key));
        for result in futures_util::future::join_all(deletions).await {
            if let Err(err) = result {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "delete an attached upload's staging object"
                );
            }
        }
    }
}

/// `inline|attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded` (RFC 6266).
pub fn content_disposition(disposition: &str, file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(file_name, percent_encoding::NON_ALPHANUMERIC);
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_base_url: Option<&str>) -> StorageConfig {
        StorageConfig {
            endpoint: "http://127.0.0.1:9".into(),
            region: "auto".into(),
            bucket: "b".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            force_path_style: true,
            public_base_url: public_base_url.map(str::to_owned),
            max_upload_bytes: 10,
            allowed_types: Default::default(),
            orphan_after: Duration::from_secs(3600),
            cron_secret: None,
        }
    }

    #[tokio::test]
    async fn a_files_presigned_url_is_signed_once_and_reused() {
        let storage = Storage::new(&config(None)).await;
        let first = storage
            .file_url("rooms/a/1.pdf", "a.pdf", "application/pdf")
            .await
            .unwrap();
        assert!(
            first.contains("X-Amz-Signature=")
                && first.contains("response-content-disposition=attachment")
        );
        let again = storage
            .file_url("rooms/a/1.pdf", "a.pdf", "application/pdf")
            .await
            .unwrap();
        assert_eq!(first, again);
        let other = storage
            .file_url("rooms/a/2.pdf", "b.pdf", "application/pdf")
            .await
            .unwrap();
        assert_ne!(first, other);
    }

    #[tokio::test]
    async fn with_a_public_base_url_files_are_not_signed() {
        let storage = Storage::new(&config(Some("https://files.example.com"))).await;
        let url = storage
            .file_url("rooms/a/1.png", "a.png", "image/png")
            .await
            .unwrap();
        assert_eq!(url, "https://files.example.com/rooms/a/1.png");
    }

    #[test]
    fn dispositions_carry_a_safe_ascii_name_and_the_utf8_name() {
        assert_eq!(
            content_disposition("attachment", "rapport é\"1\".pdf"),
            "attachment; filename=\"rapport __1_.pdf\"; filename*=UTF-8''rapport%20%C3%A9%221%22%2Epdf"
        );
    }
}

//! Object storage (Cloudflare R2, or any S3-compatible server): presigned PUTs and GETs,
//! and the HEAD check that an upload really arrived.

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
    Present { size: i64 },
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
    /// anything but an image, to `Content-Disposition: attachment`, so an uploaded page or
    /// script is downloaded, never rendered on the storage origin.
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
        let disposition = if content_type.starts_with("image/") {
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
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                Ok(ObjectState::Missing)
            }
            Err(err) => Err(anyhow::Error::new(err).context(format!("HEAD {key}"))),
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

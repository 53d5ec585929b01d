//! Object storage (Cloudflare R2, or any S3-compatible server): presigned PUTs and GETs,
//! and the HEAD check that an upload really arrived.

use std::time::Duration;

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

/// The S3 client and bucket, built once per process. Building it does no I/O.
#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    bucket: String,
    public_base_url: Option<String>,
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
        Ok(presigned.uri().to_owned())
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

    #[test]
    fn dispositions_carry_a_safe_ascii_name_and_the_utf8_name() {
        assert_eq!(
            content_disposition("attachment", "rapport é\"1\".pdf"),
            "attachment; filename=\"rapport __1_.pdf\"; filename*=UTF-8''rapport%20%C3%A9%221%22%2Epdf"
        );
    }
}

//! Processing of attached images, after the send has answered: each image is read back
//! from storage (never from the client's request), decoded under bounds
//! ([`image::process`]), and its metadata-stripped copy written over its `attached/` key,
//! beside a WebP thumbnail; then one statement records the results and makes the message
//! an event of the room's log again, so subscribers get it as `message.updated`.
//!
//! An image that cannot be processed (a decompression bomb, a truncated file, bytes that
//! are not the declared type, a decoder over its time) keeps its original bytes and gets no
//! thumbnail; the reason is logged. Nothing here panics the function or holds it up: a
//! decode runs on a blocking thread, one at a time per process (memory), and is waited for
//! at most `IMAGE_PROCESS_TIMEOUT_MS`.

pub mod gif;
pub mod image;

use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::MediaConfig;
use crate::db;
use crate::db::files::{ProcessedFile, Recorded};
use crate::db::messages::FileRow;
use crate::storage::{self, Storage};

use self::image::{Bounds, Kind};

/// Decodes running at once in this process: one. A 48-megapixel photo's buffer is 144 MB
/// and a function has one or two cores; a decode that outlives its timeout keeps the permit
/// until its thread finishes, so abandoned decodes never pile up in memory.
static DECODES: Semaphore = Semaphore::const_new(1);

/// Whether files of this type are processed (and show `processing: true` until they are).
pub fn processable(content_type: &str) -> bool {
    Kind::of(content_type).is_some()
}

/// What processing needs: storage, the database, the bounds. Cheap to clone.
#[derive(Clone)]
pub struct Processor {
    pub storage: Storage,
    pub db: PgPool,
    pub config: MediaConfig,
    /// `MAX_UPLOAD_BYTES`: no object larger is read.
    pub max_bytes: u64,
}

impl Processor {
    /// Processes the images among `files` of message `message`, one after another, and
    /// records them in one statement (one event). Errors are logged, never returned: this
    /// runs after the response.
    pub async fn process_message(self, message: Uuid, files: Vec<FileRow>) {
        let images: Vec<FileRow> = files
            .into_iter()
            .filter(|f| processable(&f.content_type) && f.served.is_none())
            .collect();
        if images.is_empty() {
            return;
        }
        let mut results = Vec::with_capacity(images.len());
        for file in &images {
            results.push(self.process_file(file).await);
        }
        match db::files::record_processed(&self.db, message, &results).await {
            Ok(Recorded::Updated | Recorded::AlreadyDone) => {}
            Ok(Recorded::Gone) => {
                // Deleted meanwhile: what was written here is nobody's.
                let keys: Vec<String> = images
                    .iter()
                    .map(|f| f.object_key.clone())
                    .chain(results.iter().filter_map(|r| r.thumbnail_key.clone()))
                    .collect();
                if let Err(err) = self.storage.delete_objects(&keys).await {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        %message,
                        "delete the processed copies of a deleted message"
                    );
                }
            }
            Err(err) => tracing::error!(
                error = format!("{:#}", anyhow::Error::new(err)),
                %message,
                "record processed images"
            ),
        }
    }

    /// One image: its result, or its original kept (logged) when it cannot be processed.
    async fn process_file(&self, file: &FileRow) -> ProcessedFile {
        let started = Instant::now();
        match self.try_process_file(file).await {
            Ok(processed) => {
                tracing::info!(
                    file = %file.id,
                    served = processed.served,
                    ms = started.elapsed().as_millis() as u64,
                    "image processed"
                );
                processed
            }
            Err(err) => {
                tracing::warn!(
                    file = %file.id,
                    content_type = file.content_type,
                    error = format!("{err:#}"),
                    "image kept as uploaded, no thumbnail"
                );
                ProcessedFile {
                    id: file.id,
                    width: None,
                    height: None,
                    thumbnail_key: None,
                    placeholder: None,
                    served: "original",
                    served_size: file.size,
                }
            }
        }
    }

    async fn try_process_file(&self, file: &FileRow) -> anyhow::Result<ProcessedFile> {
        let kind = Kind::of(&file.content_type).expect("only processable files");
        let bytes = self
            .storage
            .get_bytes(&file.object_key, self.max_bytes)
            .await?;
        let bounds = Bounds {
            max_pixels: self.config.decode_max_pixels,
            max_alloc: self.config.decode_max_bytes,
            thumbnail_max_px: self.config.thumbnail_max_px,
            image_max_px: self.config.image_max_px,
        };
        let permit = DECODES.acquire().await?;
        let decode = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            image::process(&bytes, kind, &bounds)
        });
        let processed = match tokio::time::timeout(self.config.timeout, decode).await {
            Err(_) => anyhow::bail!("not done in {:?}", self.config.timeout),
            Ok(Err(panicked)) => anyhow::bail!("the decoder panicked: {panicked}"),
            Ok(Ok(result)) => result?,
        };

        let thumbnail_key = storage::thumbnail_key(&file.object_key);
        let served_size = processed.served_bytes.len() as i64;
        // The thumbnail first: a copy served without its thumbnail is fine, a thumbnail
        // recorded without its copy is not.
        let thumbnail = self
            .storage
            .put_bytes(&thumbnail_key, "image/webp", processed.thumbnail)
            .await;
        self.storage
            .put_bytes(&file.object_key, &file.content_type, processed.served_bytes)
            .await?;
        let thumbnail_key = match thumbnail {
            Ok(()) => Some(thumbnail_key),
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), file = %file.id, "thumbnail not stored");
                None
            }
        };
        Ok(ProcessedFile {
            id: file.id,
            width: Some(processed.width as i32),
            height: Some(processed.height as i32),
            placeholder: thumbnail_key.as_ref().map(|_| processed.placeholder),
            thumbnail_key,
            served: processed.served.as_str(),
            served_size,
        })
    }
}

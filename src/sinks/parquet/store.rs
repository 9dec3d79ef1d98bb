//! The object store behind a sink: built from the sink's `url` and `options` (plus the usual credential
//! environment), and the upload of one finished file: one `put` (atomic) or, for large files, one multipart
//! upload (visible only once completed).

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::config::{Location, ParquetConfig};

/// Files larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Part size of multipart uploads.
const PART_SIZE: usize = 8 << 20;

/// A store and the path prefix files go under.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside it (the part of the URL after the bucket).
    pub prefix: Path,
    /// For `file://`: the folder, so leftovers of interrupted local writes can be cleaned up.
    pub local_root: Option<std::path::PathBuf>,
}

/// Why a store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The local folder could not be created.
    #[error("cannot create lake folder {path}")]
    Folder {
        /// The folder.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `object_store` refused the URL or options.
    #[error("cannot open the object store for {url}")]
    Store {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
}

/// Builds the store of a sink.
///
/// # Errors
/// [`StoreError`] when the folder or store cannot be set up.
pub fn open(config: &ParquetConfig) -> Result<Lake, StoreError> {
    match &config.location {
        Location::Memory => Ok(Lake { store: Arc::new(InMemory::new()), prefix: Path::default(), local_root: None }),
        Location::Local(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Folder { path: dir.display().to_string(), source })?;
            // fsync files and folders: the checkpoint after an upload is durable, so the file must be too.
            let store = LocalFileSystem::new_with_prefix(dir)
                .map_err(|source| StoreError::Store { url: dir.display().to_string(), source })?
                .with_fsync(true);
            Ok(Lake { store: Arc::new(store), prefix: Path::default(), local_root: Some(dir.clone()) })
        }
        Location::Cloud(url) => {
            let err = |source| StoreError::Store { url: url.to_string(), source };
            let opts = config.options.iter().map(|(k, v)| (k.as_str(), v.expose()));
            let store: Arc<dyn ObjectStore> = match url.scheme() {
                "s3" | "s3a" => {
                    let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                    for (k, v) in opts {
                        b = b.with_config(k.parse().map_err(err)?, v);
                    }
                    Arc::new(b.build().map_err(err)?)
                }
                "gs" => {
                    let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                    for (k, v) in opts {
                        b = b.with_config(k.parse().map_err(err)?, v);
                    }
                    Arc::new(b.build().map_err(err)?)
                }
                _ => {
                    let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                    for (k, v) in opts {
                        b = b.with_config(k.parse().map_err(err)?, v);
                    }
                    Arc::new(b.build().map_err(err)?)
                }
            };
            let prefix = Path::from(url.path().trim_matches('/'));
            Ok(Lake { store, prefix, local_root: None })
        }
    }
}

/// Uploads `bytes` to `path` so that it appears whole or not at all.
///
/// # Errors
/// The store's error; a failed multipart upload is aborted so no parts linger.
pub async fn upload(store: &dyn ObjectStore, path: &Path, bytes: Bytes) -> Result<(), object_store::Error> {
    if bytes.len() <= MULTIPART_THRESHOLD {
        store.put(path, PutPayload::from_bytes(bytes)).await?;
        return Ok(());
    }
    let mut upload = store.put_multipart(path).await?;
    let parts: Vec<_> = (0..bytes.len())
        .step_by(PART_SIZE)
        .map(|start| upload.put_part(PutPayload::from_bytes(bytes.slice(start..(start + PART_SIZE).min(bytes.len())))))
        .collect();
    let mut result = Ok(());
    for part in parts {
        if let Err(e) = part.await {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = upload.complete().await.map(|_| ());
    }
    if result.is_err() {
        // Uploaded parts of an unfinished upload are invisible but billed: drop them.
        let _ = upload.abort().await;
    }
    result
}

/// Removes staging files an interrupted local write left behind (`object_store` writes `name#N`, then renames).
/// Readers' `*.parquet` globs never match them, but a tidy lake holds only complete files.
pub fn remove_local_leftovers(root: &std::path::Path) -> usize {
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && let Some((_, suffix)) = name.rsplit_once('#')
                && !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit())
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_multipart_uploads_land_whole() {
        let store = InMemory::new();
        upload(&store, &Path::from("a/small.parquet"), Bytes::from_static(b"PAR1")).await.expect("put");
        let big = Bytes::from(vec![7u8; MULTIPART_THRESHOLD + 1]);
        upload(&store, &Path::from("a/big.parquet"), big.clone()).await.expect("multipart");
        let got = store.get(&Path::from("a/big.parquet")).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(got, big);
    }

    #[test]
    fn only_staging_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("events/date=2026-12-04");
        std::fs::create_dir_all(&sub).expect("mkdir");
        for name in ["part-1-2.parquet", "part-1-2.parquet#1", "part-3-4.parquet#12", "notes#draft"] {
            std::fs::write(sub.join(name), b"x").expect("write");
        }
        assert_eq!(remove_local_leftovers(dir.path()), 2);
        let mut left: Vec<_> = std::fs::read_dir(&sub)
            .expect("read")
            .flatten()
            .map(|e| e.file_name().into_string().expect("utf8"))
            .collect();
        left.sort();
        assert_eq!(left, vec!["notes#draft", "part-1-2.parquet"]);
    }
}

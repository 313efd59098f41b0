//! The directory `spatial-tiles build --out DIR` wrote, as the platform
//! store: the value of key `K` is the file `DIR/K`, but for the dataset's
//! head record, which is `DIR/head.json`. Read-only: writes fail as an
//! unavailable store would. Every read is counted, so a run can tell how
//! many tiles it loaded.

use std::cell::Cell;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use edge_core::{AtomicStore, CasOutcome, KeyValueStore, StoreError};
use spatial_query::manifest;

/// A tile directory served as a read-only store.
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    head_key: String,
    reads: Cell<u64>,
    bytes_read: Cell<u64>,
}

impl FileStore {
    /// The store over `root` for dataset `dataset`.
    pub fn new(root: impl Into<PathBuf>, dataset: &str) -> FileStore {
        FileStore {
            root: root.into(),
            head_key: manifest::head_key(dataset),
            reads: Cell::new(0),
            bytes_read: Cell::new(0),
        }
    }

    /// Values read so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// The file holding `key`; `None` for a key that would leave the
    /// directory.
    fn path(&self, key: &str) -> Option<PathBuf> {
        if key == self.head_key {
            return Some(self.root.join("head.json"));
        }
        let relative = Path::new(key);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.root.join(relative))
    }

    fn read_only() -> StoreError {
        StoreError::Unavailable("the benchmark's file store is read-only".to_owned())
    }
}

#[async_trait(?Send)]
impl KeyValueStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.reads.set(self.reads.get() + 1);
                self.bytes_read
                    .set(self.bytes_read.get() + bytes.len() as u64);
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("{}: {e}", path.display()))),
        }
    }

    async fn set(&self, _key: &str, _value: &[u8]) -> Result<(), StoreError> {
        Err(Self::read_only())
    }

    async fn delete(&self, _key: &str) -> Result<(), StoreError> {
        Err(Self::read_only())
    }
}

#[async_trait(?Send)]
impl AtomicStore for FileStore {
    async fn increment(&self, _key: &str, _delta: i64) -> Result<i64, StoreError> {
        Err(Self::read_only())
    }

    async fn compare_and_swap(
        &self,
        _key: &str,
        _expected: Option<&[u8]>,
        _new: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        Err(Self::read_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;

    #[test]
    fn keys_are_files_and_the_head_is_head_json() {
        let dir = std::env::temp_dir().join(format!("spatial-bench-store-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sq/d/t/1")).expect("temp dir");
        std::fs::write(dir.join("head.json"), b"{}").expect("write");
        std::fs::write(dir.join("sq/d/t/1/0-0-0"), b"tile").expect("write");
        let store = FileStore::new(&dir, "d");
        assert_eq!(
            block_on(store.get("sq/d/head")).expect("get"),
            Some(b"{}".to_vec())
        );
        assert_eq!(
            block_on(store.get("sq/d/t/1/0-0-0")).expect("get"),
            Some(b"tile".to_vec())
        );
        assert_eq!(block_on(store.get("sq/d/t/1/9-9-9")).expect("get"), None);
        assert_eq!(block_on(store.get("../etc/passwd")).expect("get"), None);
        assert_eq!((store.reads(), store.bytes_read()), (2, 6));
        assert!(block_on(store.set("k", b"v")).is_err());
        assert!(block_on(store.increment("k", 1)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

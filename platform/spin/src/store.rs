//! The atomic store on Spin: `wasi:keyvalue/store` for plain operations and
//! `wasi:keyvalue/atomics` for `increment` and compare-and-swap, which the
//! host makes atomic across concurrent instances.

use async_trait::async_trait;
use edge_core::{AtomicStore, CasOutcome, KeyValueStore, StoreError};
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};

/// The Spin key-value store label used (declare it in `spin.toml`'s
/// `key_value_stores`).
pub const STORE_LABEL: &str = "default";

/// The store on one `wasi:keyvalue` bucket.
pub struct SpinStore {
    bucket: Result<store::Bucket, String>,
}

impl SpinStore {
    /// Opens the [`STORE_LABEL`] bucket; failure to open makes every
    /// operation fail with [`StoreError::Unavailable`].
    pub fn open_default() -> Self {
        SpinStore {
            bucket: store::open(STORE_LABEL).map_err(|e| describe(&e)),
        }
    }

    fn bucket(&self) -> Result<&store::Bucket, StoreError> {
        self.bucket
            .as_ref()
            .map_err(|e| StoreError::Unavailable(e.clone()))
    }
}

fn describe(e: &store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message.clone(),
    }
}

fn unavailable(e: store::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

#[async_trait(?Send)]
impl KeyValueStore for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket()?.get(key).map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket()?.set(key, value).map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket()?.delete(key).map_err(unavailable)
    }
}

#[async_trait(?Send)]
impl AtomicStore for SpinStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(self.bucket()?, key, delta).map_err(unavailable)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        let cas = atomics::Cas::new(self.bucket()?, key).map_err(unavailable)?;
        let current = cas.current().map_err(unavailable)?;
        if current.as_deref() != expected {
            return Ok(CasOutcome::Conflict { current });
        }
        match atomics::swap(cas, new) {
            Ok(()) => Ok(CasOutcome::Swapped),
            Err(atomics::CasError::CasFailed(fresh)) => Ok(CasOutcome::Conflict {
                current: fresh.current().map_err(unavailable)?,
            }),
            Err(atomics::CasError::StoreError(e)) => Err(unavailable(e)),
        }
    }
}

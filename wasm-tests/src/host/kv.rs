//! In-memory `wasi:keyvalue` (0.2.0-draft2) store with fault injection.
//!
//! Spin components built with spin-sdk 7 reach key-value storage through
//! `spin_sdk::experimental::wasi::keyvalue::{store, atomics, batch}`. This
//! module implements those interfaces on top of [`KvStore`], a process-wide
//! map shared by every instance, so tests can inspect what components wrote
//! and switch the store off to see how components cope with an outage.
//!
//! Semantics follow Spin's own SQLite-backed store
//! (`crates/key-value-spin/src/store.rs` and `crates/factor-key-value/src/host.rs`
//! in spinframework/spin), except where noted:
//!
//! * `open` accepts any label; buckets are created on demand.
//! * `increment` treats a missing key as 0 and stores the result as the 8-byte
//!   **little-endian** encoding of an `i64` (`i64::to_le_bytes`), exactly as
//!   Spin does. Spin panics when the existing value is not 8 bytes long; this
//!   store returns `error::other` instead, and also reports overflow as an
//!   error rather than wrapping.
//! * Compare-and-swap: every write stamps the key with a fresh version number
//!   (deletes leave a versioned tombstone). `cas.new` snapshots the key's value
//!   and version, `cas.current` re-reads and re-snapshots it (as Spin's
//!   `current` does), and `swap` succeeds only if the version is still the
//!   snapshotted one. Spin compares *values* instead, which lets an A→B→A
//!   change through; versions are strictly stronger. On conflict `swap`
//!   returns `cas-failed` with a new handle already holding the latest
//!   snapshot, so the guest can retry straight away. All of this happens
//!   under one mutex, so it is atomic across concurrently running instances.
//! * `list-keys` with a cursor is rejected, like Spin.
//! * While [`KvStore::set_available`] is `false`, every operation (including
//!   `open`, `cas.new` and `swap`) fails with `error::other("store unavailable")`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::bindings::wasi::keyvalue::{atomics, batch, store};

/// Message carried by `error::other` while the store is switched off.
pub const UNAVAILABLE: &str = "store unavailable";

/// In-memory key-value store shared by all instances of all apps.
///
/// Cloning is cheap and yields a handle to the same data.
#[derive(Clone, Default)]
pub struct KvStore {
    inner: Arc<Inner>,
}

struct Inner {
    available: AtomicBool,
    data: Mutex<Data>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            available: AtomicBool::new(true),
            data: Mutex::new(Data::default()),
        }
    }
}

#[derive(Default)]
struct Data {
    /// Last version handed out; versions are unique across the whole store.
    last_version: u64,
    buckets: HashMap<String, BTreeMap<String, Entry>>,
}

/// A key's state. `value: None` is a tombstone left by `delete`, kept so the
/// version keeps moving forward and CAS handles notice the deletion.
struct Entry {
    value: Option<Vec<u8>>,
    version: u64,
}

/// What a CAS handle remembers about its key.
#[derive(Clone)]
struct Snapshot {
    value: Option<Vec<u8>>,
    /// 0 for a key that has never been written.
    version: u64,
}

impl Data {
    fn entry(&self, bucket: &str, key: &str) -> Option<&Entry> {
        self.buckets.get(bucket)?.get(key)
    }

    fn value(&self, bucket: &str, key: &str) -> Option<&Vec<u8>> {
        self.entry(bucket, key)?.value.as_ref()
    }

    fn snapshot(&self, bucket: &str, key: &str) -> Snapshot {
        match self.entry(bucket, key) {
            Some(e) => Snapshot {
                value: e.value.clone(),
                version: e.version,
            },
            None => Snapshot {
                value: None,
                version: 0,
            },
        }
    }

    fn write(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) {
        self.last_version += 1;
        let entry = Entry {
            value,
            version: self.last_version,
        };
        self.buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), entry);
    }
}

impl KvStore {
    /// Creates an empty store that is available.
    pub fn new() -> Self {
        Self::default()
    }

    /// Switches the store on or off. While off, every key-value call made by a
    /// component fails with `error::other("store unavailable")`.
    pub fn set_available(&self, up: bool) {
        self.inner.available.store(up, Ordering::SeqCst);
    }

    /// Whether the store currently accepts calls.
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::SeqCst)
    }

    /// Reads a value directly, bypassing the availability switch (for test
    /// assertions).
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock().value(bucket, key).cloned()
    }

    /// Writes a value directly, bypassing the availability switch (for test
    /// setup). Counts as a write for compare-and-swap purposes.
    pub fn set(&self, bucket: &str, key: &str, value: impl Into<Vec<u8>>) {
        self.lock().write(bucket, key, Some(value.into()));
    }

    /// Reads a counter written by `wasi:keyvalue/atomics.increment`
    /// (an `i64` in little-endian bytes). `None` if absent or not 8 bytes long.
    pub fn get_i64(&self, bucket: &str, key: &str) -> Option<i64> {
        let bytes: [u8; 8] = self.get(bucket, key)?.try_into().ok()?;
        Some(i64::from_le_bytes(bytes))
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave `Data` half-updated
        // (every mutation is a single insert), so poisoning is ignored.
        self.inner
            .data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the data if the store is available.
    fn checked(&self) -> Result<MutexGuard<'_, Data>, store::Error> {
        if self.is_available() {
            Ok(self.lock())
        } else {
            Err(store::Error::Other(UNAVAILABLE.to_owned()))
        }
    }
}

/// Guest-held handle to an opened bucket.
#[allow(
    unreachable_pub,
    reason = "bindgen's `with` re-exports it with `pub use`"
)]
pub struct BucketHandle {
    name: String,
}

/// Guest-held handle to a compare-and-swap operation.
#[allow(
    unreachable_pub,
    reason = "bindgen's `with` re-exports it with `pub use`"
)]
pub struct CasHandle {
    bucket: String,
    key: String,
    snapshot: Snapshot,
}

/// The per-store view the key-value host functions operate on.
pub(crate) struct KvCtx<'a> {
    /// The shared store.
    pub(crate) store: &'a KvStore,
    /// The instance's resource table, holding bucket and CAS handles.
    pub(crate) table: &'a mut ResourceTable,
}

/// [`HasData`] marker for the key-value interfaces.
pub(crate) struct KvHost;

impl HasData for KvHost {
    type Data<'a> = KvCtx<'a>;
}

/// Adds `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` to `linker`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> KvCtx<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, KvHost>(linker, getter)?;
    atomics::add_to_linker::<T, KvHost>(linker, getter)?;
    batch::add_to_linker::<T, KvHost>(linker, getter)?;
    Ok(())
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

impl KvCtx<'_> {
    fn bucket_name(&self, bucket: &Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }
}

/// Evaluates to the locked data, or returns the guest-visible error.
macro_rules! data_or_return {
    ($ctx:expr) => {
        match $ctx.store.checked() {
            Ok(data) => data,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl store::Host for KvCtx<'_> {
    fn open(&mut self, identifier: String) -> KvResult<Resource<BucketHandle>> {
        drop(data_or_return!(self));
        let handle = self.table.push(BucketHandle { name: identifier })?;
        Ok(Ok(handle))
    }
}

impl store::HostBucket for KvCtx<'_> {
    fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        let data = data_or_return!(self);
        Ok(Ok(data.value(&name, &key).cloned()))
    }

    fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let mut data = data_or_return!(self);
        data.write(&name, &key, Some(value));
        Ok(Ok(()))
    }

    fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let mut data = data_or_return!(self);
        if data.value(&name, &key).is_some() {
            data.write(&name, &key, None);
        }
        Ok(Ok(()))
    }

    fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<bool> {
        let name = self.bucket_name(&bucket)?;
        let data = data_or_return!(self);
        Ok(Ok(data.value(&name, &key).is_some()))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let data = data_or_return!(self);
        if cursor.is_some() {
            return Ok(Err(store::Error::Other(
                "list_keys: cursor not supported".to_owned(),
            )));
        }
        let keys = data
            .buckets
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|(_, entry)| entry.value.is_some())
            .map(|(key, _)| key.clone())
            .collect();
        Ok(Ok(store::KeyResponse { keys, cursor: None }))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvCtx<'_> {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let name = self.bucket_name(&bucket)?;
        let mut data = data_or_return!(self);
        let current = match data.value(&name, &key) {
            None => 0,
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(le) => i64::from_le_bytes(le),
                Err(_) => {
                    return Ok(Err(store::Error::Other(format!(
                        "value of {key:?} is {} bytes, not an 8-byte little-endian i64",
                        bytes.len()
                    ))));
                }
            },
        };
        let Some(new) = current.checked_add(delta) else {
            return Ok(Err(store::Error::Other(format!(
                "increment of {key:?} overflows i64"
            ))));
        };
        data.write(&name, &key, Some(new.to_le_bytes().to_vec()));
        Ok(Ok(new))
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        let mut data = match self.store.checked() {
            Ok(data) => data,
            Err(e) => return Ok(Err(atomics::CasError::StoreError(e))),
        };
        let current = data.snapshot(&handle.bucket, &handle.key);
        if current.version == handle.snapshot.version {
            data.write(&handle.bucket, &handle.key, Some(value));
            return Ok(Ok(()));
        }
        drop(data);
        let retry = self.table.push(CasHandle {
            snapshot: current,
            ..handle
        })?;
        Ok(Err(atomics::CasError::CasFailed(retry)))
    }
}

impl atomics::HostCas for KvCtx<'_> {
    fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> KvResult<Resource<CasHandle>> {
        let name = self.bucket_name(&bucket)?;
        let data = data_or_return!(self);
        let snapshot = data.snapshot(&name, &key);
        drop(data);
        let handle = self.table.push(CasHandle {
            bucket: name,
            key,
            snapshot,
        })?;
        Ok(Ok(handle))
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> KvResult<Option<Vec<u8>>> {
        let (bucket, key) = {
            let handle = self.table.get(&cas)?;
            (handle.bucket.clone(), handle.key.clone())
        };
        let data = data_or_return!(self);
        let snapshot = data.snapshot(&bucket, &key);
        drop(data);
        let value = snapshot.value.clone();
        self.table.get_mut(&cas)?.snapshot = snapshot;
        Ok(Ok(value))
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvCtx<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let name = self.bucket_name(&bucket)?;
        let data = data_or_return!(self);
        let values = keys
            .into_iter()
            .map(|key| {
                let value = data.value(&name, &key).cloned();
                (key, value)
            })
            .collect();
        Ok(Ok(values))
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let mut data = data_or_return!(self);
        for (key, value) in key_values {
            data.write(&name, &key, Some(value));
        }
        Ok(Ok(()))
    }

    fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let mut data = data_or_return!(self);
        for key in keys {
            if data.value(&name, &key).is_some() {
                data.write(&name, &key, None);
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomics::{Host as _, HostCas as _};
    use store::{Host as _, HostBucket as _};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn ok<T, E: std::fmt::Debug>(r: wasmtime::Result<Result<T, E>>) -> T {
        r.expect("no trap").expect("no guest error")
    }

    #[test]
    fn increment_stores_little_endian_i64() -> TestResult {
        let kv = KvStore::new();
        let mut table = ResourceTable::new();
        let mut ctx = KvCtx {
            store: &kv,
            table: &mut table,
        };
        let bucket = ok(ctx.open("default".into()));
        let borrow = || Resource::<BucketHandle>::new_borrow(bucket.rep());
        assert_eq!(ok(ctx.increment(borrow(), "n".into(), 5)), 5);
        assert_eq!(ok(ctx.increment(borrow(), "n".into(), -7)), -2);
        assert_eq!(kv.get("default", "n"), Some((-2i64).to_le_bytes().to_vec()));
        kv.set("default", "n", "12");
        assert!(ctx.increment(borrow(), "n".into(), 1)?.is_err());
        Ok(())
    }

    #[test]
    fn swap_fails_after_any_intervening_write() -> TestResult {
        let kv = KvStore::new();
        let mut table = ResourceTable::new();
        let mut ctx = KvCtx {
            store: &kv,
            table: &mut table,
        };
        let bucket = ok(ctx.open("b".into()));
        let borrow = || Resource::<BucketHandle>::new_borrow(bucket.rep());

        // Absent key, then written and deleted: still a conflict (no ABA).
        let cas = ok(ctx.new(borrow(), "k".into()));
        assert_eq!(ok(ctx.current(Resource::new_borrow(cas.rep()))), None);
        ok(ctx.set(borrow(), "k".into(), b"x".to_vec()));
        ok(ctx.delete(borrow(), "k".into()));
        let retry = match ctx.swap(cas, b"mine".to_vec())? {
            Err(atomics::CasError::CasFailed(retry)) => retry,
            other => panic!("expected cas-failed, got {other:?}"),
        };
        assert_eq!(kv.get("b", "k"), None);

        // The fresh handle holds the latest version and succeeds.
        assert!(ctx.swap(retry, b"mine".to_vec())?.is_ok());
        assert_eq!(kv.get("b", "k"), Some(b"mine".to_vec()));

        // Outage: store errors, not cas-failed.
        let cas = ok(ctx.new(borrow(), "k".into()));
        kv.set_available(false);
        match ctx.swap(cas, b"other".to_vec())? {
            Err(atomics::CasError::StoreError(store::Error::Other(msg))) => {
                assert_eq!(msg, UNAVAILABLE)
            }
            other => panic!("expected store-error, got {other:?}"),
        }
        assert!(ctx.get(borrow(), "k".into())?.is_err());
        Ok(())
    }
}

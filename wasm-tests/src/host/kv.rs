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
//!
//! [`KvStore::redis`] makes the same store on a real Redis instead, with the
//! semantics of Spin's Redis backend (`INCRBY`, `WATCH`/`MULTI`/`EXEC`; see
//! `kv_redis.rs`): hosts in several processes given one Redis URL share
//! their data, as Spin nodes sharing a `redis` key-value store do. The
//! availability switch works on it too, in front of Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::kv_redis::{RedisKv, Swapped, Watch};

/// Message carried by `error::other` while the store is switched off.
pub const UNAVAILABLE: &str = "store unavailable";

/// Key-value store shared by all instances of all apps given it: in memory
/// ([`KvStore::new`], the default) or on Redis ([`KvStore::redis`]).
///
/// Cloning is cheap and yields a handle to the same data.
#[derive(Clone, Default)]
pub struct KvStore {
    inner: Arc<Inner>,
}

struct Inner {
    available: AtomicBool,
    /// Added to every call a component makes, in nanoseconds (a slow store).
    delay_nanos: AtomicU64,
    backend: Backend,
}

enum Backend {
    Memory(Mutex<Data>),
    Redis(RedisKv),
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            available: AtomicBool::new(true),
            delay_nanos: AtomicU64::new(0),
            backend: Backend::Memory(Mutex::new(Data::default())),
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

/// What a CAS handle holds: the in-memory snapshot, or a Redis connection
/// watching the key.
enum CasState {
    Memory(Snapshot),
    Redis(Watch),
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

    /// A store on the Redis at `url` (`redis://127.0.0.1:6379`, optionally
    /// `/DB`), checked by connecting once. Every bucket label opens the same
    /// database, as in Spin; what is already there stays.
    pub fn redis(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                available: AtomicBool::new(true),
                delay_nanos: AtomicU64::new(0),
                backend: Backend::Redis(RedisKv::connect(url)?),
            }),
        })
    }

    /// `memory`, or the Redis address (`redis://127.0.0.1:6379/0`).
    pub fn describe(&self) -> String {
        match &self.inner.backend {
            Backend::Memory(_) => "memory".to_owned(),
            Backend::Redis(redis) => redis.address().to_owned(),
        }
    }

    /// Switches the store on or off. While off, every key-value call made by a
    /// component fails with `error::other("store unavailable")`.
    pub fn set_available(&self, up: bool) {
        self.inner.available.store(up, Ordering::SeqCst);
    }

    /// Makes every key-value call a component makes take `delay` longer
    /// (the calling thread sleeps, as a blocking call to a distant store
    /// would hold it); zero removes the delay.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.inner.delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Whether the store currently accepts calls.
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::SeqCst)
    }

    /// Reads a value directly, bypassing the availability switch (for test
    /// assertions).
    ///
    /// # Panics
    ///
    /// On Redis, if Redis does not answer.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match &self.inner.backend {
            Backend::Memory(data) => lock(data).value(bucket, key).cloned(),
            Backend::Redis(redis) => redis
                .get(key)
                .unwrap_or_else(|e| panic!("{}: GET {key}: {e:?}", redis.address())),
        }
    }

    /// Writes a value directly, bypassing the availability switch (for test
    /// setup). Counts as a write for compare-and-swap purposes.
    ///
    /// # Panics
    ///
    /// On Redis, if Redis does not answer.
    pub fn set(&self, bucket: &str, key: &str, value: impl Into<Vec<u8>>) {
        match &self.inner.backend {
            Backend::Memory(data) => lock(data).write(bucket, key, Some(value.into())),
            Backend::Redis(redis) => redis
                .set(key, &value.into())
                .unwrap_or_else(|e| panic!("{}: SET {key}: {e:?}", redis.address())),
        }
    }

    /// Reads a counter written by `wasi:keyvalue/atomics.increment`: an
    /// `i64` in little-endian bytes in memory, Redis' decimal text on Redis.
    /// `None` if absent or not in that form.
    pub fn get_i64(&self, bucket: &str, key: &str) -> Option<i64> {
        let bytes = self.get(bucket, key)?;
        match &self.inner.backend {
            Backend::Memory(_) => Some(i64::from_le_bytes(bytes.try_into().ok()?)),
            Backend::Redis(_) => std::str::from_utf8(&bytes).ok()?.parse().ok(),
        }
    }

    /// The backend, if the store is available.
    fn checked(&self) -> Result<&Backend, store::Error> {
        let delay = self.inner.delay_nanos.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_nanos(delay));
        }
        if self.is_available() {
            Ok(&self.inner.backend)
        } else {
            Err(store::Error::Other(UNAVAILABLE.to_owned()))
        }
    }
}

fn lock(data: &Mutex<Data>) -> MutexGuard<'_, Data> {
    // A panic while holding the lock cannot leave `Data` half-updated
    // (every mutation is a single insert), so poisoning is ignored.
    data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    state: CasState,
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

/// Evaluates to the available backend, or returns the guest-visible error.
macro_rules! backend_or_return {
    ($ctx:expr) => {
        match $ctx.store.checked() {
            Ok(backend) => backend,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl store::Host for KvCtx<'_> {
    fn open(&mut self, identifier: String) -> KvResult<Resource<BucketHandle>> {
        // Opening is local (no delay), but fails while the store is down.
        if !self.store.is_available() {
            return Ok(Err(store::Error::Other(UNAVAILABLE.to_owned())));
        }
        let handle = self.table.push(BucketHandle { name: identifier })?;
        Ok(Ok(handle))
    }
}

impl store::HostBucket for KvCtx<'_> {
    fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => Ok(lock(data).value(&name, &key).cloned()),
            Backend::Redis(redis) => redis.get(&key),
        })
    }

    fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => {
                lock(data).write(&name, &key, Some(value));
                Ok(())
            }
            Backend::Redis(redis) => redis.set(&key, &value),
        })
    }

    fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => {
                let mut data = lock(data);
                if data.value(&name, &key).is_some() {
                    data.write(&name, &key, None);
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.delete(&[key]),
        })
    }

    fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> KvResult<bool> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => Ok(lock(data).value(&name, &key).is_some()),
            Backend::Redis(redis) => redis.exists(&key),
        })
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let backend = backend_or_return!(self);
        if cursor.is_some() {
            return Ok(Err(store::Error::Other(
                "list_keys: cursor not supported".to_owned(),
            )));
        }
        let keys = match backend {
            Backend::Memory(data) => lock(data)
                .buckets
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|(_, entry)| entry.value.is_some())
                .map(|(key, _)| key.clone())
                .collect(),
            Backend::Redis(redis) => match redis.keys() {
                Ok(keys) => keys,
                Err(e) => return Ok(Err(e)),
            },
        };
        Ok(Ok(store::KeyResponse { keys, cursor: None }))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

/// The in-memory `increment`: missing is 0, the value an 8-byte
/// little-endian `i64`, overflow an error.
fn increment_in_memory(
    data: &mut Data,
    bucket: &str,
    key: &str,
    delta: i64,
) -> Result<i64, store::Error> {
    let current = match data.value(bucket, key) {
        None => 0,
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(le) => i64::from_le_bytes(le),
            Err(_) => {
                return Err(store::Error::Other(format!(
                    "value of {key:?} is {} bytes, not an 8-byte little-endian i64",
                    bytes.len()
                )));
            }
        },
    };
    let Some(new) = current.checked_add(delta) else {
        return Err(store::Error::Other(format!(
            "increment of {key:?} overflows i64"
        )));
    };
    data.write(bucket, key, Some(new.to_le_bytes().to_vec()));
    Ok(new)
}

impl atomics::Host for KvCtx<'_> {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => increment_in_memory(&mut lock(data), &name, &key, delta),
            Backend::Redis(redis) => redis.increment(&key, delta),
        })
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        let backend = match self.store.checked() {
            Ok(backend) => backend,
            Err(e) => return Ok(Err(atomics::CasError::StoreError(e))),
        };
        let state = match (backend, handle.state) {
            (Backend::Memory(data), CasState::Memory(snapshot)) => {
                let mut data = lock(data);
                let current = data.snapshot(&handle.bucket, &handle.key);
                if current.version == snapshot.version {
                    data.write(&handle.bucket, &handle.key, Some(value));
                    return Ok(Ok(()));
                }
                CasState::Memory(current)
            }
            (Backend::Redis(_), CasState::Redis(watch)) => match watch.swap(&handle.key, &value) {
                Ok(Swapped::Done) => return Ok(Ok(())),
                Ok(Swapped::Conflict(watch)) => CasState::Redis(watch),
                Err(e) => return Ok(Err(atomics::CasError::StoreError(e))),
            },
            _ => wasmtime::bail!("a compare-and-swap handle of another backend"),
        };
        let retry = self.table.push(CasHandle {
            bucket: handle.bucket,
            key: handle.key,
            state,
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
        let state = match backend_or_return!(self) {
            Backend::Memory(data) => CasState::Memory(lock(data).snapshot(&name, &key)),
            Backend::Redis(redis) => match redis.watch(&key) {
                Ok(watch) => CasState::Redis(watch),
                Err(e) => return Ok(Err(e)),
            },
        };
        let handle = self.table.push(CasHandle {
            bucket: name,
            key,
            state,
        })?;
        Ok(Ok(handle))
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> KvResult<Option<Vec<u8>>> {
        let backend = backend_or_return!(self);
        let handle = self.table.get_mut(&cas)?;
        Ok(match (backend, &mut handle.state) {
            (Backend::Memory(data), CasState::Memory(snapshot)) => {
                *snapshot = lock(data).snapshot(&handle.bucket, &handle.key);
                Ok(snapshot.value.clone())
            }
            (Backend::Redis(_), CasState::Redis(watch)) => watch.current(&handle.key),
            _ => wasmtime::bail!("a compare-and-swap handle of another backend"),
        })
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
        let values = match backend_or_return!(self) {
            Backend::Memory(data) => {
                let data = lock(data);
                keys.iter()
                    .map(|key| data.value(&name, key).cloned())
                    .collect()
            }
            Backend::Redis(redis) => match redis.get_many(&keys) {
                Ok(values) => values,
                Err(e) => return Ok(Err(e)),
            },
        };
        Ok(Ok(keys.into_iter().zip(values).collect()))
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => {
                let mut data = lock(data);
                for (key, value) in key_values {
                    data.write(&name, &key, Some(value));
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.set_many(&key_values),
        })
    }

    fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(match backend_or_return!(self) {
            Backend::Memory(data) => {
                let mut data = lock(data);
                for key in keys {
                    if data.value(&name, &key).is_some() {
                        data.write(&name, &key, None);
                    }
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.delete(&keys),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Every property runs on both backends: the in-memory store and one
    //! on a throwaway `redis-server` (installed if missing).

    use super::*;
    use crate::redis_server::RedisServer;
    use atomics::{Host as _, HostCas as _};
    use batch::Host as _;
    use store::{Host as _, HostBucket as _};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn ok<T, E: std::fmt::Debug>(r: wasmtime::Result<Result<T, E>>) -> T {
        r.expect("no trap").expect("no guest error")
    }

    /// Runs `check` on an in-memory store, then on a fresh Redis.
    fn on_both(check: impl Fn(&KvStore) -> TestResult) -> TestResult {
        check(&KvStore::new()).map_err(|e| format!("in memory: {e}"))?;
        let server = RedisServer::start()?;
        let kv = KvStore::redis(&server.url())?;
        check(&kv).map_err(|e| format!("on {}: {e}", kv.describe()))?;
        Ok(())
    }

    /// One instance's view: a context and its open bucket.
    struct Guest {
        kv: KvStore,
        table: ResourceTable,
        bucket: u32,
    }

    impl Guest {
        fn open(kv: &KvStore, label: &str) -> Guest {
            let mut table = ResourceTable::new();
            let bucket = ok(KvCtx {
                store: kv,
                table: &mut table,
            }
            .open(label.into()))
            .rep();
            Guest {
                kv: kv.clone(),
                table,
                bucket,
            }
        }

        fn ctx(&mut self) -> KvCtx<'_> {
            KvCtx {
                store: &self.kv,
                table: &mut self.table,
            }
        }

        fn bucket(&self) -> Resource<BucketHandle> {
            Resource::new_borrow(self.bucket)
        }

        /// Makes borrows of the bucket without borrowing `self`.
        fn borrower(&self) -> impl Fn() -> Resource<BucketHandle> + use<> {
            let rep = self.bucket;
            move || Resource::new_borrow(rep)
        }

        /// A compare-and-swap increment of the counter at `key` (decimal
        /// text), retried until it lands; returns the attempts it took.
        fn cas_increment(&mut self, key: &str) -> usize {
            let bucket = self.bucket();
            let mut cas = ok(self.ctx().new(bucket, key.into()));
            for attempt in 1.. {
                let current = ok(self.ctx().current(Resource::new_borrow(cas.rep())));
                let n: u64 = current.map_or(0, |v| {
                    String::from_utf8(v).expect("text").parse().expect("number")
                });
                match self
                    .ctx()
                    .swap(cas, (n + 1).to_string().into_bytes())
                    .expect("no trap")
                {
                    Ok(()) => return attempt,
                    Err(atomics::CasError::CasFailed(retry)) => cas = retry,
                    Err(atomics::CasError::StoreError(e)) => panic!("store error {e:?}"),
                }
            }
            unreachable!()
        }
    }

    #[test]
    fn plain_operations_and_batches() -> TestResult {
        on_both(|kv| {
            let mut g = Guest::open(kv, "default");
            let b = g.borrower();
            assert_eq!(ok(g.ctx().get(b(), "a".into())), None);
            assert!(!ok(g.ctx().exists(b(), "a".into())));
            ok(g.ctx().set(b(), "a".into(), vec![0, 255, 1]));
            ok(g.ctx().set(b(), "b".into(), b"".to_vec()));
            assert_eq!(ok(g.ctx().get(b(), "a".into())), Some(vec![0, 255, 1]));
            assert!(ok(g.ctx().exists(b(), "b".into())), "an empty value exists");
            let mut keys = ok(g.ctx().list_keys(b(), None)).keys;
            keys.sort();
            assert_eq!(keys, ["a", "b"]);
            assert!(g.ctx().list_keys(b(), Some("x".into()))?.is_err());

            ok(g.ctx().set_many(
                b(),
                vec![("c".into(), b"3".to_vec()), ("d".into(), b"4".to_vec())],
            ));
            assert_eq!(
                ok(g.ctx()
                    .get_many(b(), vec!["c".into(), "x".into(), "a".into()])),
                vec![
                    ("c".to_owned(), Some(b"3".to_vec())),
                    ("x".to_owned(), None),
                    ("a".to_owned(), Some(vec![0, 255, 1])),
                ]
            );
            ok(g.ctx().delete_many(b(), vec!["c".into(), "x".into()]));
            ok(g.ctx().delete(b(), "a".into()));
            ok(g.ctx().delete(b(), "never".into()));
            assert_eq!(ok(g.ctx().get(b(), "a".into())), None);
            let mut keys = ok(g.ctx().list_keys(b(), None)).keys;
            keys.sort();
            assert_eq!(keys, ["b", "d"]);
            assert_eq!(ok(g.ctx().get_many(b(), Vec::new())), Vec::new());
            ok(g.ctx().set_many(b(), Vec::new()));
            Ok(())
        })
    }

    #[test]
    fn increment_counts_from_zero_and_refuses_what_is_not_a_counter() -> TestResult {
        on_both(|kv| {
            let mut g = Guest::open(kv, "default");
            let b = g.borrower();
            assert_eq!(ok(g.ctx().increment(b(), "n".into(), 5)), 5);
            assert_eq!(ok(g.ctx().increment(b(), "n".into(), -7)), -2);
            assert_eq!(ok(g.ctx().increment(b(), "n".into(), 0)), -2);
            assert_eq!(kv.get_i64("default", "n"), Some(-2));
            // The backend's own form: little-endian bytes in memory (as
            // Spin's SQLite store), decimal text on Redis (INCRBY).
            let stored = kv.get("default", "n").expect("stored");
            if kv.describe() == "memory" {
                assert_eq!(stored, (-2i64).to_le_bytes());
            } else {
                assert_eq!(stored, b"-2");
            }

            kv.set("default", "n", "twelve");
            assert!(g.ctx().increment(b(), "n".into(), 1)?.is_err());
            assert_eq!(kv.get("default", "n"), Some(b"twelve".to_vec()));

            // Overflow is an error and leaves the value as it was.
            assert_eq!(ok(g.ctx().increment(b(), "m".into(), i64::MAX)), i64::MAX);
            assert!(g.ctx().increment(b(), "m".into(), 1)?.is_err());
            assert_eq!(kv.get_i64("default", "m"), Some(i64::MAX));
            Ok(())
        })
    }

    #[test]
    fn swap_fails_after_any_intervening_write() -> TestResult {
        on_both(|kv| {
            let mut g = Guest::open(kv, "b");
            let b = g.borrower();

            // Absent key, then written and deleted: still a conflict (no ABA).
            let cas = ok(g.ctx().new(b(), "k".into()));
            assert_eq!(ok(g.ctx().current(Resource::new_borrow(cas.rep()))), None);
            ok(g.ctx().set(b(), "k".into(), b"x".to_vec()));
            ok(g.ctx().delete(b(), "k".into()));
            let retry = match g.ctx().swap(cas, b"mine".to_vec())? {
                Err(atomics::CasError::CasFailed(retry)) => retry,
                other => panic!("expected cas-failed, got {other:?}"),
            };
            assert_eq!(kv.get("b", "k"), None);

            // The fresh handle holds the latest version and succeeds.
            assert!(g.ctx().swap(retry, b"mine".to_vec())?.is_ok());
            assert_eq!(kv.get("b", "k"), Some(b"mine".to_vec()));

            // The same bytes written back are a write too.
            let cas = ok(g.ctx().new(b(), "k".into()));
            assert_eq!(
                ok(g.ctx().current(Resource::new_borrow(cas.rep()))),
                Some(b"mine".to_vec())
            );
            kv.set("b", "k", "mine");
            assert!(matches!(
                g.ctx().swap(cas, b"again".to_vec())?,
                Err(atomics::CasError::CasFailed(_))
            ));

            // Two handles on one key: the first swap wins.
            let first = ok(g.ctx().new(b(), "k".into()));
            let second = ok(g.ctx().new(b(), "k".into()));
            for cas in [&first, &second] {
                ok(g.ctx().current(Resource::new_borrow(cas.rep())));
            }
            assert!(g.ctx().swap(first, b"1".to_vec())?.is_ok());
            assert!(matches!(
                g.ctx().swap(second, b"2".to_vec())?,
                Err(atomics::CasError::CasFailed(_))
            ));
            assert_eq!(kv.get("b", "k"), Some(b"1".to_vec()));

            // A handle dropped unused leaves nothing watched behind: the
            // next one (on Redis, likely the same connection) swaps fine
            // after a write to the first key.
            let unused = ok(g.ctx().new(b(), "k".into()));
            atomics::HostCas::drop(&mut g.ctx(), unused)?;
            let other = ok(g.ctx().new(b(), "j".into()));
            ok(g.ctx().current(Resource::new_borrow(other.rep())));
            kv.set("b", "k", "changed");
            assert!(g.ctx().swap(other, b"j".to_vec())?.is_ok());

            // Outage: store errors, not cas-failed.
            let cas = ok(g.ctx().new(b(), "k".into()));
            kv.set_available(false);
            match g.ctx().swap(cas, b"other".to_vec())? {
                Err(atomics::CasError::StoreError(store::Error::Other(msg))) => {
                    assert_eq!(msg, UNAVAILABLE)
                }
                other => panic!("expected store-error, got {other:?}"),
            }
            assert!(g.ctx().get(b(), "k".into())?.is_err());
            assert!(g.ctx().open("default".into())?.is_err());
            kv.set_available(true);
            Ok(())
        })
    }

    /// Instances on several threads, each with its own handles (and on
    /// Redis its own connections), lose no compare-and-swap update.
    #[test]
    fn concurrent_compare_and_swap_loses_no_update() -> TestResult {
        const THREADS: usize = 8;
        const EACH: usize = 40;
        on_both(|kv| {
            let conflicts: usize = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..THREADS)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut g = Guest::open(kv, "default");
                            (0..EACH).map(|_| g.cas_increment("hot") - 1).sum::<usize>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().expect("no panic"))
                    .sum()
            });
            assert_eq!(
                kv.get("default", "hot"),
                Some((THREADS * EACH).to_string().into_bytes()),
                "after {conflicts} conflicts"
            );
            Ok(())
        })
    }

    /// Redis killed: every call is a guest-visible error (not a trap, not a
    /// hang); restarted: the next calls succeed at once on what it had
    /// acknowledged, though every pooled connection died with it.
    #[test]
    fn redis_restarted_is_used_again_with_nothing_lost() -> TestResult {
        let mut server = RedisServer::start_durable()?;
        let kv = KvStore::redis(&server.url())?;
        let mut g = Guest::open(&kv, "default");
        let b = g.borrower();
        assert_eq!(ok(g.ctx().increment(b(), "n".into(), 3)), 3);
        // Park a few connections in the pool.
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| Guest::open(&kv, "default").cas_increment("c"));
            }
        });
        server.kill();
        let started = std::time::Instant::now();
        assert!(g.ctx().increment(b(), "n".into(), 1)?.is_err());
        assert!(g.ctx().get(b(), "n".into())?.is_err());
        assert!(g.ctx().new(b(), "c".into())?.is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        server.restart()?;
        std::thread::sleep(super::super::kv_redis::IDLE_CHECK);
        assert_eq!(ok(g.ctx().increment(b(), "n".into(), 1)), 4);
        assert_eq!(ok(g.ctx().get(b(), "c".into())), Some(b"3".to_vec()));
        assert_eq!(g.cas_increment("c"), 1);
        assert_eq!(kv.get("default", "c"), Some(b"4".to_vec()));
        Ok(())
    }
}

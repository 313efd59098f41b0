//! In-memory implementations of the [`crate::platform`] traits, and fakes
//! for tests: a clock you move by hand, a store you can take down, seeded
//! randomness and an HTTP client with canned answers.
//!
//! [`MemoryStore`] is also the real store where no shared one exists: the
//! browser, and native runs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{Request, Response};
use crate::platform::{
    AtomicStore, CasOutcome, Clock, HttpClient, HttpError, KeyValueStore, Random, SendOptions,
    StoreError, Timestamp, Transaction,
};

/// A store in process memory, atomic under a mutex. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of keys stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave a map half-updated:
        // every operation is a single insert or remove.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters are stored as 8 little-endian bytes.
fn decode_counter(key: &str, bytes: &[u8]) -> Result<i64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("counter has {} bytes, expected 8", bytes.len()),
    })?;
    Ok(i64::from_le_bytes(array))
}

#[async_trait(?Send)]
impl KeyValueStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }
}

#[async_trait(?Send)]
impl AtomicStore for MemoryStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let mut entries = self.lock();
        let old = match entries.get(key) {
            Some(bytes) => decode_counter(key, bytes)?,
            None => 0,
        };
        let new = old.saturating_add(delta);
        entries.insert(key.to_owned(), new.to_le_bytes().to_vec());
        Ok(new)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        let mut entries = self.lock();
        let current = entries.get(key).map(Vec::as_slice);
        if current != expected {
            return Ok(CasOutcome::Conflict {
                current: current.map(<[u8]>::to_vec),
            });
        }
        entries.insert(key.to_owned(), new.to_vec());
        Ok(CasOutcome::Swapped)
    }
}

/// A store wrapper that can be taken down: while down, every operation
/// fails with [`StoreError::Unavailable`]. Cloning shares the switch.
#[derive(Debug, Clone)]
pub struct FlakyStore<S> {
    inner: S,
    up: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl<S> FlakyStore<S> {
    /// Wraps `inner`, initially up.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            up: Arc::new(AtomicBool::new(true)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes the store down (`false`) or brings it back (`true`).
    pub fn set_available(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// How many operations were attempted, up or down.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("store taken down by test".into()))
        }
    }
}

#[async_trait(?Send)]
impl<S: KeyValueStore> KeyValueStore for FlakyStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }
}

#[async_trait(?Send)]
impl<S: AtomicStore> AtomicStore for FlakyStore<S> {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.check()?;
        self.inner.increment(key, delta).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        self.check()?;
        self.inner.compare_and_swap(key, expected, new).await
    }

    async fn transact(&self, key: &str, tx: &Transaction<'_>) -> Result<Vec<u8>, StoreError> {
        self.check()?;
        self.inner.transact(key, tx).await
    }
}

/// A clock that only moves when told to. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    nanos: Arc<AtomicU64>,
}

impl FakeClock {
    /// A clock standing at `start`.
    pub fn at(start: Timestamp) -> Self {
        let clock = Self::default();
        clock.set(start);
        clock
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        let nanos = u64::try_from(t.0.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(nanos, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(Duration::from_nanos(self.nanos.load(Ordering::SeqCst)))
    }
}

/// Deterministic bytes from a seed (SplitMix64), for reproducible tests.
/// Not for secrets.
#[derive(Debug, Default)]
pub struct SeededRandom {
    state: AtomicU64,
}

impl SeededRandom {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), getrandom::Error> {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// What one call to a URL of a [`StaticHttpClient`] does, when scripted
/// with [`StaticHttpClient::script`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The URL's canned response (see [`StaticHttpClient::route`]), at once.
    Canned,
    /// An empty answer with this status.
    Status(http::StatusCode),
    /// A transport failure, as a refused connection.
    Fail,
    /// The canned response after this long. Longer than the send's
    /// timeout is [`HttpError::Timeout`] after the timeout.
    Delay(Duration),
}

/// An HTTP client answering from a table of canned responses keyed by URL
/// (without query), counting the calls per URL and keeping the last
/// request sent to each. Unknown URLs fail. Calls can be scripted per URL
/// ([`Outcome`]: slow, failing, a status), and with a [`FakeClock`]
/// ([`StaticHttpClient::on_clock`]) delays, timeouts and
/// [`sleep`](HttpClient::sleep)s move that clock, so tests of timeouts
/// and backoff stay deterministic.
#[derive(Debug, Clone, Default)]
pub struct StaticHttpClient {
    routes: Arc<Mutex<HashMap<String, Response>>>,
    scripts: Arc<Mutex<HashMap<String, VecDeque<Outcome>>>>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    last: Arc<Mutex<HashMap<String, Request>>>,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    clock: Option<FakeClock>,
}

impl StaticHttpClient {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose delays, timeouts and sleeps move `clock`.
    pub fn on_clock(clock: FakeClock) -> Self {
        StaticHttpClient {
            clock: Some(clock),
            ..Self::default()
        }
    }

    /// Answers `url` with `response` from now on.
    pub fn route(&self, url: &str, response: Response) {
        lock(&self.routes).insert(url.to_owned(), response);
    }

    /// The next calls to `url` do what `outcomes` say, in order; after
    /// them, [`Outcome::Canned`].
    pub fn script(&self, url: &str, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.scripts)
            .entry(url.to_owned())
            .or_default()
            .extend(outcomes);
    }

    /// How many requests were sent to `url`.
    pub fn calls(&self, url: &str) -> usize {
        lock(&self.calls).get(url).copied().unwrap_or(0)
    }

    /// The last request sent to `url` (what an origin would have seen).
    pub fn last_request(&self, url: &str) -> Option<Request> {
        lock(&self.last).get(url).cloned()
    }

    /// Every [`sleep`](HttpClient::sleep) so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.sleeps).clone()
    }

    fn advance(&self, by: Duration) {
        if let Some(clock) = &self.clock {
            clock.advance(by);
        }
    }

    fn canned(&self, url: &str) -> Result<Response, HttpError> {
        let routes = lock(&self.routes);
        let canned = routes.get(url).ok_or_else(|| HttpError::Transport {
            url: url.to_owned(),
            reason: "no canned response".into(),
        })?;
        let mut response = Response::new(canned.body().clone());
        *response.status_mut() = canned.status();
        *response.headers_mut() = canned.headers().clone();
        Ok(response)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait(?Send)]
impl HttpClient for StaticHttpClient {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        self.send_with(req, &SendOptions::default()).await
    }

    async fn send_with(&self, req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let url = crate::platform::url_for_errors(req.uri());
        *lock(&self.calls).entry(url.clone()).or_default() += 1;
        lock(&self.last).insert(url.clone(), req);
        let outcome = lock(&self.scripts)
            .get_mut(&url)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Outcome::Canned);
        let delay = match outcome {
            Outcome::Delay(delay) => delay,
            _ => Duration::ZERO,
        };
        if let Some(timeout) = opts.timeout.filter(|t| delay > *t) {
            self.advance(timeout);
            return Err(HttpError::Timeout {
                url,
                after: timeout,
            });
        }
        self.advance(delay);
        match outcome {
            Outcome::Status(status) => {
                let mut response = Response::new(crate::model::Body::new());
                *response.status_mut() = status;
                Ok(response)
            }
            Outcome::Fail => Err(HttpError::Transport {
                url,
                reason: "connection refused (scripted)".into(),
            }),
            Outcome::Canned | Outcome::Delay(_) => self.canned(&url),
        }
    }

    async fn sleep(&self, duration: Duration) -> bool {
        lock(&self.sleeps).push(duration);
        self.advance(duration);
        true
    }
}

/// Every platform service in memory, for tests of whole functions: a store
/// that can be taken down, a clock moved by hand, seeded randomness, canned
/// outbound HTTP and captured logs. The store also serves as the cache.
#[derive(Debug)]
pub struct TestPlatform {
    /// The atomic store (and cache); `set_available(false)` takes it down.
    pub store: FlakyStore<MemoryStore>,
    /// The clock.
    pub clock: FakeClock,
    /// The randomness.
    pub random: SeededRandom,
    /// Outbound HTTP; its delays, timeouts and sleeps move `clock`.
    pub http: StaticHttpClient,
    /// Every log line written.
    pub logs: crate::log::MemorySink,
    /// The request metrics recorded.
    pub metrics: crate::metrics::Recorder,
}

impl TestPlatform {
    /// A fresh platform whose clock reads `start`.
    pub fn at(start: Timestamp) -> Self {
        let clock = FakeClock::at(start);
        TestPlatform {
            store: FlakyStore::new(MemoryStore::new()),
            http: StaticHttpClient::on_clock(clock.clone()),
            clock,
            random: SeededRandom::new(1),
            logs: crate::log::MemorySink::default(),
            metrics: crate::metrics::Recorder::new(),
        }
    }

    /// The services, as the native runtime.
    pub fn services(&self) -> crate::function::Services<'_> {
        crate::function::Services {
            runtime: crate::model::Runtime::Native,
            clock: &self.clock,
            store: &self.store,
            cache: &self.store,
            random: &self.random,
            http: &self.http,
            log_sink: &self.logs,
            metrics: Some(&self.metrics),
        }
    }

    /// Serves one request with [`crate::serve`] on these services.
    pub async fn serve<F: crate::EdgeFunction>(
        &self,
        instance: &crate::function::Instance<F>,
        req: Request,
    ) -> Response {
        crate::serve(instance, req, &self.services()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn increment_counts_and_reads_with_zero() {
        block_on(async {
            let store = MemoryStore::new();
            assert_eq!(store.increment("c", 0).await, Ok(0));
            assert_eq!(store.increment("c", 5).await, Ok(5));
            assert_eq!(store.increment("c", -2).await, Ok(3));
            assert_eq!(store.increment("c", 0).await, Ok(3));
        });
    }

    #[test]
    fn corrupt_counter_is_an_error_not_a_panic() {
        block_on(async {
            let store = MemoryStore::new();
            store.set("c", b"abc").await.unwrap();
            assert!(matches!(
                store.increment("c", 1).await,
                Err(StoreError::Corrupt { .. })
            ));
        });
    }

    #[test]
    fn cas_swaps_only_on_expected_value() {
        block_on(async {
            let store = MemoryStore::new();
            assert_eq!(
                store.compare_and_swap("k", None, b"a").await,
                Ok(CasOutcome::Swapped)
            );
            assert_eq!(
                store.compare_and_swap("k", None, b"b").await,
                Ok(CasOutcome::Conflict {
                    current: Some(b"a".to_vec())
                })
            );
            assert_eq!(
                store.compare_and_swap("k", Some(b"a"), b"b").await,
                Ok(CasOutcome::Swapped)
            );
            assert_eq!(store.get("k").await, Ok(Some(b"b".to_vec())));
        });
    }

    #[test]
    fn flaky_store_fails_while_down_and_recovers() {
        block_on(async {
            let store = FlakyStore::new(MemoryStore::new());
            store.increment("c", 1).await.unwrap();
            store.set_available(false);
            assert!(matches!(
                store.increment("c", 1).await,
                Err(StoreError::Unavailable(_))
            ));
            store.set_available(true);
            assert_eq!(store.increment("c", 1).await, Ok(2));
            assert_eq!(store.calls(), 3);
        });
    }

    #[test]
    fn concurrent_increments_from_threads_are_exact() {
        let store = MemoryStore::new();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        block_on(store.increment("c", 1)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(block_on(store.increment("c", 0)), Ok(8000));
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let clock = FakeClock::at(Timestamp::from_millis(1_000));
        assert_eq!(clock.now().as_millis(), 1_000);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now().as_millis(), 1_250);
    }

    #[test]
    fn scripted_calls_are_slow_time_out_fail_and_move_the_clock() {
        block_on(async {
            let clock = FakeClock::at(Timestamp::from_millis(0));
            let http = StaticHttpClient::on_clock(clock.clone());
            let url = "https://o.test/a";
            http.route(url, Response::new("ok".into()));
            http.script(
                url,
                [
                    Outcome::Delay(Duration::from_secs(5)),
                    Outcome::Delay(Duration::from_secs(1)),
                    Outcome::Fail,
                    Outcome::Status(http::StatusCode::SERVICE_UNAVAILABLE),
                ],
            );
            let get = || {
                http::Request::builder()
                    .uri("https://o.test/a?token=t")
                    .body(crate::model::Body::new())
                    .unwrap()
            };
            let opts = SendOptions::timeout(Duration::from_secs(2));
            assert_eq!(
                http.send_with(get(), &opts).await.unwrap_err(),
                HttpError::Timeout {
                    url: url.into(),
                    after: Duration::from_secs(2)
                }
            );
            assert_eq!(clock.now().as_millis(), 2_000, "moved by the timeout");
            let timeout = HttpError::Timeout {
                url: url.into(),
                after: Duration::from_nanos(29_999_933_331),
            };
            assert_eq!(
                timeout.to_string(),
                "outbound request to https://o.test/a timed out after 29s 999ms"
            );
            assert_eq!(http.send_with(get(), &opts).await.unwrap().body(), "ok");
            assert_eq!(clock.now().as_millis(), 3_000, "moved by the delay");
            assert!(matches!(
                http.send(get()).await,
                Err(HttpError::Transport { .. })
            ));
            assert_eq!(http.send(get()).await.unwrap().status(), 503);
            assert_eq!(http.send(get()).await.unwrap().body(), "ok");
            assert_eq!(http.calls(url), 5);
            assert!(http.sleep(Duration::from_millis(250)).await);
            assert_eq!(clock.now().as_millis(), 3_250);
            assert_eq!(http.sleeps(), [Duration::from_millis(250)]);
        });
    }

    #[test]
    fn seeded_random_is_reproducible() {
        let (a, b) = (SeededRandom::new(7), SeededRandom::new(7));
        let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 20]);
    }

    /// A store that lets another writer slip in before each of the first
    /// `conflicts` compare-and-swaps, as a busy key would.
    struct Contended {
        inner: MemoryStore,
        conflicts: std::cell::Cell<u32>,
    }

    #[async_trait(?Send)]
    impl KeyValueStore for Contended {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key).await
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.inner.set(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
    }

    #[async_trait(?Send)]
    impl AtomicStore for Contended {
        async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            self.inner.increment(key, delta).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> Result<CasOutcome, StoreError> {
            if self.conflicts.get() > 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                let other = self.inner.get(key).await?.unwrap_or_default();
                self.inner
                    .set(key, &[other, b"x".to_vec()].concat())
                    .await?;
            }
            self.inner.compare_and_swap(key, expected, new).await
        }
    }

    #[test]
    fn update_retries_conflicts_then_gives_up_at_its_bound() {
        block_on(async {
            let store = Contended {
                inner: MemoryStore::new(),
                conflicts: std::cell::Cell::new(3),
            };
            let append = |old: Option<&[u8]>| {
                let new = [old.unwrap_or_default(), b"y"].concat();
                (new.clone(), new)
            };
            // Three writers slip in; the fourth attempt wins and keeps their writes.
            let result = crate::platform::update(&store, "k", 4, append).await;
            assert_eq!(result, Ok(b"xxxy".to_vec()));
            store.conflicts.set(10);
            let result = crate::platform::update(&store, "k", 4, append).await;
            assert_eq!(result, Err(StoreError::Contention(4)));
        });
    }

    /// A transaction appending `input`, or, with an empty input, only
    /// reading (writing nothing).
    fn append_tx(
        _name: &str,
        input: &[u8],
        current: Option<&[u8]>,
        _now: Timestamp,
    ) -> Result<crate::platform::Applied, String> {
        let new = [current.unwrap_or_default(), input].concat();
        Ok(crate::platform::Applied {
            value: (!input.is_empty()).then(|| new.clone()),
            expires_at: None,
            output: new,
        })
    }

    #[test]
    fn transactions_retry_conflicts_and_reads_write_nothing() {
        block_on(async {
            let store = Contended {
                inner: MemoryStore::new(),
                conflicts: std::cell::Cell::new(2),
            };
            let clock = FakeClock::default();
            let tx = |input: &'static [u8], max_attempts| Transaction {
                name: "append",
                input,
                run: append_tx,
                clock: &clock,
                max_attempts,
            };
            // Two writers slip in; the third attempt wins and keeps their writes.
            assert_eq!(store.transact("k", &tx(b"y", 3)).await, Ok(b"xxy".to_vec()));
            store.conflicts.set(1);
            assert_eq!(store.transact("k", &tx(b"", 1)).await, Ok(b"xxy".to_vec()));
            assert_eq!(store.conflicts.get(), 1, "a read makes no compare-and-swap");
            store.conflicts.set(5);
            assert_eq!(
                store.transact("k", &tx(b"z", 2)).await,
                Err(StoreError::Contention(2))
            );
        });
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Set(u8, Vec<u8>),
        Delete(u8),
        Increment(u8, i64),
        Cas(u8, Option<Vec<u8>>, Vec<u8>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let key = 0u8..3;
        let value = proptest::collection::vec(any::<u8>(), 0..4);
        prop_oneof![
            key.clone().prop_map(Op::Get),
            (key.clone(), value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
            key.clone().prop_map(Op::Delete),
            (key.clone(), -5i64..5).prop_map(|(k, d)| Op::Increment(k, d)),
            (key, proptest::option::of(value.clone()), value)
                .prop_map(|(k, e, n)| Op::Cas(k, e, n)),
        ]
    }

    proptest::proptest! {
        /// The semantics every store backend must share, checked against a
        /// plain map: CAS swaps exactly when the value is the expected one,
        /// increments count from absent as 0 and fail (not panic) on values
        /// that are not counters.
        #[test]
        fn memory_store_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
            let store = MemoryStore::new();
            let mut model: HashMap<String, Vec<u8>> = HashMap::new();
            for op in ops {
                block_on(async {
                    match op {
                        Op::Get(k) => {
                            let key = k.to_string();
                            assert_eq!(store.get(&key).await, Ok(model.get(&key).cloned()));
                        }
                        Op::Set(k, v) => {
                            store.set(&k.to_string(), &v).await.unwrap();
                            model.insert(k.to_string(), v);
                        }
                        Op::Delete(k) => {
                            store.delete(&k.to_string()).await.unwrap();
                            model.remove(&k.to_string());
                        }
                        Op::Increment(k, d) => {
                            let key = k.to_string();
                            let got = store.increment(&key, d).await;
                            match model.get(&key).map(|b| <[u8; 8]>::try_from(b.as_slice())) {
                                None => {
                                    assert_eq!(got, Ok(d));
                                    model.insert(key, d.to_le_bytes().to_vec());
                                }
                                Some(Ok(bytes)) => {
                                    let n = i64::from_le_bytes(bytes).saturating_add(d);
                                    assert_eq!(got, Ok(n));
                                    model.insert(key, n.to_le_bytes().to_vec());
                                }
                                Some(Err(_)) => assert!(matches!(got, Err(StoreError::Corrupt { .. }))),
                            }
                        }
                        Op::Cas(k, expected, new) => {
                            let key = k.to_string();
                            let current = model.get(&key).cloned();
                            let got = store.compare_and_swap(&key, expected.as_deref(), &new).await;
                            if current == expected {
                                assert_eq!(got, Ok(CasOutcome::Swapped));
                                model.insert(key, new);
                            } else {
                                assert_eq!(got, Ok(CasOutcome::Conflict { current }));
                            }
                        }
                    }
                });
            }
        }
    }
}

//! The traits a platform provides to the functions: time, storage,
//! randomness and outbound HTTP.
//!
//! They exist so that the functions stay portable and testable: each
//! platform implements them once in its glue crate, and [`crate::memory`]
//! holds in-memory implementations and fakes. All are `?Send` because wasm
//! platforms are single-threaded and their futures are not `Send`.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{Request, Response};

/// A point in time: the duration since the Unix epoch, UTC.
///
/// On `wasm32-unknown-unknown`, `std::time::SystemTime::now()` panics, so
/// time always comes from a [`Clock`] the platform supplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub Duration);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub fn from_millis(ms: u64) -> Self {
        Timestamp(Duration::from_millis(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// RFC 3339 / ISO 8601 in UTC with milliseconds, e.g. `2026-11-22T00:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + self.0).to_string()
    }
}

/// A source of wall-clock time.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// Why a store operation failed. The message never holds stored values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-swap loop gave up after this many conflicting attempts.
    #[error("store contention: gave up after {0} attempts")]
    Contention(u32),
    /// A stored value could not be decoded.
    #[error("corrupt value under key {key:?}: {reason}")]
    Corrupt {
        /// The key whose value is corrupt.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// A plain key-value store: Workers KV, Spin key-value, memory. It may be
/// eventually consistent, so use it for caches, never for counting.
#[async_trait(?Send)]
pub trait KeyValueStore {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, replacing what was there.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// The result of [`AtomicStore::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was what the caller expected and is now the new value.
    Swapped,
    /// Another writer got there first; this is the value now stored.
    Conflict {
        /// The current value (`None` when the key is absent).
        current: Option<Vec<u8>>,
    },
}

/// A strongly consistent store with atomic updates: a Durable Object on
/// Workers, `wasi:keyvalue/atomics` on Spin. This is what makes counting
/// (and so rate limiting) exact under concurrency.
///
/// Counters written by [`increment`](AtomicStore::increment) are read with
/// `increment(key, 0)`: their byte encoding is the platform's own.
#[async_trait(?Send)]
pub trait AtomicStore: KeyValueStore {
    /// Adds `delta` to the counter under `key` (absent counts as 0) and
    /// returns the new value.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;

    /// Sets `key` to `new` only if its current value equals `expected`
    /// (`None`: the key must be absent).
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<CasOutcome, StoreError>;

    /// Runs `tx` on the value under `key` atomically and returns its
    /// output. The default runs it here with compare-and-swap
    /// ([`transact_with_cas`]); a store that can run code next to the value
    /// overrides this to do it in one round trip.
    async fn transact(&self, key: &str, tx: &Transaction<'_>) -> Result<Vec<u8>, StoreError> {
        transact_with_cas(self, key, tx).await
    }
}

/// Applies `update` to the value under `key` with compare-and-swap, retrying
/// on conflict at most `max_attempts` times. `update` sees the current value
/// and returns the new one plus a result for the caller.
///
/// # Examples
///
/// ```
/// use edge_core::{memory::MemoryStore, platform::update};
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new();
/// let n = update(&store, "k", 8, |old| {
///     let n = old.map_or(0, |b| b.len()) + 1;
///     (vec![0; n], n)
/// })
/// .await
/// .unwrap();
/// assert_eq!(n, 1);
/// # });
/// ```
pub async fn update<S, T, F>(
    store: &S,
    key: &str,
    max_attempts: u32,
    mut update: F,
) -> Result<T, StoreError>
where
    S: AtomicStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> (Vec<u8>, T),
{
    cas_loop(store, key, max_attempts, |current| {
        let (new, result) = update(current);
        Ok((Some(new), result))
    })
    .await
}

/// [`update`] for a JSON value: `change` edits the decoded value (the
/// default when `key` is absent). A stored value that does not decode is
/// [`StoreError::Corrupt`] and is left as it is, never overwritten.
pub async fn update_json<S, T, R, F>(
    store: &S,
    key: &str,
    max_attempts: u32,
    mut change: F,
) -> Result<R, StoreError>
where
    S: AtomicStore + ?Sized,
    T: serde::Serialize + serde::de::DeserializeOwned + Default,
    F: FnMut(&mut T) -> R,
{
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    };
    cas_loop(store, key, max_attempts, |current| {
        let mut value: T = match current {
            Some(bytes) => serde_json::from_slice(bytes).map_err(corrupt)?,
            None => T::default(),
        };
        let result = change(&mut value);
        let bytes = serde_json::to_vec(&value).map_err(corrupt)?;
        Ok((Some(bytes), result))
    })
    .await
}

/// The compare-and-swap loop behind [`update`], [`update_json`] and
/// [`transact_with_cas`]:
/// `step` sees the current value and returns the value to write (`None`:
/// write nothing and return at once) and the caller's result.
async fn cas_loop<S, T, F>(
    store: &S,
    key: &str,
    max_attempts: u32,
    mut step: F,
) -> Result<T, StoreError>
where
    S: AtomicStore + ?Sized,
    F: FnMut(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), StoreError>,
{
    let mut current = store.get(key).await?;
    for _ in 0..max_attempts {
        let (new, result) = step(current.as_deref())?;
        let Some(new) = new else {
            return Ok(result);
        };
        match store
            .compare_and_swap(key, current.as_deref(), &new)
            .await?
        {
            CasOutcome::Swapped => return Ok(result),
            CasOutcome::Conflict { current: now } => current = now,
        }
    }
    Err(StoreError::Contention(max_attempts))
}

/// What a [`TransactionFn`] decided for one stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new value (`None`: leave the stored value as it is).
    pub value: Option<Vec<u8>>,
    /// When the new value stops mattering (it equals "absent" from then
    /// on), so a store that can expire keys may drop it.
    pub expires_at: Option<Timestamp>,
    /// The answer for the caller.
    pub output: Vec<u8>,
}

/// A pure read-modify-write of one stored value: given the named
/// transaction, its input, the current value and the time, what to store
/// and what to answer. It is what a Redis script is to Redis: stores that
/// can run code next to the value (a Durable Object) run it there in one
/// round trip; the others run it in a compare-and-swap loop
/// ([`AtomicStore::transact`]'s default). It must be deterministic and may
/// only depend on its arguments, because either side may run it.
pub type TransactionFn =
    fn(name: &str, input: &[u8], current: Option<&[u8]>, now: Timestamp) -> Result<Applied, String>;

/// One transaction to run with [`AtomicStore::transact`].
#[derive(Clone, Copy)]
pub struct Transaction<'a> {
    /// The transaction's name, which the runner dispatches on.
    pub name: &'a str,
    /// Its serialized arguments.
    pub input: &'a [u8],
    /// The code, for stores that run it on the caller's side.
    pub run: TransactionFn,
    /// The caller's clock, for stores that run it on the caller's side.
    pub clock: &'a dyn Clock,
    /// How many compare-and-swap attempts the caller's side may make.
    pub max_attempts: u32,
}

/// Runs `tx` on the caller's side with compare-and-swap, retrying on
/// conflict at most `tx.max_attempts` times: the default of
/// [`AtomicStore::transact`].
pub async fn transact_with_cas<S: AtomicStore + ?Sized>(
    store: &S,
    key: &str,
    tx: &Transaction<'_>,
) -> Result<Vec<u8>, StoreError> {
    cas_loop(store, key, tx.max_attempts.max(1), |current| {
        let applied = (tx.run)(tx.name, tx.input, current, tx.clock.now()).map_err(|reason| {
            StoreError::Corrupt {
                key: key.to_owned(),
                reason,
            }
        })?;
        Ok((applied.value, applied.output))
    })
    .await
}

/// A source of cryptographically secure random bytes.
pub trait Random {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), getrandom::Error>;
}

/// Random bytes from the operating system or the JS runtime, through `getrandom`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), getrandom::Error> {
        getrandom::fill(buf)
    }
}

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The request could not be sent or no response arrived.
    #[error("outbound request to {url} failed: {reason}")]
    Transport {
        /// The URL, without its query string.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// This platform offers no outbound HTTP.
    #[error("outbound HTTP is not available on this platform")]
    Unsupported,
    /// No whole response arrived within the timeout (see [`SendOptions`]).
    #[error("outbound request to {url} timed out after {}", to_millis(*after))]
    Timeout {
        /// The URL, without its query string.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },
}

/// `duration` to the millisecond, for messages.
fn to_millis(duration: Duration) -> humantime::FormattedDuration {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis))
}

/// How to send one outbound request ([`HttpClient::send_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Give up with [`HttpError::Timeout`] when the whole exchange —
    /// connecting, the response head and its body — takes longer. `None`:
    /// the platform's own limits.
    pub timeout: Option<Duration>,
}

impl SendOptions {
    /// Options with a timeout.
    pub fn timeout(timeout: Duration) -> Self {
        SendOptions {
            timeout: Some(timeout),
        }
    }
}

/// Outbound HTTP: JWKS and OIDC discovery fetches, forwarding to origins.
#[async_trait(?Send)]
pub trait HttpClient {
    /// Sends `req` and returns the whole response.
    async fn send(&self, req: Request) -> Result<Response, HttpError>;

    /// Sends `req` under `opts`. The default ignores the timeout (a client
    /// that cannot enforce one); every platform's client overrides it.
    async fn send_with(&self, req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let _ = opts;
        self.send(req).await
    }

    /// Waits `duration` (the backoff between retries) and returns `true`;
    /// the default, for a platform without a timer, returns `false` at
    /// once, and callers retry without a pause.
    async fn sleep(&self, duration: Duration) -> bool {
        let _ = duration;
        false
    }
}

/// The URL of a request without its query string, for error messages that
/// must not leak tokens passed as query parameters.
pub fn url_for_errors(uri: &http::Uri) -> String {
    let mut s = String::new();
    if let Some(scheme) = uri.scheme_str() {
        s.push_str(scheme);
        s.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        s.push_str(authority.as_str());
    }
    s.push_str(uri.path());
    s
}

/// The operating system's clock (`std::time::SystemTime`): native and
/// `wasm32-wasip2`. Never use it on `wasm32-unknown-unknown`, where
/// `SystemTime::now()` panics; Workers and browsers supply `Date.now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }
}

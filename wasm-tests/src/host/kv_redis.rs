//! The Redis backend of [`KvStore`](super::KvStore): what Spin's own
//! `key-value-redis` store (spinframework/spin, `crates/key-value-redis`)
//! does, command for command, on the `redis` crate's synchronous API.
//!
//! | `wasi:keyvalue` | Redis |
//! |---|---|
//! | `get` / `set` / `delete` / `exists` | `GET` / `SET` / `DEL` / `EXISTS` |
//! | `list-keys` | `KEYS *` (a cursor is refused, as by the in-memory store) |
//! | `get-many` / `set-many` / `delete-many` | `MGET` / `MSET` / `DEL` |
//! | `atomics.increment` | `INCRBY`: the value is Redis' decimal text, a missing key counts as 0 |
//! | `cas.new`, `cas.current` | `WATCH key` (again, after `UNWATCH`, on `current`), then `GET` |
//! | `atomics.swap` | `MULTI`, `SET`, `EXEC` on the watching connection: a nil `EXEC` is `cas-failed` |
//!
//! Every label opens the same Redis database, as Spin maps a label to one
//! Redis URL and does not prefix keys. Redis errors (a non-integer value
//! under `INCRBY`, an overflow, a refused or broken connection) are
//! `error::other` with Redis' message, as Spin's `log_error` makes them.
//!
//! Differences from Spin, all on the side of safety: Spin's `current` adds
//! a `WATCH` without dropping an earlier one and shares its
//! `ConnectionManager` between handles of a store; here each
//! compare-and-swap handle owns a connection, so one handle's `WATCH` never
//! covers another's transaction. A `WATCH` fails the transaction on any
//! write to the key since `current`, even one writing the same bytes back,
//! so this store, like the in-memory one, has no A→B→A hole.
//!
//! Connections are pooled. A connection idle for longer than
//! [`IDLE_CHECK`] is checked with `PING` before use, and every pooled
//! connection is dropped after an I/O error, so a host whose Redis was
//! restarted does not fail its first requests on dead sockets; a command is
//! never retried, since a reply lost with a killed server may belong to a
//! write that happened.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, RedisResult, Value};

use super::bindings::wasi::keyvalue::store;

/// How long connecting to Redis may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command may wait for its reply.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is pinged before it is used.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(250);
/// Idle connections kept per store.
const MAX_IDLE: usize = 64;

/// A Redis database behind `wasi:keyvalue`: a client and its idle
/// connections.
pub(crate) struct RedisKv {
    client: Client,
    /// Where it is, for messages (`redis://127.0.0.1:6379/`, never a password).
    shown: String,
    pool: Arc<Pool>,
}

struct Pool {
    idle: Mutex<Vec<(Connection, Instant)>>,
}

impl Pool {
    fn idle(&self) -> MutexGuard<'_, Vec<(Connection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push((connection, Instant::now()));
        }
    }
}

/// The guest-visible form of a Redis error.
fn other(e: &RedisError) -> store::Error {
    store::Error::Other(format!("redis: {e}"))
}

impl RedisKv {
    /// A store on the Redis at `url` (`redis://HOST:PORT[/DB]`). Connects
    /// once to check that it answers.
    pub(crate) fn connect(url: &str) -> anyhow::Result<RedisKv> {
        let client = Client::open(url).map_err(|e| anyhow::anyhow!("Redis URL {url:?}: {e}"))?;
        let info = client.get_connection_info();
        let shown = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let kv = RedisKv {
            client,
            shown,
            pool: Arc::new(Pool {
                idle: Mutex::default(),
            }),
        };
        let connection = kv
            .open()
            .map_err(|e| anyhow::anyhow!("Redis at {}: {e}", kv.shown))?;
        kv.pool.give_back(connection);
        Ok(kv)
    }

    /// `redis://HOST:PORT/DB`.
    pub(crate) fn address(&self) -> &str {
        &self.shown
    }

    fn open(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(connection)
    }

    /// A connection that answers: an idle one (pinged if it waited longer
    /// than [`IDLE_CHECK`]) or a new one.
    fn take(&self) -> Result<Connection, store::Error> {
        loop {
            let Some((mut connection, since)) = self.pool.idle().pop() else {
                break;
            };
            if since.elapsed() < IDLE_CHECK
                || redis::cmd("PING").query::<()>(&mut connection).is_ok()
            {
                return Ok(connection);
            }
        }
        self.open().map_err(|e| other(&e))
    }

    /// What to do with a connection whose command failed with `e`: a
    /// broken connection means the others may be broken too.
    fn failed(&self, e: &RedisError) -> store::Error {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            self.pool.idle().clear();
        }
        other(e)
    }

    /// Runs `f` on a pooled connection; the connection goes back to the
    /// pool if `f` succeeded, else it is dropped.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, store::Error> {
        let mut connection = self.take()?;
        match f(&mut connection) {
            Ok(value) => {
                self.pool.give_back(connection);
                Ok(value)
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, store::Error> {
        self.run(|c| redis::cmd("GET").arg(key).query(c))
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), store::Error> {
        self.run(|c| redis::cmd("SET").arg(key).arg(value).query(c))
    }

    pub(crate) fn delete(&self, keys: &[String]) -> Result<(), store::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.run(|c| redis::cmd("DEL").arg(keys).query::<i64>(c))
            .map(drop)
    }

    pub(crate) fn exists(&self, key: &str) -> Result<bool, store::Error> {
        self.run(|c| redis::cmd("EXISTS").arg(key).query(c))
    }

    pub(crate) fn keys(&self) -> Result<Vec<String>, store::Error> {
        self.run(|c| redis::cmd("KEYS").arg("*").query(c))
    }

    pub(crate) fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, store::Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|c| redis::cmd("MGET").arg(keys).query(c))
    }

    pub(crate) fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), store::Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.run(|c| {
            let mut cmd = redis::cmd("MSET");
            for (key, value) in pairs {
                cmd.arg(key).arg(value);
            }
            cmd.query(c)
        })
    }

    pub(crate) fn increment(&self, key: &str, delta: i64) -> Result<i64, store::Error> {
        self.run(|c| redis::cmd("INCRBY").arg(key).arg(delta).query(c))
    }

    /// Starts a compare-and-swap on `key`: a connection of its own,
    /// watching the key from now on.
    pub(crate) fn watch(&self, key: &str) -> Result<Watch, store::Error> {
        let mut connection = self.take()?;
        match redis::cmd("WATCH").arg(key).query::<()>(&mut connection) {
            Ok(()) => Ok(Watch {
                connection: Some(connection),
                pool: Arc::clone(&self.pool),
            }),
            Err(e) => Err(self.failed(&e)),
        }
    }
}

/// A connection watching one key for a compare-and-swap handle. Dropped
/// unused, it is unwatched and goes back to the pool.
pub(crate) struct Watch {
    /// `None` once the connection failed (it is dropped, not pooled).
    connection: Option<Connection>,
    pool: Arc<Pool>,
}

/// What `EXEC` answered.
pub(crate) enum Swapped {
    /// The transaction ran: the key holds the new value.
    Done,
    /// The key was written since it was watched; it is watched again, so
    /// this handle can be used for the next attempt.
    Conflict(Watch),
}

impl Watch {
    fn connection(&mut self) -> Result<&mut Connection, store::Error> {
        self.connection
            .as_mut()
            .ok_or_else(|| store::Error::Other("redis: connection lost".to_owned()))
    }

    /// Runs `f` on the watching connection; dropped on failure (clearing
    /// the pool on an I/O error, as [`RedisKv::run`] does).
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, store::Error> {
        match f(self.connection()?) {
            Ok(value) => Ok(value),
            Err(e) => {
                self.connection = None;
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.pool.idle().clear();
                }
                Err(other(&e))
            }
        }
    }

    /// Forgets what was watched and watches `key` from now on, then reads
    /// it: the snapshot a later [`Watch::swap`] is checked against.
    pub(crate) fn current(&mut self, key: &str) -> Result<Option<Vec<u8>>, store::Error> {
        // One round trip: the three commands pipelined.
        self.run(|c| {
            let (value,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("UNWATCH")
                .ignore()
                .cmd("WATCH")
                .arg(key)
                .ignore()
                .cmd("GET")
                .arg(key)
                .query(c)?;
            Ok(value)
        })
    }

    /// Sets `key` to `value` if it was not written since it was watched.
    pub(crate) fn swap(mut self, key: &str, value: &[u8]) -> Result<Swapped, store::Error> {
        // One round trip; the `QUEUED` answer to SET is ignored.
        let exec: Value = self.run(|c| {
            let (exec,): (Value,) = redis::pipe()
                .cmd("MULTI")
                .ignore()
                .cmd("SET")
                .arg(key)
                .arg(value)
                .ignore()
                .cmd("EXEC")
                .query(c)?;
            Ok(exec)
        })?;
        // EXEC ends the transaction and drops every WATCH either way.
        if matches!(exec, Value::Nil) {
            self.run(|c| redis::cmd("WATCH").arg(key).query::<()>(c))?;
            return Ok(Swapped::Conflict(self));
        }
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection);
        }
        Ok(Swapped::Done)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut connection) = self.connection.take()
            && redis::cmd("UNWATCH").query::<()>(&mut connection).is_ok()
        {
            self.pool.give_back(connection);
        }
    }
}

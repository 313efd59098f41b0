//! The stores on Workers: [`DurableObjectStore`] (atomic, one Durable
//! Object per key) and [`KvCache`] (Workers KV, eventually consistent).
//!
//! The worker talks to `EdgeStore` objects ([`crate::StoreObject`]) with small JSON operations over
//! `fetch`. Inside the object each operation reads and writes storage with
//! no other I/O in between, so the input gate makes it atomic: that is what
//! makes `increment` and `compare_and_swap` exact under concurrency.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use edge_core::platform::Transaction;
use edge_core::{AtomicStore, CasOutcome, KeyValueStore, StoreError};
use serde::{Deserialize, Serialize};
use worker::{Env, ObjectNamespace};

/// The Durable Object namespace binding the atomic store uses.
pub const STORE_BINDING: &str = "EDGE_STORE";
/// The KV namespace binding the cache uses.
pub const CACHE_BINDING: &str = "EDGE_CACHE";

/// One operation sent to an [`EdgeStore`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    Increment {
        key: String,
        delta: i64,
    },
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
    Transact {
        key: String,
        name: String,
        input: String,
    },
}

/// The answer of an [`EdgeStore`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) counter: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) swapped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The atomic store on Durable Objects: each key lives in the object named
/// after it, so operations on one key are serialized by that object.
pub struct DurableObjectStore {
    namespace: Result<ObjectNamespace, String>,
}

impl DurableObjectStore {
    /// The store on the [`STORE_BINDING`] namespace of `env`.
    pub fn from_env(env: &Env) -> Self {
        DurableObjectStore {
            namespace: env
                .durable_object(STORE_BINDING)
                .map_err(|e| format!("binding {STORE_BINDING}: {e}")),
        }
    }

    async fn call(&self, key: &str, op: &Op) -> Result<Reply, StoreError> {
        let unavailable = |e: worker::Error| StoreError::Unavailable(e.to_string());
        let namespace = self
            .namespace
            .as_ref()
            .map_err(|e| StoreError::Unavailable(e.clone()))?;
        let stub = namespace.get_by_name(key).map_err(unavailable)?;
        let body = serde_json::to_string(op).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let headers = worker::Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(unavailable)?;
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request =
            worker::Request::new_with_init("https://edge-store/op", &init).map_err(unavailable)?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(unavailable)?;
        let reply: Reply = response.json().await.map_err(unavailable)?;
        match reply.error {
            Some(error) => Err(StoreError::Unavailable(error)),
            None => Ok(reply),
        }
    }
}

fn decode(key: &str, value: Option<String>) -> Result<Option<Vec<u8>>, StoreError> {
    value
        .map(|v| {
            BASE64.decode(v).map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

#[async_trait(?Send)]
impl KeyValueStore for DurableObjectStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let reply = self.call(key, &Op::Get { key: key.into() }).await?;
        decode(key, reply.value)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let op = Op::Set {
            key: key.into(),
            value: BASE64.encode(value),
        };
        self.call(key, &op).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call(key, &Op::Delete { key: key.into() })
            .await
            .map(drop)
    }
}

#[async_trait(?Send)]
impl AtomicStore for DurableObjectStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let op = Op::Increment {
            key: key.into(),
            delta,
        };
        let reply = self.call(key, &op).await?;
        reply
            .counter
            .ok_or_else(|| StoreError::Unavailable("store reply without counter".into()))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        let op = Op::Cas {
            key: key.into(),
            expected: expected.map(|e| BASE64.encode(e)),
            new: BASE64.encode(new),
        };
        let reply = self.call(key, &op).await?;
        if reply.swapped == Some(true) {
            Ok(CasOutcome::Swapped)
        } else {
            Ok(CasOutcome::Conflict {
                current: decode(key, reply.value)?,
            })
        }
    }

    /// One round trip: the object runs the transaction next to the value,
    /// on its own clock.
    async fn transact(&self, key: &str, tx: &Transaction<'_>) -> Result<Vec<u8>, StoreError> {
        let op = Op::Transact {
            key: key.into(),
            name: tx.name.into(),
            input: BASE64.encode(tx.input),
        };
        let reply = self.call(key, &op).await?;
        decode(key, reply.value)?
            .ok_or_else(|| StoreError::Unavailable("store reply without output".into()))
    }
}

/// The cache on Workers KV (eventually consistent; never for counting).
pub struct KvCache {
    kv: Result<worker::kv::KvStore, String>,
}

impl KvCache {
    /// The cache on the [`CACHE_BINDING`] namespace of `env`.
    pub fn from_env(env: &Env) -> Self {
        KvCache {
            kv: env
                .kv(CACHE_BINDING)
                .map_err(|e| format!("binding {CACHE_BINDING}: {e}")),
        }
    }

    fn kv(&self) -> Result<&worker::kv::KvStore, StoreError> {
        self.kv
            .as_ref()
            .map_err(|e| StoreError::Unavailable(e.clone()))
    }
}

#[async_trait(?Send)]
impl KeyValueStore for KvCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv()?
            .get(key)
            .bytes()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.kv()?
            .put_bytes(key, value)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .execute()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv()?
            .delete(key)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

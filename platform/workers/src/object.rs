//! The Durable Object behind [`crate::DurableObjectStore`].
//!
//! [`StoreObject`] does the work; [`durable_store!`](crate::durable_store)
//! declares the `EdgeStore` class around it in each worker, because the
//! object runs the function's own [transactions](edge_core::platform::TransactionFn)
//! next to the value, and only the function's crate knows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use edge_core::Timestamp;
use edge_core::platform::TransactionFn;
use serde_bytes::ByteBuf;
use std::cell::Cell;
use worker::State;

use crate::store::{Op, Reply};

/// Where a transaction's expiry is kept beside the value.
const EXPIRES_KEY: &str = "edge:expires_at";

/// Declares the Durable Object class `EdgeStore` for the worker of function
/// `$function`: bind it as [`STORE_BINDING`](crate::STORE_BINDING)
/// (`class_name = "EdgeStore"`). It runs `$function`'s
/// [`EdgeFunction::transaction`](edge_core::EdgeFunction::transaction)s and
/// deletes values whose transactions say they expired (an alarm).
#[macro_export]
macro_rules! durable_store {
    ($function:ty) => {
        /// The Durable Object class of the atomic store (`EdgeStore`).
        #[::worker::durable_object(alarm)]
        pub struct EdgeStore {
            inner: $crate::StoreObject,
        }

        impl ::worker::DurableObject for EdgeStore {
            fn new(state: ::worker::State, _env: ::worker::Env) -> Self {
                EdgeStore {
                    inner: $crate::StoreObject::new(state),
                }
            }

            async fn fetch(&self, req: ::worker::Request) -> ::worker::Result<::worker::Response> {
                self.inner
                    .fetch(req, <$function as ::edge_core::EdgeFunction>::transaction)
                    .await
            }

            async fn alarm(&self) -> ::worker::Result<::worker::Response> {
                self.inner.alarm().await
            }
        }
    };
}

/// The store logic of one Durable Object (one key): plain operations,
/// transactions, and expiry.
pub struct StoreObject {
    state: State,
    alarm_armed: Cell<bool>,
}

impl StoreObject {
    /// The object on `state`.
    pub fn new(state: State) -> Self {
        StoreObject {
            state,
            alarm_armed: Cell::new(false),
        }
    }

    /// Answers one JSON operation from [`crate::DurableObjectStore`].
    pub async fn fetch(
        &self,
        mut req: worker::Request,
        run: TransactionFn,
    ) -> worker::Result<worker::Response> {
        let reply = match req.json::<Op>().await {
            Ok(op) => self.apply(op, run).await.unwrap_or_else(|error| Reply {
                error: Some(error),
                ..Reply::default()
            }),
            Err(e) => Reply {
                error: Some(format!("bad store operation: {e}")),
                ..Reply::default()
            },
        };
        worker::Response::from_json(&reply)
    }

    /// The expiry alarm: deletes everything once the last transaction's
    /// expiry has passed, or re-arms for the later expiry.
    pub async fn alarm(&self) -> worker::Result<worker::Response> {
        let storage = self.state.storage();
        let expires: Option<u64> = storage.get(EXPIRES_KEY).await?;
        let now = js_sys::Date::now() as u64;
        match expires {
            Some(at) if at > now => {
                storage.set_alarm((at - now) as i64).await?;
            }
            _ => {
                storage.delete_all().await?;
                self.alarm_armed.set(false);
            }
        }
        worker::Response::empty()
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value: Option<ByteBuf> = self
            .state
            .storage()
            .get(key)
            .await
            .map_err(|e| e.to_string())?;
        Ok(value.map(ByteBuf::into_vec))
    }

    async fn write(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.state
            .storage()
            .put(key, ByteBuf::from(value))
            .await
            .map_err(|e| e.to_string())
    }

    async fn expire_at(&self, at: Timestamp) -> Result<(), String> {
        let storage = self.state.storage();
        storage
            .put(EXPIRES_KEY, at.as_millis())
            .await
            .map_err(|e| e.to_string())?;
        if !self.alarm_armed.get() {
            let now = js_sys::Date::now() as u64;
            let offset = at.as_millis().saturating_sub(now).max(1);
            storage
                .set_alarm(i64::try_from(offset).unwrap_or(i64::MAX))
                .await
                .map_err(|e| e.to_string())?;
            self.alarm_armed.set(true);
        }
        Ok(())
    }

    /// Applies one operation; no I/O but storage happens in between the
    /// read and the write, so the input gate keeps it atomic.
    async fn apply(&self, op: Op, run: TransactionFn) -> Result<Reply, String> {
        let decode = |v: String| BASE64.decode(v).map_err(|e| e.to_string());
        Ok(match op {
            Op::Get { key } => Reply {
                value: self.read(&key).await?.map(|v| BASE64.encode(v)),
                ..Reply::default()
            },
            Op::Set { key, value } => {
                self.write(&key, decode(value)?).await?;
                Reply::default()
            }
            Op::Delete { key } => {
                self.state
                    .storage()
                    .delete(&key)
                    .await
                    .map_err(|e| e.to_string())?;
                Reply::default()
            }
            Op::Increment { key, delta } => {
                let old = match self.read(&key).await? {
                    Some(bytes) => i64::from_le_bytes(
                        bytes
                            .try_into()
                            .map_err(|_| format!("counter {key:?} is not 8 bytes"))?,
                    ),
                    None => 0,
                };
                let new = old.saturating_add(delta);
                self.write(&key, new.to_le_bytes().to_vec()).await?;
                Reply {
                    counter: Some(new),
                    ..Reply::default()
                }
            }
            Op::Cas { key, expected, new } => {
                let current = self.read(&key).await?;
                let expected = expected.map(decode).transpose()?;
                if current == expected {
                    self.write(&key, decode(new)?).await?;
                    Reply {
                        swapped: Some(true),
                        ..Reply::default()
                    }
                } else {
                    Reply {
                        swapped: Some(false),
                        value: current.map(|v| BASE64.encode(v)),
                        ..Reply::default()
                    }
                }
            }
            Op::Transact { key, name, input } => {
                let current = self.read(&key).await?;
                let now = Timestamp::from_millis(js_sys::Date::now() as u64);
                let applied = run(&name, &decode(input)?, current.as_deref(), now)?;
                if let Some(value) = applied.value {
                    self.write(&key, value).await?;
                    if let Some(at) = applied.expires_at {
                        self.expire_at(at).await?;
                    }
                }
                Reply {
                    value: Some(BASE64.encode(applied.output)),
                    ..Reply::default()
                }
            }
        })
    }
}

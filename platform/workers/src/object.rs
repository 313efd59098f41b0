//! The Durable Object class behind [`crate::DurableObjectStore`], in its own
//! module because `#[durable_object]` generates undocumented items.
#![allow(missing_docs, unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_bytes::ByteBuf;
use worker::{Env, State, durable_object};

use crate::store::{Op, Reply};

/// The Durable Object class behind [`DurableObjectStore`]. Export it from
/// the worker and bind it as [`STORE_BINDING`] (`class_name = "EdgeStore"`).
#[durable_object(fetch)]
pub struct EdgeStore {
    state: State,
}

impl worker::DurableObject for EdgeStore {
    fn new(state: State, _env: Env) -> Self {
        EdgeStore { state }
    }

    async fn fetch(&self, mut req: worker::Request) -> worker::Result<worker::Response> {
        let reply = match req.json::<Op>().await {
            Ok(op) => self.apply(op).await.unwrap_or_else(|error| Reply {
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
}

impl EdgeStore {
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

    /// Applies one operation; no I/O but storage happens in between the
    /// read and the write, so the input gate keeps it atomic.
    async fn apply(&self, op: Op) -> Result<Reply, String> {
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
        })
    }
}

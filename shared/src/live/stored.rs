//! How versions are kept in the store: one head per function (the
//! current version with its text, so a check is one read, and the list of
//! versions kept), and each kept text under its digest, so that two
//! concurrent changes never overwrite each other's text.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{KEPT_VERSIONS, LivePolicy, MAX_ATTEMPTS, digest};
use crate::function::{Context, EdgeFunction};
use crate::platform::{AtomicStore, CasOutcome, StoreError};
use crate::problem::Problem;
use http::StatusCode;

use super::admin::store_problem;

/// The store key of function `name`'s current version.
pub fn head_key(name: &str) -> String {
    format!("policy:{name}")
}

fn text_key(name: &str, digest: &str) -> String {
    format!("policy:{name}:text:{digest}")
}

/// One version, as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Its number (1, 2, …; 0 is the deployed policy before any change).
    pub version: u64,
    /// `sha256:` of its text; none: the deployed policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it was stored (ms since the epoch).
    pub updated_at_ms: u64,
    /// The version it restored, if it was a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
}

/// The stored head: the current version with its text (one read per
/// check) and the versions kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Head {
    /// The version in the store; none: never changed.
    pub(super) current: Option<VersionInfo>,
    /// The current version's text; none: the deployed policy.
    #[serde(default)]
    pub(super) policy: Option<String>,
    /// The versions kept, oldest first.
    #[serde(default)]
    pub(super) history: Vec<VersionInfo>,
}

impl Head {
    pub(super) fn version(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.version)
    }
}

pub(super) async fn read_head(store: &dyn AtomicStore, name: &str) -> Result<Head, StoreError> {
    let key = head_key(name);
    let bytes = store.get(&key).await?;
    decode_head(&key, bytes.as_deref())
}

fn decode_head(key: &str, bytes: Option<&[u8]>) -> Result<Head, StoreError> {
    match bytes {
        None => Ok(Head::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| corrupt(key, e)),
    }
}

fn corrupt(key: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// Version `version`'s text (none: the deployed policy), 404 when it is
/// not kept.
pub(super) async fn version_text(
    store: &dyn AtomicStore,
    name: &str,
    head: &Head,
    version: u64,
) -> Result<Option<String>, Problem> {
    let not_kept = || {
        let kept: Vec<u64> = head.history.iter().map(|v| v.version).collect();
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-version",
            "No such policy version",
        )
        .with_detail(format!("version {version} is not kept (kept: {kept:?})"))
    };
    if version == 0 {
        return Ok(None);
    }
    let info = head
        .history
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(not_kept)?;
    let Some(digest) = &info.digest else {
        return Ok(None);
    };
    let key = text_key(name, digest);
    let bytes = store.get(&key).await.map_err(store_problem)?;
    let bytes = bytes.ok_or_else(not_kept)?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        store_problem(StoreError::Corrupt {
            key,
            reason: "not UTF-8".into(),
        })
    })
}

impl<F: EdgeFunction> LivePolicy<F> {
    /// Stores the next version (`text`, none: back to the deployed policy)
    /// with compare-and-swap; `expected`: the version the caller last saw
    /// (`If-Match`), refused with 412 when another change came first.
    pub(super) async fn store_version(
        &self,
        store: &dyn AtomicStore,
        ctx: &Context<'_>,
        text: Option<String>,
        restored_from: Option<u64>,
        expected: Option<u64>,
    ) -> Result<Head, Problem> {
        let name = F::NAME;
        let digest = text.as_deref().map(digest);
        if let (Some(text), Some(digest)) = (&text, &digest) {
            store
                .set(&text_key(name, digest), text.as_bytes())
                .await
                .map_err(store_problem)?;
        }
        let key = head_key(name);
        let mut current = store.get(&key).await.map_err(store_problem)?;
        for _ in 0..MAX_ATTEMPTS {
            let head = decode_head(&key, current.as_deref()).map_err(store_problem)?;
            if let Some(expected) = expected.filter(|e| *e != head.version()) {
                return Err(Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "policy-changed",
                    "Policy changed meanwhile",
                )
                .with_detail(format!(
                    "If-Match names version {expected}, but version {} is in effect",
                    head.version()
                ))
                .with_extension("version", head.version()));
            }
            let info = VersionInfo {
                version: head.version() + 1,
                digest: digest.clone(),
                updated_at_ms: ctx.clock().now().as_millis(),
                restored_from,
            };
            let mut next = Head {
                current: Some(info.clone()),
                policy: text.clone(),
                history: head.history.clone(),
            };
            next.history.push(info);
            let dropped: Vec<VersionInfo> = if next.history.len() > KEPT_VERSIONS {
                let excess = next.history.len() - KEPT_VERSIONS;
                next.history.drain(..excess).collect()
            } else {
                Vec::new()
            };
            let bytes = serde_json::to_vec(&next).map_err(|e| store_problem(corrupt(&key, e)))?;
            match store
                .compare_and_swap(&key, current.as_deref(), &bytes)
                .await
                .map_err(store_problem)?
            {
                CasOutcome::Swapped => {
                    self.forget_texts(store, &next, &dropped, ctx).await;
                    ctx.log().info(
                        "policy version stored",
                        json!({ "version": next.version(), "digest": digest, "restored_from": restored_from }),
                    );
                    return Ok(next);
                }
                CasOutcome::Conflict { current: now } => current = now,
            }
        }
        Err(Problem::new(
            StatusCode::CONFLICT,
            "policy-contended",
            "Policy changed concurrently",
        )
        .with_detail("other changes kept winning; send the change again"))
    }

    /// Deletes the texts of versions no longer kept (unless a kept one has
    /// the same text). A failure only leaves a text behind.
    async fn forget_texts(
        &self,
        store: &dyn AtomicStore,
        head: &Head,
        dropped: &[VersionInfo],
        ctx: &Context<'_>,
    ) {
        for digest in dropped.iter().filter_map(|v| v.digest.as_deref()) {
            if head
                .history
                .iter()
                .any(|v| v.digest.as_deref() == Some(digest))
            {
                continue;
            }
            if let Err(e) = store.delete(&text_key(F::NAME, digest)).await {
                ctx.log().warn(
                    "an old policy text was not deleted",
                    json!({ "digest": digest, "reason": e.to_string() }),
                );
            }
        }
    }
}

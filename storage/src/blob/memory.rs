//! In-memory blob store for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, ready};

use super::{BlobInfo, BlobStore, check_name};
use crate::error::{Error, Result};

/// Blobs in a `BTreeMap`; durable for as long as the value lives.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding this lock cannot leave the map half-updated (every
        // operation is one map call), so a poisoned lock is still consistent.
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlobStore for MemoryBlobStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<()>> {
        let r = check_name(name).map(|()| {
            self.blobs().insert(name.to_owned(), data);
        });
        ready(r).boxed()
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes>> {
        let r = check_name(name).and_then(|()| {
            let blob = self
                .blobs()
                .get(name)
                .cloned()
                .ok_or_else(|| Error::BlobNotFound(name.to_owned()))?;
            let size = blob.len() as u64;
            let end = offset.saturating_add(len);
            if end > size {
                return Err(Error::Truncated {
                    name: name.to_owned(),
                    offset,
                    wanted: len,
                    got: size.saturating_sub(offset),
                });
            }
            Ok(blob.slice(offset as usize..end as usize))
        });
        ready(r).boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes>> {
        let r = check_name(name).and_then(|()| {
            self.blobs()
                .get(name)
                .cloned()
                .ok_or_else(|| Error::BlobNotFound(name.to_owned()))
        });
        ready(r).boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let r = check_name(name).map(|()| {
            self.blobs().remove(name);
        });
        ready(r).boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<BlobInfo>>> {
        let list = self
            .blobs()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| BlobInfo {
                name: k.clone(),
                size: v.len() as u64,
            })
            .collect();
        ready(Ok(list)).boxed()
    }
}

//! In-memory blob store for unit tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, ready};

use super::{BlobInfo, BlobStore, BlobWriter, check_name};
use crate::error::{Error, Result};

/// Blobs in a `BTreeMap`; durable for as long as the value lives.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<String, Bytes>>>,
}

type Map = Arc<Mutex<BTreeMap<String, Bytes>>>;

fn lock(map: &Map) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
    // A panic while holding this lock cannot leave the map half-updated (every
    // operation is one map call), so a poisoned lock is still consistent.
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// Collects the pieces; publishes them with one map insert at `finish`.
struct MemoryWriter {
    blobs: Map,
    name: String,
    buf: Vec<u8>,
}

impl BlobWriter for MemoryWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        self.buf.extend_from_slice(&data);
        ready(Ok(())).boxed()
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        lock(&self.blobs).insert(self.name, Bytes::from(self.buf));
        ready(Ok(())).boxed()
    }
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        lock(&self.blobs)
    }
}

impl BlobStore for MemoryBlobStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<()>> {
        let r = check_name(name).map(|()| {
            self.blobs().insert(name.to_owned(), data);
        });
        ready(r).boxed()
    }

    fn writer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>> {
        let r = check_name(name).map(|()| {
            Box::new(MemoryWriter {
                blobs: Arc::clone(&self.blobs),
                name: name.to_owned(),
                buf: Vec::new(),
            }) as Box<dyn BlobWriter>
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

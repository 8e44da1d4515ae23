//! The backing store: named, immutable blobs (packs).
//!
//! # Contract
//! - `put` is atomic and durable: when it returns `Ok`, a later `get` (after a crash or
//!   restart too) returns exactly these bytes; a failed or interrupted `put` leaves either
//!   no blob or the previous one, never a partial blob under `name`.
//! - `writer` streams a blob in pieces with the same guarantee, given at
//!   [`BlobWriter::finish`]: before `finish` returns `Ok` nothing is visible under the
//!   name; a writer dropped unfinished (or failing) publishes nothing and cleans up after
//!   itself. Memory use is the writer's to bound, not the caller's.
//! - `get_range` returns exactly `len` bytes at `offset`, or [`Error::BlobNotFound`] when
//!   the blob does not exist, or [`Error::Truncated`] when it is shorter.
//! - `delete` is idempotent: deleting a missing blob is `Ok`.
//! - `list` returns every blob whose name starts with `prefix`, sorted by name.
//! - A store that cannot reach its backend fails fast with [`Error::Unavailable`]
//!   (retrying later may succeed) rather than hanging; `check` says whether it can now.
//!
//! Names are produced by the engine (see `pack::blob_name`) and checked by
//! [`check_name`]; no client-controlled string reaches a backend.

#[cfg(feature = "contract-tests")]
pub mod contract;
mod fs;
mod memory;
mod s3;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};

pub use fs::FsBlobStore;
pub use memory::MemoryBlobStore;
pub use s3::{ChecksumMode, S3BlobStore, S3Settings};

use crate::error::{Error, Result};

/// A blob as listed by [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A store of immutable named blobs. See the module docs for the contract.
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `data` under `name`, durably and atomically.
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<()>>;
    /// Starts a streamed write of `name` (see the module docs).
    fn writer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>>;
    /// Reads `len` bytes at `offset`.
    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes>>;
    /// Reads a whole blob.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes>>;
    /// Deletes a blob (idempotent).
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Lists blobs whose name starts with `prefix`, sorted by name.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<BlobInfo>>>;
    /// Whether the store is reachable now (for readiness probes); cheap.
    fn check(&self) -> BoxFuture<'_, Result<()>> {
        futures::future::ready(Ok(())).boxed()
    }
}

/// A blob being written in pieces; see [`BlobStore::writer`].
pub trait BlobWriter: Send {
    /// Appends `data`.
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>>;
    /// Makes the blob durable and visible under its name.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}

/// Validates an engine-generated blob name: `[a-z0-9._-]` segments joined by `/`, no
/// empty, `.` or `..` segment.
///
/// # Errors
/// [`Error::InvalidArgument`].
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("bad blob name {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        assert!(check_name("packs/ab/0123.pack").is_ok());
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "A", "a b", "a/"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

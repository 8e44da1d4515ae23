//! Local-directory blob store (the embedded default).
//!
//! Layout under the root: `blobs/<name>` for published blobs and `tmp/` for writes in
//! flight. A put writes `tmp/<random>`, fsyncs it, renames it over `blobs/<name>` and
//! fsyncs the directory, so after a crash a name holds either the old bytes or the new
//! ones, and an acknowledged put survives power loss. Leftover `tmp/` files can only be
//! from interrupted puts and are removed at open. Streamed writes (`writer`) take the
//! same path, written in pieces.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};

use super::{BlobInfo, BlobStore, BlobWriter, check_name};
use crate::error::{Error, Result};

/// Blobs as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    ///
    /// # Errors
    /// [`Error::Backend`] if the directories cannot be created or cleaned.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(Error::backend)?;
        // Pre-create the pack shard directories so a put never has to create (and make
        // durable) a directory entry on the hot path.
        for shard in 0..=255u8 {
            fs::create_dir_all(blobs.join(format!("packs/{shard:02x}"))).map_err(Error::backend)?;
        }
        sync_dir(&blobs.join("packs")).map_err(Error::backend)?;
        sync_dir(&blobs).map_err(Error::backend)?;
        for entry in fs::read_dir(&tmp).map_err(Error::backend)? {
            let path = entry.map_err(Error::backend)?.path();
            fs::remove_file(&path).map_err(Error::backend)?;
        }
        sync_dir(root).map_err(Error::backend)?;
        Ok(FsBlobStore {
            inner: Arc::new(Paths { blobs, tmp }),
        })
    }

    /// Path of a blob on disk (for tests that corrupt files on purpose).
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.inner.blobs.join(name)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Paths) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn not_found(name: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::BlobNotFound(name.to_owned())
    } else {
        Error::backend(e)
    }
}

impl Paths {
    fn new_tmp(&self) -> PathBuf {
        self.tmp.join(format!("{:032x}", rand::random::<u128>()))
    }

    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.new_tmp();
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            self.publish(&f, &tmp, name)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Syncs the fully written temp file `f` at `tmp` and renames it to `name`, durably.
    fn publish(&self, f: &File, tmp: &Path, name: &str) -> io::Result<()> {
        // Data before name: the rename below must never publish unsynced bytes.
        f.sync_all()?;
        let dest = self.blobs.join(name);
        let parent = dest.parent().expect("blob names have a parent");
        if !parent.exists() {
            fs::create_dir_all(parent)?;
            // Make the new directory entries durable before naming files in them.
            let mut dir = parent;
            while let Some(up) = dir.parent() {
                sync_dir(up)?;
                if up == self.blobs {
                    break;
                }
                dir = up;
            }
        }
        fs::rename(tmp, &dest)?;
        // The rename is only durable once the directory is synced.
        sync_dir(parent)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        let f = File::open(self.blobs.join(name)).map_err(|e| not_found(name, e))?;
        let len_usize = usize::try_from(len)
            .map_err(|_| Error::InvalidArgument(format!("range of {len} bytes")))?;
        let mut buf = vec![0u8; len_usize];
        let mut got = 0usize;
        while got < len_usize {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => {
                    return Err(Error::Truncated {
                        name: name.to_owned(),
                        offset,
                        wanted: len,
                        got: got as u64,
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::backend(e)),
            }
        }
        Ok(Bytes::from(buf))
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.blobs.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::backend(e)),
            };
            for entry in entries {
                let entry = entry.map_err(Error::backend)?;
                let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                    continue; // not a name this store writes
                };
                let name = if rel.is_empty() {
                    file
                } else {
                    format!("{rel}/{file}")
                };
                let meta = entry.metadata().map_err(Error::backend)?;
                if meta.is_dir() {
                    // Only descend where names under it can still match the prefix.
                    if prefix.starts_with(&format!("{name}/")) || name.starts_with(prefix) {
                        stack.push((entry.path(), name));
                    }
                } else if name.starts_with(prefix) {
                    out.push(BlobInfo {
                        name,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Bytes a writer gathers before one `write` to its file.
const WRITE_BATCH: usize = 1 << 20;

/// A streamed write into `tmp/`: pieces are gathered into [`WRITE_BATCH`]-byte buffers
/// and written on the blocking pool, one write in flight while the next buffer fills, so
/// a writer holds at most two buffers however large the blob. `finish` syncs and renames
/// like `put`; dropping it unfinished removes the temp file.
struct FsWriter {
    paths: Arc<Paths>,
    name: String,
    tmp: PathBuf,
    file: Arc<File>,
    buf: Vec<u8>,
    in_flight: Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    published: bool,
}

impl FsWriter {
    /// Waits for the write in flight; returns its buffer, emptied, for reuse.
    async fn settle(&mut self) -> Result<Vec<u8>> {
        match self.in_flight.take() {
            Some(h) => {
                let mut spare = h.await?.map_err(Error::backend)?;
                spare.clear();
                Ok(spare)
            }
            None => Ok(Vec::new()),
        }
    }

    async fn write_out(&mut self) -> Result<()> {
        let spare = self.settle().await?;
        let full = std::mem::replace(&mut self.buf, spare);
        let file = Arc::clone(&self.file);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            (&*file).write_all(&full)?;
            Ok(full)
        }));
        Ok(())
    }
}

impl BlobWriter for FsWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        async move {
            // Write the batch out before it would outgrow its buffer.
            if !self.buf.is_empty() && self.buf.len() + data.len() > WRITE_BATCH {
                self.write_out().await?;
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(WRITE_BATCH.max(data.len()));
            }
            self.buf.extend_from_slice(&data);
            Ok(())
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        async move {
            if !self.buf.is_empty() {
                self.write_out().await?;
            }
            self.settle().await?;
            let (paths, file, tmp, name) = (
                Arc::clone(&self.paths),
                Arc::clone(&self.file),
                self.tmp.clone(),
                self.name.clone(),
            );
            tokio::task::spawn_blocking(move || paths.publish(&file, &tmp, &name))
                .await?
                .map_err(Error::backend)?;
            self.published = true;
            Ok(())
        }
        .boxed()
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.published {
            // Unlinking is safe with a write still in flight: it lands in the
            // unlinked inode. An error here leaves a temp file for the next open.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl BlobStore for FsBlobStore {
    fn writer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>> {
        async move {
            check_name(name)?;
            let tmp = self.inner.new_tmp();
            let path = tmp.clone();
            let file = tokio::task::spawn_blocking(move || {
                OpenOptions::new().write(true).create_new(true).open(&path)
            })
            .await?
            .map_err(Error::backend)?;
            Ok(Box::new(FsWriter {
                paths: Arc::clone(&self.inner),
                name: name.to_owned(),
                tmp,
                file: Arc::new(file),
                buf: Vec::new(),
                in_flight: None,
                published: false,
            }) as Box<dyn BlobWriter>)
        }
        .boxed()
    }

    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<()>> {
        async move {
            check_name(name)?;
            let name = name.to_owned();
            self.blocking(move |p| p.put(&name, &data).map_err(Error::backend))
                .await
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes>> {
        async move {
            check_name(name)?;
            let name = name.to_owned();
            self.blocking(move |p| p.get_range(&name, offset, len))
                .await
        }
        .boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes>> {
        async move {
            check_name(name)?;
            let name = name.to_owned();
            self.blocking(move |p| {
                fs::read(p.blobs.join(&name))
                    .map(Bytes::from)
                    .map_err(|e| not_found(&name, e))
            })
            .await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            check_name(name)?;
            let name = name.to_owned();
            self.blocking(move |p| match fs::remove_file(p.blobs.join(&name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::backend(e)),
                _ => Ok(()),
            })
            .await
        }
        .boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<BlobInfo>>> {
        async move {
            let prefix = prefix.to_owned();
            self.blocking(move |p| p.list(&prefix)).await
        }
        .boxed()
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        self.blocking(|p| {
            for dir in [&p.blobs, &p.tmp] {
                if !fs::metadata(dir).map_err(Error::backend)?.is_dir() {
                    return Err(Error::backend(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
            }
            Ok(())
        })
        .boxed()
    }
}

//! The upload path: stream → MD5 + FastCDC → SHA-256 per chunk → new chunks compressed
//! and into packs.
//!
//! Work is spread so that both cores stay busy on one stream: MD5 (inherently
//! sequential) runs on its own blocking thread once an upload is past a small size,
//! chunks are hashed on the blocking pool with a bounded number in flight, and new chunks
//! are streamed into the open pack's blob writer as they are accepted; a full pack is
//! finished (made durable) while the next one fills. Packs are never held in memory:
//! memory per upload is the chunks in flight plus the writers' buffers (a few MiB),
//! whatever the object or pack size; the manifest (40 bytes per ~64 KiB chunk) is the
//! only part that grows with the object.
//!
//! Nothing here touches the index except read-only dedup lookups: an ingest produces a
//! [`PendingObject`] whose packs are already durable, and only a commit makes it visible.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::blob::{BlobStore, BlobWriter};
use crate::chunk;
use crate::chunker::Chunker;
use crate::config::StoreConfig;
use crate::crypto::IdScheme;
use crate::error::{BoxError, Error, Result};
use crate::id::ChunkId;
use crate::index::{Index, NewChunk, NewPack, Staged};
use crate::inflight::{Holds, Pin};
use crate::pack::{self, PackEncoder};
use crate::records::{Location, Slice};

/// Below this many bytes MD5 runs inline: a thread hand-off costs more than it saves.
const MD5_INLINE_LIMIT: u64 = 1 << 20;
/// An object that is a single chunk of at most this size is hashed inline: handing it
/// to the blocking pool would cost more than hashing it (small-object PUTs).
const HASH_INLINE_LIMIT: usize = 16 * 1024;

/// Counters of one ingest, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Chunks cut from the stream.
    pub chunks: u64,
    /// Chunks that were new and got written (to a pack or inline).
    pub new_chunks: u64,
    /// Bytes of new chunks (raw).
    pub new_bytes: u64,
    /// Stored bytes of new chunks (headers included): what compression made of
    /// `new_bytes`.
    pub new_stored_bytes: u64,
    /// New chunks stored compressed.
    pub compressed_chunks: u64,
    /// Packs written.
    pub packs: u64,
}

/// An uploaded stream whose new chunks are durable in the store but which is not yet
/// visible. Commit it with `Store::put_object` / `Store::put_part`; dropping it instead
/// records its packs as orphans for GC.
pub struct PendingObject {
    /// Bytes received.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// What the [`BodyDigest`] given to the ingest computed (empty without one).
    pub digests: Vec<(&'static str, String)>,
    /// What the ingest did.
    pub stats: IngestStats,
    pub(crate) staged: Staged,
    index: Arc<Index>,
    /// Pins on the chunks it reuses and its packs, held until it is committed or
    /// dropped (GC must not take them meanwhile).
    _holds: Holds,
}

impl std::fmt::Debug for PendingObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingObject")
            .field("size", &self.size)
            .field("md5", &hex::encode(self.md5))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PendingObject {
    /// Chunk ids of the object, in order (mostly for tests and diagnostics).
    pub fn chunk_ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.staged.slices.iter().map(|s| s.chunk)
    }

    /// [`content_digest`](crate::index::content_digest) of the uploaded bytes as chunked.
    pub fn content_digest(&self) -> [u8; 32] {
        crate::index::content_digest(&self.staged.slices)
    }

    /// Hands the staged state to a commit; the caller re-arms orphan recording on error.
    pub(crate) fn take_staged(&mut self) -> Staged {
        std::mem::take(&mut self.staged)
    }
}

impl Drop for PendingObject {
    fn drop(&mut self) {
        record_orphans_in_background(&self.index, std::mem::take(&mut self.staged.packs));
    }
}

/// Records packs of an upload that will not commit. Best effort: packs it misses are
/// still found by GC's sweep of the store for packs the index does not know.
pub(crate) async fn record_orphans_now(index: &Index, packs: Vec<NewPack>) {
    if packs.is_empty() {
        return;
    }
    let n = packs.len();
    if let Err(e) = index.record_orphans(packs).await {
        tracing::warn!(error = %e, packs = n, "could not record orphan packs; GC sweep will find them");
    }
}

/// [`record_orphans_now`] from places that cannot wait (`Drop`).
pub(crate) fn record_orphans_in_background(index: &Arc<Index>, packs: Vec<NewPack>) {
    if packs.is_empty() {
        return;
    }
    // Queue the write now, while the index is certainly alive; nobody awaits it.
    drop(index.record_orphans(packs));
}

/// Digests of the whole body computed beside MD5 (the gateway's S3 checksums: CRC32,
/// CRC32C, CRC64NVME, SHA-1, SHA-256): fed by the same sink, once per buffer, on the same
/// thread as MD5.
pub trait BodyDigest: Send + 'static {
    /// Feeds the next bytes of the body.
    fn update(&mut self, data: &[u8]);
    /// The digests, by name (the caller's naming), once the body has ended.
    fn finish(self: Box<Self>) -> Vec<(&'static str, String)>;
}

/// The one digest sink of an upload: MD5 (for the ETag and Content-MD5) plus the
/// requested [`BodyDigest`]. Small bodies are digested inline; past
/// [`MD5_INLINE_LIMIT`] the sink moves to a blocking thread, so a large upload's hashing
/// never runs on the async workers.
enum DigestSink {
    Inline(Digests),
    Thread {
        tx: mpsc::Sender<Bytes>,
        done: JoinHandle<Digests>,
    },
}

#[derive(Default)]
struct Digests {
    md5: Md5,
    extra: Option<Box<dyn BodyDigest>>,
}

impl Digests {
    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(x) = &mut self.extra {
            x.update(data);
        }
    }
}

impl DigestSink {
    fn new(extra: Option<Box<dyn BodyDigest>>) -> Self {
        DigestSink::Inline(Digests {
            md5: Md5::new(),
            extra,
        })
    }

    async fn update(&mut self, data: &Bytes, total: u64) -> Result<()> {
        match self {
            DigestSink::Inline(d) if total < MD5_INLINE_LIMIT => d.update(data),
            DigestSink::Inline(d) => {
                let mut d = std::mem::take(d);
                d.update(data);
                let (tx, mut rx) = mpsc::channel::<Bytes>(64);
                let done = tokio::task::spawn_blocking(move || {
                    while let Some(b) = rx.blocking_recv() {
                        d.update(&b);
                    }
                    d
                });
                *self = DigestSink::Thread { tx, done };
            }
            DigestSink::Thread { tx, .. } => tx
                .send(data.clone())
                .await
                .map_err(|_| Error::Internal("digest thread stopped".into()))?,
        }
        Ok(())
    }

    async fn finish(self) -> Result<([u8; 16], Vec<(&'static str, String)>)> {
        let d = match self {
            DigestSink::Inline(d) => d,
            DigestSink::Thread { tx, done } => {
                drop(tx);
                done.await?
            }
        };
        let extra = d.extra.map(BodyDigest::finish).unwrap_or_default();
        Ok((d.md5.finalize().into(), extra))
    }
}

struct Hashed {
    id: ChunkId,
    /// Raw length.
    len: u32,
    /// Held when the chunk is reusable: taken before the lookup (see `inflight`).
    pin: Option<Pin>,
    /// The stored form (compressed when that saves), when it is not reusable.
    stored: Option<Bytes>,
}

/// Names a chunk, looks it up and, when it is new, encodes it: on the blocking pool,
/// so that both compression and hashing run in parallel across the chunks of an
/// upload and never on the async workers. A known chunk costs a hash and a lookup.
fn hash_and_look_up(index: &Index, ids: &IdScheme, data: &[u8]) -> Result<Hashed> {
    let codec = index.codec();
    let id = ids.id_of(data);
    let pin = index.inflight.pin_guard(id);
    let reusable = pin.is_some() && index.chunk_reusable(&id)?;
    Ok(Hashed {
        id,
        len: u32::try_from(data.len()).expect("chunks are bounded by the chunker"),
        stored: (!reusable).then(|| codec.encode(&id, data)),
        pin: pin.filter(|_| reusable),
    })
}

/// The pack being filled: its encoder and the writer its bytes stream into.
struct OpenPack {
    enc: PackEncoder,
    writer: Box<dyn BlobWriter>,
}

/// State of one ingest; on failure its packs are recorded as orphans.
struct Ingest {
    index: Arc<Index>,
    blobs: Arc<dyn BlobStore>,
    cfg: StoreConfig,
    /// How this upload's chunks are named (its bucket owner's dedup domain).
    ids: IdScheme,
    staged: Staged,
    seen: HashSet<ChunkId>,
    pack: Option<OpenPack>,
    flushing: Option<JoinHandle<Result<NewPack>>>,
    stats: IngestStats,
    holds: Holds,
}

impl Ingest {
    async fn accept(&mut self, h: Hashed) -> Result<()> {
        let len = h.len;
        self.staged.slices.push(Slice {
            chunk: h.id,
            offset: 0,
            len,
        });
        self.stats.chunks += 1;
        if let Some(pin) = h.pin {
            self.holds.keep(pin);
            return Ok(());
        }
        if !self.seen.insert(h.id) {
            return Ok(());
        }
        let stored = h.stored.expect("a chunk that is not reused was encoded");
        self.stats.new_chunks += 1;
        self.stats.new_bytes += u64::from(len);
        self.stats.new_stored_bytes += stored.len() as u64;
        if chunk::is_compressed(&stored) {
            self.stats.compressed_chunks += 1;
        }
        let new = if len as usize <= self.cfg.inline_max {
            NewChunk {
                raw_len: len,
                crc: chunk::checksum(&stored),
                location: Location::Inline(stored.to_vec()),
            }
        } else {
            if self.pack.is_none() {
                let (enc, magic) = PackEncoder::start_sealed(self.index.codec().keys.clone());
                self.holds.pack(enc.id());
                let mut writer = self.blobs.writer(&pack::blob_name(enc.id())).await?;
                writer.write(magic).await?;
                self.pack = Some(OpenPack { enc, writer });
            }
            let open = self.pack.as_mut().expect("opened above");
            let crc = chunk::checksum(&stored);
            let (e, stored) = open.enc.push_stored(h.id, stored, crc);
            open.writer.write(stored).await?;
            NewChunk {
                raw_len: len,
                crc: e.crc,
                location: Location::Pack {
                    pack: open.enc.id(),
                    offset: e.offset,
                    stored_len: e.stored_len,
                },
            }
        };
        self.staged.new_chunks.insert(h.id, new);
        Ok(())
    }

    /// Finishes the open pack if it is full (or `force`), after the previous one
    /// finished: at most one pack is being finished per upload.
    async fn maybe_flush(&mut self, force: bool) -> Result<()> {
        let full = self.pack.as_ref().is_some_and(|p| {
            p.enc.len() >= self.cfg.pack_target as u64 || (force && !p.enc.is_empty())
        });
        if !full {
            return Ok(());
        }
        self.wait_flush().await?;
        let OpenPack { enc, mut writer } = self.pack.take().expect("checked above");
        let body_len = enc.len();
        let (id, tail, entries) = enc.finish();
        let size = body_len + tail.len() as u64;
        let chunks = entries.len() as u32;
        self.stats.packs += 1;
        self.flushing = Some(tokio::spawn(async move {
            writer.write(tail).await?;
            writer.finish().await?;
            Ok(NewPack { id, size, chunks })
        }));
        Ok(())
    }

    async fn wait_flush(&mut self) -> Result<()> {
        if let Some(h) = self.flushing.take() {
            let p = h.await??;
            self.staged.packs.push(p);
        }
        Ok(())
    }

    async fn run<S, E>(
        &mut self,
        mut body: S,
        digest: Option<Box<dyn BodyDigest>>,
    ) -> Result<(u64, [u8; 16], Vec<(&'static str, String)>)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: Into<BoxError>,
    {
        let mut chunker = Chunker::new(self.index.params())?;
        let mut digests = DigestSink::new(digest);
        let mut size = 0u64;
        let mut cut = Vec::new();
        let mut in_flight: VecDeque<JoinHandle<Result<Hashed>>> = VecDeque::new();
        let limit = self.cfg.hash_parallelism.max(1);
        let mut done = false;
        while !done {
            match body.next().await {
                Some(Ok(data)) => {
                    size += data.len() as u64;
                    digests.update(&data, size).await?;
                    chunker.push(&data, &mut cut);
                }
                Some(Err(e)) => return Err(Error::Body(e.into())),
                None => {
                    chunker.finish(&mut cut);
                    done = true;
                }
            }
            let whole_object_is_one_small_chunk = done
                && self.stats.chunks == 0
                && in_flight.is_empty()
                && cut.len() == 1
                && cut[0].len() <= HASH_INLINE_LIMIT;
            if whole_object_is_one_small_chunk {
                let h = hash_and_look_up(&self.index, &self.ids, &cut.remove(0))?;
                self.accept(h).await?;
            }
            for data in cut.drain(..) {
                let index = Arc::clone(&self.index);
                let ids = self.ids.clone();
                in_flight.push_back(tokio::task::spawn_blocking(move || {
                    hash_and_look_up(&index, &ids, &data)
                }));
                while in_flight.len() >= limit {
                    let h = in_flight.pop_front().expect("non-empty").await??;
                    self.accept(h).await?;
                    self.maybe_flush(false).await?;
                }
            }
        }
        while let Some(h) = in_flight.pop_front() {
            self.accept(h.await??).await?;
            self.maybe_flush(false).await?;
        }
        self.maybe_flush(true).await?;
        self.wait_flush().await?;
        let (md5, extra) = digests.finish().await?;
        Ok((size, md5, extra))
    }
}

/// Ingests a byte stream: see the module docs.
pub(crate) async fn ingest<S, E>(
    index: &Arc<Index>,
    blobs: &Arc<dyn BlobStore>,
    cfg: &StoreConfig,
    body: S,
    digest: Option<Box<dyn BodyDigest>>,
    ids: IdScheme,
) -> Result<PendingObject>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: Into<BoxError>,
{
    let mut st = Ingest {
        index: Arc::clone(index),
        blobs: Arc::clone(blobs),
        cfg: cfg.clone(),
        ids,
        staged: Staged::default(),
        seen: HashSet::new(),
        pack: None,
        flushing: None,
        stats: IngestStats::default(),
        holds: Holds::new(&index.inflight),
    };
    match st.run(body, digest).await {
        Ok((size, md5, digests)) => Ok(PendingObject {
            size,
            md5,
            digests,
            stats: st.stats,
            staged: std::mem::take(&mut st.staged),
            index: Arc::clone(index),
            _holds: std::mem::replace(&mut st.holds, Holds::new(&index.inflight)),
        }),
        Err(e) => {
            // A pack write may still be running; wait so it is recorded, not leaked.
            let _ = st.wait_flush().await;
            record_orphans_now(index, std::mem::take(&mut st.staged.packs)).await;
            Err(e)
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Reached with packs still listed only when the ingest future itself was dropped
        // (client went away mid-upload); a pack write still in flight is left to GC's sweep.
        record_orphans_in_background(&self.index, std::mem::take(&mut self.staged.packs));
    }
}

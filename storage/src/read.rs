//! The read pipeline, mirroring `ingest`: a read plan's chunks are grouped into
//! coalesced backend reads (adjacent chunks of one pack, up to `coalesce_max`),
//! `read_ahead` of them in flight, every chunk verified (CRC32C of its stored bytes,
//! then decoded) before a byte of it is yielded.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use crate::blob::BlobStore;
use crate::chunk::ChunkCodec;
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::index::PlannedChunk;
use crate::pack;
use crate::records::{Location, ObjectRecord};

/// A byte range request, resolved against the object size by [`Store::get_object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive; `last` past the end is clipped).
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Resolves to `start..end` within an object of `size` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when the range is not satisfiable (HTTP 416).
    pub fn resolve(self, size: u64) -> Result<(u64, u64)> {
        let r = match self {
            ByteRange::FromTo(a, b) if a <= b && a < size => {
                Some((a, b.saturating_add(1).min(size)))
            }
            ByteRange::From(a) if a < size => Some((a, size)),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Some((size - n.min(size), size)),
            _ => None,
        };
        r.ok_or(Error::InvalidRange { size })
    }
}

/// An object being read: its record, the byte range served, and the verified bytes.
pub struct ObjectReader {
    /// The version being read.
    pub record: ObjectRecord,
    /// `start..end` of the object that `body` yields.
    pub range: (u64, u64),
    /// The bytes; every chunk is verified before it is yielded, a failed check ends the
    /// stream with an error.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("record", &self.record)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Collects the whole body (tests, small objects).
    ///
    /// # Errors
    /// The first read or verification error.
    pub async fn collect(self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((self.range.1 - self.range.0) as usize);
        let mut body = self.body;
        while let Some(b) = body.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }
}

/// Streams planned chunks: coalesced reads, `read_ahead` in flight, each verified.
pub(crate) fn read_chunks(
    blobs: Arc<dyn BlobStore>,
    codec: ChunkCodec,
    cfg: &StoreConfig,
    chunks: Vec<PlannedChunk>,
) -> BoxStream<'static, Result<Bytes>> {
    let groups = coalesce(chunks, cfg.coalesce_max);
    let codec = Arc::new(codec);
    stream::iter(groups)
        .map(move |g| fetch_group(Arc::clone(&blobs), Arc::clone(&codec), g))
        .buffered(cfg.read_ahead.max(1))
        .map_ok(|v| stream::iter(v.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Chunks fetched with one backend read: consecutive chunks of one pack, adjacent on
/// disk (or a single inline chunk).
#[derive(Debug)]
struct Group {
    chunks: Vec<PlannedChunk>,
}

fn coalesce(chunks: Vec<PlannedChunk>, max: usize) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for c in chunks {
        if let Some(g) = groups.last_mut()
            && let (
                Location::Pack {
                    pack: p1,
                    offset: o1,
                    stored_len: l1,
                },
                Location::Pack {
                    pack: p2,
                    offset: o2,
                    ..
                },
            ) = (&g.chunks[g.chunks.len() - 1].location, &c.location)
            && p1 == p2
            && o1 + u64::from(*l1) == *o2
            && group_span(g) < max as u64
        {
            g.chunks.push(c);
            continue;
        }
        groups.push(Group { chunks: vec![c] });
    }
    groups
}

fn group_span(g: &Group) -> u64 {
    match (
        &g.chunks[0].location,
        &g.chunks[g.chunks.len() - 1].location,
    ) {
        (
            Location::Pack { offset: a, .. },
            Location::Pack {
                offset: b,
                stored_len,
                ..
            },
        ) => b + u64::from(*stored_len) - a,
        _ => 0,
    }
}

/// Reads a group with one backend call and verifies every chunk in it.
async fn fetch_group(
    blobs: Arc<dyn BlobStore>,
    codec: Arc<ChunkCodec>,
    g: Group,
) -> Result<Vec<Bytes>> {
    let first = &g.chunks[0];
    let (data, base) = match &first.location {
        Location::Inline(stored) => (Bytes::copy_from_slice(stored), 0),
        Location::Pack { pack, offset, .. } => {
            let span = group_span(&g);
            (
                blobs
                    .get_range(&pack::blob_name(*pack), *offset, span)
                    .await?,
                *offset,
            )
        }
    };
    // Decryption and decompression cost CPU per byte: off the async workers, so the
    // groups `read_ahead` keeps in flight are decoded in parallel. A plain group (CRC32C
    // only) is checked inline: the hand-off would cost more.
    let costly = codec.keys.is_some()
        || g.chunks
            .iter()
            .any(|c| stored_of(c, &data, base).is_some_and(|s| crate::chunk::is_compressed(&s)));
    if costly {
        tokio::task::spawn_blocking(move || decode_group(&codec, g, &data, base)).await?
    } else {
        decode_group(&codec, g, &data, base)
    }
}

/// The stored bytes of chunk `c` within a group read at `base` (`None` if out of range).
fn stored_of(c: &PlannedChunk, data: &Bytes, base: u64) -> Option<Bytes> {
    match &c.location {
        Location::Inline(_) => Some(data.clone()),
        Location::Pack {
            offset, stored_len, ..
        } => {
            let at = usize::try_from(offset.checked_sub(base)?).ok()?;
            let end = at.checked_add(*stored_len as usize)?;
            (end <= data.len()).then(|| data.slice(at..end))
        }
    }
}

/// Verifies and decodes every chunk of a group; the slices the plan asked for.
fn decode_group(codec: &ChunkCodec, g: Group, data: &Bytes, base: u64) -> Result<Vec<Bytes>> {
    let mut out = Vec::with_capacity(g.chunks.len());
    for c in g.chunks {
        let stored = stored_of(&c, data, base)
            .ok_or_else(|| Error::corrupt("chunk", format!("{}: outside its read", c.id)))?;
        let raw = codec
            .decode_verified(&c.id, stored, c.crc, c.raw_len)
            .map_err(|e| match e {
                Error::Corrupt { detail, .. } => Error::Corrupt {
                    what: "chunk",
                    detail: format!("{}: {detail}", c.id),
                },
                e => e,
            })?;
        out.push(raw.slice(c.start as usize..c.end as usize));
    }
    Ok(out)
}

//! [`StoreConfig`]: the engine's settings, shared by the façade and the pipelines.

use std::sync::Arc;

use crate::chunk::Compression;
use crate::chunker::ChunkerParams;
use crate::crypto::Keyring;
use crate::identity::DedupScope;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// FastCDC parameters for new data.
    pub chunker: ChunkerParams,
    /// A pack is written once it holds this many bytes.
    pub pack_target: usize,
    /// Chunks up to this size live inline in the index instead of a pack.
    pub inline_max: usize,
    /// How new chunks are compressed.
    pub compression: Compression,
    /// Encryption keys (`None` = no encryption). A store created with keys has keyed
    /// chunk ids and can never be opened without them.
    pub keys: Option<Arc<Keyring>>,
    /// Chunks hashed (and compressed) concurrently per upload.
    pub hash_parallelism: usize,
    /// Backend reads in flight per object read.
    pub read_ahead: usize,
    /// Adjacent chunks of one pack are fetched in one ranged read up to this size.
    pub coalesce_max: usize,
    /// Memory redb may use to cache index pages (reads and pending writes). redb's own
    /// default (1 GiB) let the cache dominate the gateway's RSS; beyond this the OS page
    /// cache still serves index reads.
    pub index_cache: usize,
    /// The dedup scope tenants created from now on get (fixed per tenant at creation).
    pub dedup_scope: DedupScope,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            chunker: ChunkerParams::default(),
            pack_target: 16 << 20,
            inline_max: 4096,
            compression: Compression::default(),
            keys: None,
            hash_parallelism: 4,
            read_ahead: 4,
            coalesce_max: 1 << 20,
            index_cache: 64 << 20,
            dedup_scope: DedupScope::Global,
        }
    }
}

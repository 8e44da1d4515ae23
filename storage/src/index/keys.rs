//! What the index records about encryption (`crypto::KeyRecords` under meta `keys`),
//! checked against the configured keys when the index opens, inside the opening
//! transaction: a refusal aborts it, so a wrong key writes nothing.

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::{CHUNKS, META, PACKS};
use crate::chunk::{ChunkCodec, Compression};
use crate::crypto::{IdScheme, KeyRecords, Keyring};
use crate::error::{Error, Result};

const KEY_KEYS: &str = "keys";

/// Decides the store's codec from the recorded key records and the configured keys:
///
/// | recorded | keys | result |
/// |---|---|---|
/// | nothing | none | plain SHA-256 ids, no encryption |
/// | nothing, new store | some | keyed ids; records created |
/// | nothing, store with data | some | SHA-256 ids stay (fixed at creation); new chunks and packs are sealed; records created (plaintext chunks stay until `rekey`) |
/// | records | none | refused: the store holds sealed data |
/// | records | some | every configured key with a record must open it, one at least; new keys get their record |
pub(super) fn open_codec(
    txn: &WriteTransaction,
    compression: Compression,
    keys: Option<Arc<Keyring>>,
) -> Result<ChunkCodec> {
    let mut meta = txn.open_table(META)?;
    let recorded = meta
        .get(KEY_KEYS)?
        .map(|v| KeyRecords::decode(v.value()))
        .transpose()?;
    let Some(keys) = keys else {
        return match recorded {
            None => Ok(ChunkCodec::plain(compression)),
            Some(r) => Err(Error::EncryptionRequired {
                detail: if r.keyed {
                    "its chunk ids are keyed".into()
                } else {
                    format!(
                        "keys {:?} sealed its data",
                        r.sealed.keys().collect::<Vec<_>>()
                    )
                },
            }),
        };
    };
    let (records, ids) = match recorded {
        Some(mut r) => {
            let (secret, ids) = r.unlock(&keys)?;
            if r.add_missing(&keys, &secret) {
                tracing::info!(keys = ?keys.ids(), "new encryption key recorded");
                meta.insert(KEY_KEYS, r.encode().as_slice())?;
            }
            (r, ids)
        }
        None => {
            let fresh = txn.open_table(CHUNKS)?.first()?.is_none()
                && txn.open_table(PACKS)?.first()?.is_none();
            let r = if fresh {
                KeyRecords::create(&keys)
            } else {
                tracing::warn!(
                    "encryption turned on for a store that holds plaintext chunks: their ids stay \
                     plain SHA-256 (fixed when the store was created), new chunks and pack tables \
                     are sealed; run `s3dedup admin rekey` to seal the existing ones"
                );
                let mut r = KeyRecords::default();
                r.add_missing(&keys, &[0; 32]);
                r
            };
            meta.insert(KEY_KEYS, r.encode().as_slice())?;
            let (_, ids) = r.unlock(&keys)?;
            (r, ids)
        }
    };
    debug_assert_eq!(records.keyed, matches!(ids, IdScheme::Keyed(_)));
    Ok(ChunkCodec {
        compression,
        keys: Some(keys),
        ids,
        domains: Default::default(),
    })
}

/// An inline chunk re-encoded by `rekey`: its new stored form, if the record still holds
/// the stored bytes with CRC `old_crc`.
#[derive(Debug)]
pub(crate) struct InlineRewrite {
    pub(crate) id: crate::id::ChunkId,
    pub(crate) old_crc: u32,
    pub(crate) stored: Vec<u8>,
}

impl super::Index {
    /// Replaces inline chunks' stored bytes (see [`InlineRewrite`]); returns how many
    /// were replaced. Stored and live byte counters follow the length change.
    pub(crate) fn replace_inline(
        &self,
        rewrites: Vec<InlineRewrite>,
    ) -> impl Future<Output = Result<u64>> + use<> {
        use crate::records::{ChunkRecord, Location};
        self.committer.submit(move |txn| {
            let mut chunks = txn.open_table(CHUNKS)?;
            let (mut n, mut stored_delta, mut live_delta) = (0u64, 0i128, 0i128);
            let mut changed = Vec::new();
            for w in &rewrites {
                let Some(mut rec) = chunks
                    .get(&w.id.0)?
                    .map(|v| ChunkRecord::decode(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                let Location::Inline(old) = &rec.location else {
                    continue;
                };
                if rec.crc != w.old_crc {
                    continue;
                }
                let delta = w.stored.len() as i128 - old.len() as i128;
                stored_delta += delta;
                if rec.refcount > 0 {
                    live_delta += delta;
                }
                rec.crc = crate::chunk::checksum(&w.stored);
                rec.location = Location::Inline(w.stored.clone());
                chunks.insert(&w.id.0, rec.encode().as_slice())?;
                changed.push(super::journal::chunk(w.id));
                n += 1;
            }
            drop(chunks);
            super::journal::append(txn, changed)?;
            super::add_stat(txn, super::stat::STORED_BYTES, stored_delta)?;
            super::add_stat(txn, super::stat::LIVE_STORED_BYTES, live_delta)?;
            Ok(n)
        })
    }
}

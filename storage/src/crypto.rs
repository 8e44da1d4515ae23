//! Encryption at rest: the keyring, AEAD sealing, and keyed chunk ids.
//!
//! Keys are 256-bit and come from a key file or the environment (the gateway's
//! `encryption_key_file`), never from the data dir or the bucket. Each has a numeric id
//! (1–65535) written beside everything it seals, so keys can be rotated: the key with
//! the highest id seals new data; every listed key still opens what it sealed.
//!
//! The AEAD is AES-256-GCM-SIV (RustCrypto `aes-gcm-siv`) with a random 96-bit nonce per
//! sealed item: nonce-misuse resistant, so even a repeated random nonce reveals only
//! whether the same plaintext was sealed twice. Every item binds what it belongs to as
//! associated data (a chunk its header and id, a pack table its pack id), so a sealed
//! item moved to another place fails to open.
//!
//! With encryption, chunk ids are HMAC-SHA256 of the raw bytes under a 256-bit *id
//! secret* instead of their plain SHA-256, so nothing stored reveals a content hash.
//! The secret is derived from the first key when the store is created and kept in the
//! index sealed under each key (`KeyRecords`), so it survives rotation: a new key gets
//! its own sealed copy the first time it is seen next to a key that opens one.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a plaintext: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// One key.
struct Key {
    aead: Aes256GcmSiv,
    /// Kept to derive the id secret of a new store.
    raw: [u8; 32],
}

/// The configured keys. `Debug` never prints key material.
pub struct Keyring {
    keys: BTreeMap<u16, Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Parses key material: one key per line, `ID:HEX` (ID 1–65535, HEX 64 hex digits)
    /// or just `HEX` for key 1; blank lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the line (never its key).
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::InvalidArgument(format!("key line {}: {why}", n + 1));
            let (id, hex_key) = match line.split_once(':') {
                Some((id, k)) => (
                    id.trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|&i| i > 0)
                        .ok_or_else(|| bad("the key id must be 1..=65535"))?,
                    k.trim(),
                ),
                None => (1, line),
            };
            let mut raw = [0u8; 32];
            hex::decode_to_slice(hex_key, &mut raw)
                .map_err(|_| bad("a key is 64 hex digits (256 bits)"))?;
            if raw == [0u8; 32] {
                return Err(bad("an all-zero key is refused"));
            }
            let key = Key {
                aead: Aes256GcmSiv::new(&raw.into()),
                raw,
            };
            if keys.insert(id, key).is_some() {
                return Err(bad(&format!("key id {id} is listed twice")));
            }
        }
        if keys.is_empty() {
            return Err(Error::InvalidArgument("no key in the key material".into()));
        }
        Ok(Keyring { keys })
    }

    /// A keyring of one random key with id 1 (tests, tools).
    pub fn generate() -> Self {
        Self::parse(&hex::encode(rand::random::<[u8; 32]>())).expect("a random key parses")
    }

    /// The id of the key that seals new data (the highest).
    pub fn active(&self) -> u16 {
        *self.keys.keys().next_back().expect("never empty")
    }

    /// Every key id, ascending.
    pub fn ids(&self) -> Vec<u16> {
        self.keys.keys().copied().collect()
    }

    /// Whether key `id` is configured.
    pub fn has(&self, id: u16) -> bool {
        self.keys.contains_key(&id)
    }

    /// Seals `plain` under the active key with `aad`; returns the key id and
    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> (u16, Vec<u8>) {
        let id = self.active();
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        self.seal_into(id, plain, aad, &mut out);
        (id, out)
    }

    /// Appends `nonce || ciphertext || tag` of `plain` under key `id` to `out`.
    pub(crate) fn seal_into(&self, id: u16, plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        let key = &self.keys[&id];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = key
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("AES-GCM-SIV seals any plaintext under 64 GiB");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
    }

    /// Opens `nonce || ciphertext || tag` sealed under key `id` with `aad`.
    ///
    /// # Errors
    /// [`Error::KeyMissing`] when key `id` is not configured; [`Error::Corrupt`] naming
    /// `what` when the item does not authenticate (damaged, moved, or another key).
    pub fn open(&self, id: u16, sealed: &[u8], aad: &[u8], what: &'static str) -> Result<Vec<u8>> {
        let key = self.keys.get(&id).ok_or(Error::KeyMissing { id })?;
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::corrupt(
                what,
                "sealed item shorter than nonce and tag",
            ));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        key.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| Error::corrupt(what, format!("does not authenticate under key {id}")))
    }

    /// The id secret of a new store: derived from the active key.
    pub(crate) fn derive_id_secret(&self) -> [u8; 32] {
        let raw = &self.keys[&self.active()].raw;
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(raw).expect("any key length");
        mac.update(b"s3dedup chunk-id secret v1");
        mac.finalize().into_bytes().into()
    }
}

/// What a store encrypts with (for status and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// The key new data is sealed under; `None` = encryption off.
    pub active_key: Option<u16>,
    /// Every configured key id.
    pub keys: Vec<u16>,
    /// `sha256` or `hmac-sha256`.
    pub id_scheme: &'static str,
}

/// How chunks are named, fixed when a store is created (recorded in the index).
#[derive(Clone, PartialEq, Eq)]
pub enum IdScheme {
    /// Plain SHA-256 of the raw bytes.
    Sha256,
    /// HMAC-SHA256 of the raw bytes under the store's id secret.
    Keyed([u8; 32]),
}

impl fmt::Debug for IdScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl IdScheme {
    /// The id of `raw`.
    pub fn id_of(&self, raw: &[u8]) -> ChunkId {
        match self {
            IdScheme::Sha256 => ChunkId::of(raw),
            IdScheme::Keyed(secret) => {
                let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret)
                    .expect("any key length");
                mac.update(raw);
                ChunkId(mac.finalize().into_bytes().into())
            }
        }
    }

    /// `sha256` or `hmac-sha256`, as status reports show it.
    pub fn name(&self) -> &'static str {
        match self {
            IdScheme::Sha256 => "sha256",
            IdScheme::Keyed(_) => "hmac-sha256",
        }
    }
}

/// What the index records about keys: the id scheme and, per key id, a sealed copy of
/// the id secret (32 zero bytes for a store with plain ids: then it only proves that a
/// configured key is the one that was used before).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRecords {
    /// Whether chunk ids are keyed.
    pub keyed: bool,
    /// Sealed secrets by key id.
    pub sealed: BTreeMap<u16, Vec<u8>>,
}

const KEY_RECORDS_V1: u8 = 1;

fn record_aad(id: u16) -> Vec<u8> {
    let mut aad = b"s3dedup key record v1 ".to_vec();
    aad.extend_from_slice(&id.to_le_bytes());
    aad
}

impl KeyRecords {
    /// Encodes (versioned, sealed with a CRC32C).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = crate::codec::Writer::default();
        w.u8(KEY_RECORDS_V1).u8(u8::from(self.keyed));
        w.u32(u32::try_from(self.sealed.len()).expect("few keys"));
        for (id, s) in &self.sealed {
            w.u32(u32::from(*id)).bytes(s);
        }
        w.seal()
    }

    /// Decodes.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = crate::codec::Reader::open(b, "key records", 0, KEY_RECORDS_V1)?;
        let keyed = match r.u8()? {
            0 => false,
            1 => true,
            t => return Err(Error::corrupt("key records", format!("bad scheme {t}"))),
        };
        let n = r.u32()? as usize;
        if n > r.remaining() / 8 {
            return Err(Error::corrupt("key records", "count exceeds record"));
        }
        let mut sealed = BTreeMap::new();
        for _ in 0..n {
            let id = u16::try_from(r.u32()?)
                .map_err(|_| Error::corrupt("key records", "key id out of range"))?;
            sealed.insert(id, r.bytes()?.to_vec());
        }
        r.finish()?;
        Ok(KeyRecords { keyed, sealed })
    }

    /// Records for a new store: keyed ids, the secret sealed under every key.
    pub(crate) fn create(keys: &Keyring) -> Self {
        let secret = keys.derive_id_secret();
        let mut rec = KeyRecords {
            keyed: true,
            sealed: BTreeMap::new(),
        };
        rec.add_missing(keys, &secret);
        rec
    }

    /// Seals `secret` under every configured key that has no record yet; whether any
    /// was added.
    pub fn add_missing(&mut self, keys: &Keyring, secret: &[u8; 32]) -> bool {
        let mut added = false;
        for id in keys.ids() {
            if let std::collections::btree_map::Entry::Vacant(e) = self.sealed.entry(id) {
                let mut out = Vec::new();
                keys.seal_into(id, secret, &record_aad(id), &mut out);
                e.insert(out);
                added = true;
            }
        }
        added
    }

    /// Checks every configured key that has a record against it and returns the id
    /// scheme. At least one configured key must be known to the store (a key file of
    /// only new keys could not open anything written before).
    ///
    /// # Errors
    /// [`Error::WrongKey`] for a configured key that does not open its record, or when
    /// no configured key has one.
    pub(crate) fn unlock(&self, keys: &Keyring) -> Result<([u8; 32], IdScheme)> {
        let mut secret = None;
        for id in keys.ids() {
            let Some(sealed) = self.sealed.get(&id) else {
                continue;
            };
            let plain = keys
                .open(id, sealed, &record_aad(id), "key record")
                .map_err(|_| Error::WrongKey {
                    detail: format!("key {id} is not the key {id} this store was written with"),
                })?;
            let s: [u8; 32] = plain.try_into().map_err(|_| Error::WrongKey {
                detail: format!("key {id}'s record holds no 32-byte secret"),
            })?;
            if secret.is_some_and(|prev| prev != s) {
                return Err(Error::WrongKey {
                    detail: format!("key {id} opens a record that disagrees with the others"),
                });
            }
            secret = Some(s);
        }
        let Some(secret) = secret else {
            return Err(Error::WrongKey {
                detail: format!(
                    "none of the configured keys ({:?}) is known to this store (it knows {:?}); \
                     keep the old key in the key file beside a new one until `admin rekey` has run",
                    keys.ids(),
                    self.sealed.keys().collect::<Vec<_>>()
                ),
            });
        };
        let scheme = if self.keyed {
            IdScheme::Keyed(secret)
        } else {
            IdScheme::Sha256
        };
        Ok((secret, scheme))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parse_keys_and_refuse_bad_lines() {
        let k = Keyring::parse(&format!("# comment\n\n1:{K1}\n2:{K2}\n")).unwrap();
        assert_eq!((k.ids(), k.active()), (vec![1, 2], 2));
        assert_eq!(Keyring::parse(K1).unwrap().ids(), vec![1]);
        for bad in [
            "",
            "0:11",
            &format!("0:{K1}"),
            &format!("1:{K1}\n1:{K2}"),
            &K1[..60],
            &"0".repeat(64),
        ] {
            let e = Keyring::parse(bad).unwrap_err().to_string();
            assert!(!e.contains(K1), "never prints a key: {e}");
        }
        assert!(!format!("{k:?}").contains("1111"));
    }

    #[test]
    fn seal_open_binds_key_and_aad() {
        let k = Keyring::parse(&format!("1:{K1}\n2:{K2}")).unwrap();
        let (id, sealed) = k.seal(b"secret bytes", b"aad");
        assert_eq!(id, 2);
        assert_eq!(k.open(2, &sealed, b"aad", "t").unwrap(), b"secret bytes");
        assert!(k.open(2, &sealed, b"other", "t").is_err());
        assert!(k.open(1, &sealed, b"aad", "t").is_err());
        assert!(matches!(
            k.open(3, &sealed, b"aad", "t"),
            Err(Error::KeyMissing { id: 3 })
        ));
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(k.open(2, &bad, b"aad", "t").is_err());
    }

    #[test]
    fn key_records_survive_rotation_and_refuse_wrong_keys() {
        let one = Keyring::parse(K1).unwrap();
        let rec = KeyRecords::create(&one);
        let (secret, scheme) = rec.unlock(&one).unwrap();
        assert!(matches!(scheme, IdScheme::Keyed(s) if s == secret));
        // Rotation: key 2 added next to key 1 gets its copy, then opens alone.
        let both = Keyring::parse(&format!("1:{K1}\n2:{K2}")).unwrap();
        let mut rec2 = KeyRecords::decode(&rec.encode()).unwrap();
        assert!(rec2.add_missing(&both, &secret));
        let two = Keyring::parse(&format!("2:{K2}")).unwrap();
        assert_eq!(rec2.unlock(&two).unwrap().0, secret);
        // A different key under a known id, or only unknown keys: refused.
        let wrong = Keyring::parse(&format!("1:{K2}")).unwrap();
        assert!(matches!(rec.unlock(&wrong), Err(Error::WrongKey { .. })));
        let unknown = Keyring::parse(&format!("7:{K2}")).unwrap();
        assert!(matches!(rec.unlock(&unknown), Err(Error::WrongKey { .. })));
        // Keyed ids differ from SHA-256 and depend on the secret.
        assert_ne!(scheme.id_of(b"abc"), ChunkId::of(b"abc"));
        assert_ne!(scheme.id_of(b"abc"), IdScheme::Keyed([9; 32]).id_of(b"abc"));
        for cut in [1, 5, 20] {
            let e = rec.encode();
            assert!(KeyRecords::decode(&e[..e.len() - cut]).is_err());
        }
    }
}

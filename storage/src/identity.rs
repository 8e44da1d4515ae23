//! Identities: tenants, their users and access keys — records, names and secrets.
//!
//! A tenant owns buckets; users belong to a tenant; an access key belongs to a tenant
//! and optionally to one of its users. The root key (the operator's, from the settings
//! or `<data_dir>/root-credentials`) is not a record here: it is the *root tenant*,
//! which owns every bucket created before tenants existed (bucket owner `""`).
//!
//! SigV4 needs a key's secret in the clear when a request is verified, so secrets are
//! kept, not hashed. With encryption configured they are sealed (AES-256-GCM-SIV under
//! the active key, bound to the access key id as associated data), and resealed under a
//! new active key when the store opens; without encryption they are kept as given (as
//! the root key is). Records are versioned and sealed with a CRC32C as every index
//! value is.

use crate::codec::{Reader, Writer};
use crate::crypto::Keyring;
use crate::error::{Error, Result};

const V1: u8 = 1;
/// No unsealed legacy layout exists for these records.
const NO_LEGACY: u8 = 0;

/// The name of the root tenant, reserved.
pub const ROOT_TENANT: &str = "root";

/// A tenant name problem, or `None`: 3–63 of `a-z 0-9 -`, starting with a letter or
/// digit; `root` is reserved. (Names appear in ARNs and metric labels.)
pub fn tenant_name_problem(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        return Some("a tenant name is 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("a tenant name uses only a-z, 0-9 and -");
    }
    if name.starts_with('-') {
        return Some("a tenant name starts with a letter or a digit");
    }
    if name == ROOT_TENANT {
        return Some("\"root\" is reserved for the operator's root key");
    }
    None
}

/// A user name problem, or `None`: 1–64 of `A-Z a-z 0-9 + = , . @ _ -` (IAM's set).
pub fn user_name_problem(name: &str) -> Option<&'static str> {
    if !(1..=64).contains(&name.len()) {
        return Some("a user name is 1 to 64 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Some("a user name uses only A-Z, a-z, 0-9 and + = , . @ _ -");
    }
    None
}

fn random_from(set: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(set[rng.random_range(0..set.len())]))
        .collect()
}

/// A new access key id: `S3DK` and 16 of `A-Z 0-9` (20 characters, as AWS's).
pub fn new_access_key_id() -> String {
    format!(
        "S3DK{}",
        random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16)
    )
}

/// A new secret key: 40 characters of the base64 alphabet (~238 bits).
pub fn new_secret_key() -> String {
    random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its name (the owner of its buckets, its "account" in ARNs).
    pub name: String,
    /// Canonical user id (64 hex digits, random, as S3's): returned in Owner fields
    /// and named by ACL grants.
    pub canonical_id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

impl Tenant {
    /// A new tenant record with a fresh canonical id.
    pub fn new(name: &str, created_ms: u64) -> Self {
        Tenant {
            name: name.to_owned(),
            canonical_id: hex::encode(rand::random::<[u8; 32]>()),
            created_ms,
        }
    }

    /// The root tenant's canonical id: fixed, so old data dirs need no record.
    pub fn root_canonical_id() -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"s3dedup root tenant"))
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1)
            .str(&self.name)
            .str(&self.canonical_id)
            .u64(self.created_ms);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "tenant record", NO_LEGACY, V1)?;
        let t = Tenant {
            name: r.string()?,
            canonical_id: r.string()?,
            created_ms: r.u64()?,
        };
        r.finish()?;
        Ok(t)
    }
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its tenant.
    pub tenant: String,
    /// Its name, unique in the tenant.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

impl User {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1)
            .str(&self.tenant)
            .str(&self.name)
            .u64(self.created_ms);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "user record", NO_LEGACY, V1)?;
        let u = User {
            tenant: r.string()?,
            name: r.string()?,
            created_ms: r.u64()?,
        };
        r.finish()?;
        Ok(u)
    }
}

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Requests signed with it are verified.
    Active,
    /// Requests signed with it are refused.
    Disabled,
}

impl KeyStatus {
    /// `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
        }
    }
}

/// A secret as kept in the index.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// As given (no encryption configured).
    Plain(String),
    /// Sealed under encryption key `key`.
    Sealed {
        /// Id of the key that sealed it.
        key: u16,
        /// Nonce, ciphertext and tag.
        sealed: Vec<u8>,
    },
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredSecret::Plain(_) => f.write_str("Plain(..)"),
            StoredSecret::Sealed { key, .. } => write!(f, "Sealed {{ key: {key}, .. }}"),
        }
    }
}

fn secret_aad(access_key: &str) -> Vec<u8> {
    let mut aad = b"s3dedup access key secret\0".to_vec();
    aad.extend_from_slice(access_key.as_bytes());
    aad
}

fn domain_aad(canonical_id: &str) -> Vec<u8> {
    let mut aad = b"s3dedup dedup domain secret\0".to_vec();
    aad.extend_from_slice(canonical_id.as_bytes());
    aad
}

impl StoredSecret {
    /// `secret` of `access_key`, sealed under the active key of `keys` if any.
    pub fn protect(access_key: &str, secret: &str, keys: Option<&Keyring>) -> Self {
        Self::protect_bound(&secret_aad(access_key), secret, keys)
    }

    fn protect_bound(aad: &[u8], secret: &str, keys: Option<&Keyring>) -> Self {
        match keys {
            Some(k) => {
                let (key, sealed) = k.seal(secret.as_bytes(), aad);
                StoredSecret::Sealed { key, sealed }
            }
            None => StoredSecret::Plain(secret.to_owned()),
        }
    }

    /// The secret in the clear.
    ///
    /// # Errors
    /// [`Error::KeyMissing`]-style errors when it is sealed and `keys` cannot open it.
    pub fn reveal(&self, access_key: &str, keys: Option<&Keyring>) -> Result<String> {
        self.reveal_bound(&secret_aad(access_key), "access key secret", keys)
    }

    fn reveal_bound(
        &self,
        aad: &[u8],
        what: &'static str,
        keys: Option<&Keyring>,
    ) -> Result<String> {
        match self {
            StoredSecret::Plain(s) => Ok(s.clone()),
            StoredSecret::Sealed { key, sealed } => {
                let keys = keys.ok_or_else(|| {
                    Error::corrupt(
                        what,
                        format!("sealed under key {key}, but no encryption key is configured"),
                    )
                })?;
                let plain = keys.open(*key, sealed, aad, what)?;
                String::from_utf8(plain).map_err(|_| Error::corrupt(what, "not UTF-8"))
            }
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            StoredSecret::Plain(s) => w.u8(0).str(s),
            StoredSecret::Sealed { key, sealed } => w.u8(1).u32(u32::from(*key)).bytes(sealed),
        };
    }

    fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(match r.u8()? {
            0 => StoredSecret::Plain(r.string()?),
            1 => {
                let key = u16::try_from(r.u32()?)
                    .map_err(|_| Error::corrupt(what, "key id out of range"))?;
                StoredSecret::Sealed {
                    key,
                    sealed: r.bytes()?.to_vec(),
                }
            }
            _ => return Err(Error::corrupt(what, "unknown secret kind")),
        })
    }

    /// Whether it should be sealed again: sealed under another key than the active
    /// one, or kept plain although encryption is configured.
    pub fn stale(&self, keys: Option<&Keyring>) -> bool {
        match (self, keys) {
            (StoredSecret::Plain(_), Some(_)) => true,
            (StoredSecret::Sealed { key, .. }, Some(k)) => *key != k.active(),
            (_, None) => false,
        }
    }
}

/// An access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id.
    pub access_key: String,
    /// Its tenant.
    pub tenant: String,
    /// Its user, if it belongs to one.
    pub user: Option<String>,
    /// Active or disabled.
    pub status: KeyStatus,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// When it stops working, ms since the epoch.
    pub expires_ms: Option<u64>,
    /// The secret as kept.
    pub secret: StoredSecret,
}

/// Why a key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// It is disabled.
    Disabled,
    /// It expired.
    Expired,
}

impl KeyRefusal {
    /// `disabled` or `expired` (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRefusal::Disabled => "disabled",
            KeyRefusal::Expired => "expired",
        }
    }
}

impl AccessKey {
    /// Whether the key may sign a request at `now_ms`.
    ///
    /// # Errors
    /// Why not.
    pub fn usable_at(&self, now_ms: u64) -> std::result::Result<(), KeyRefusal> {
        if self.status == KeyStatus::Disabled {
            return Err(KeyRefusal::Disabled);
        }
        if self.expires_ms.is_some_and(|e| now_ms >= e) {
            return Err(KeyRefusal::Expired);
        }
        Ok(())
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1)
            .str(&self.access_key)
            .str(&self.tenant)
            .opt_str(self.user.as_deref())
            .u8(match self.status {
                KeyStatus::Active => 0,
                KeyStatus::Disabled => 1,
            })
            .u64(self.created_ms);
        match self.expires_ms {
            None => w.u8(0),
            Some(e) => w.u8(1).u64(e),
        };
        self.secret.write(&mut w);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "access key record", NO_LEGACY, V1)?;
        let bad = |d: &str| Error::corrupt("access key record", d);
        let access_key = r.string()?;
        let tenant = r.string()?;
        let user = r.opt_string()?;
        let status = match r.u8()? {
            0 => KeyStatus::Active,
            1 => KeyStatus::Disabled,
            _ => return Err(bad("unknown status")),
        };
        let created_ms = r.u64()?;
        let expires_ms = match r.u8()? {
            0 => None,
            1 => Some(r.u64()?),
            _ => return Err(bad("bad expiry flag")),
        };
        let secret = StoredSecret::read(&mut r, "access key record")?;
        r.finish()?;
        Ok(AccessKey {
            access_key,
            tenant,
            user,
            status,
            created_ms,
            expires_ms,
            secret,
        })
    }
}

/// Which uploads a tenant's chunks may be shared with, fixed when the tenant is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupScope {
    /// Chunk ids are the store's: identical content dedups across every tenant (and a
    /// tenant can time whether content is already stored).
    #[default]
    Global,
    /// Chunk ids are keyed with the tenant's own secret: its chunks dedup only with its
    /// own, and another tenant's data never makes its uploads faster or cheaper.
    Tenant,
}

impl DedupScope {
    /// `global` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            DedupScope::Global => "global",
            DedupScope::Tenant => "tenant",
        }
    }
}

impl std::str::FromStr for DedupScope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "global" => Ok(DedupScope::Global),
            "tenant" => Ok(DedupScope::Tenant),
            _ => Err("expected global or tenant".into()),
        }
    }
}

/// Who uploads: decides the dedup domain the upload's chunks are named in. Chunks are
/// named in the uploader's domain, not the bucket owner's: a tenant another tenant lets
/// write into its bucket (a bucket policy) must not learn by timing whether the owner's
/// content exists, nor a scoped tenant's uploads into a global bucket dedup globally.
#[derive(Debug, Clone, Copy)]
pub enum Uploader<'a> {
    /// The root key: the store's ids.
    Root,
    /// A tenant's key, by the tenant's canonical id: its own domain when it has one,
    /// else the store's ids.
    Tenant(&'a str),
    /// An unsigned request into `bucket`: when the bucket's owner has its own domain, a
    /// domain derived from it for anonymous uploads (they dedup with each other, never
    /// with the owner's own content); else the store's ids.
    Anonymous {
        /// The bucket written into.
        bucket: &'a str,
    },
}

/// The dedup domain of a tenant created with [`DedupScope::Tenant`]: the secret its
/// chunk ids are keyed with (HMAC-SHA256), named by the tenant's canonical id. Kept
/// after its tenant is deleted: chunks it named may still be referenced (a copy into
/// another tenant's bucket) and scrub re-derives their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupDomain {
    /// The canonical id of its tenant.
    pub canonical_id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// The id secret (64 hex digits) as kept: sealed like access key secrets, bound to
    /// the canonical id.
    pub secret: StoredSecret,
}

impl DedupDomain {
    /// A new domain with a fresh secret, sealed under `keys` if any.
    pub fn new(canonical_id: &str, created_ms: u64, keys: Option<&Keyring>) -> Self {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        DedupDomain {
            canonical_id: canonical_id.to_owned(),
            created_ms,
            secret: StoredSecret::protect_bound(&domain_aad(canonical_id), &secret, keys),
        }
    }

    /// The id secret.
    ///
    /// # Errors
    /// A sealed secret `keys` cannot open, or a damaged one.
    pub fn reveal(&self, keys: Option<&Keyring>) -> Result<[u8; 32]> {
        const WHAT: &str = "dedup domain secret";
        let hex = self
            .secret
            .reveal_bound(&domain_aad(&self.canonical_id), WHAT, keys)?;
        hex::decode(hex)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::corrupt(WHAT, "not 32 bytes of hex"))
    }

    /// The same domain with its secret sealed under the active key of `keys` (or kept
    /// plain without keys).
    ///
    /// # Errors
    /// As [`DedupDomain::reveal`].
    pub fn resealed(&self, keys: Option<&Keyring>) -> Result<Self> {
        let secret = hex::encode(self.reveal(keys)?);
        Ok(DedupDomain {
            secret: StoredSecret::protect_bound(&domain_aad(&self.canonical_id), &secret, keys),
            ..self.clone()
        })
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1).str(&self.canonical_id).u64(self.created_ms);
        self.secret.write(&mut w);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "dedup domain record", NO_LEGACY, V1)?;
        let d = DedupDomain {
            canonical_id: r.string()?,
            created_ms: r.u64()?,
            secret: StoredSecret::read(&mut r, "dedup domain record")?,
        };
        r.finish()?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["acme", "a-1", "abc", &"a".repeat(63)] {
            assert_eq!(tenant_name_problem(ok), None, "{ok}");
        }
        for bad in ["ab", "Acme", "-abc", "a_b", "root", &"a".repeat(64), "a/b"] {
            assert!(tenant_name_problem(bad).is_some(), "{bad}");
        }
        for ok in ["alice", "ci-bot", "a.b@c", "X"] {
            assert_eq!(user_name_problem(ok), None, "{ok}");
        }
        for bad in ["", "a/b", "a b", &"u".repeat(65)] {
            assert!(user_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn secrets_seal_bind_and_go_stale() {
        let k1 = Keyring::generate();
        let s = StoredSecret::protect("AK1", "secret", Some(&k1));
        assert!(matches!(s, StoredSecret::Sealed { .. }));
        assert_eq!(s.reveal("AK1", Some(&k1)).unwrap(), "secret");
        // Bound to its access key: moved to another record, it does not open.
        assert!(s.reveal("AK2", Some(&k1)).is_err());
        assert!(s.reveal("AK1", None).is_err());
        assert!(!s.stale(Some(&k1)));
        let plain = StoredSecret::protect("AK1", "secret", None);
        assert_eq!(plain, StoredSecret::Plain("secret".into()));
        assert!(plain.stale(Some(&k1)));
        assert!(!plain.stale(None));
    }

    #[test]
    fn domain_secrets_seal_bind_and_reseal() {
        let k1 = Keyring::generate();
        let d = DedupDomain::new("c1", 7, Some(&k1));
        assert!(matches!(d.secret, StoredSecret::Sealed { .. }));
        let secret = d.reveal(Some(&k1)).unwrap();
        assert_eq!(DedupDomain::decode(&d.encode()).unwrap(), d);
        // Bound to its tenant's canonical id.
        let moved = DedupDomain {
            canonical_id: "c2".into(),
            ..d.clone()
        };
        assert!(moved.reveal(Some(&k1)).is_err());
        let plain = d.resealed(None);
        assert!(plain.is_err(), "a sealed secret needs its key");
        let plain = DedupDomain::new("c1", 7, None);
        let s = plain.reveal(None).unwrap();
        let sealed = plain.resealed(Some(&k1)).unwrap();
        assert_eq!(sealed.reveal(Some(&k1)).unwrap(), s);
        assert_ne!(s, secret, "each domain has its own secret");
    }

    #[test]
    fn usable() {
        let mut k = AccessKey {
            access_key: "AK".into(),
            tenant: "acme".into(),
            user: None,
            status: KeyStatus::Active,
            created_ms: 1,
            expires_ms: Some(100),
            secret: StoredSecret::Plain("s".into()),
        };
        assert_eq!(k.usable_at(99), Ok(()));
        assert_eq!(k.usable_at(100), Err(KeyRefusal::Expired));
        k.status = KeyStatus::Disabled;
        assert_eq!(k.usable_at(5), Err(KeyRefusal::Disabled));
        assert_eq!(AccessKey::decode(&k.encode()).unwrap(), k);
    }
}

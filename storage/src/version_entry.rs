//! A version that is not its key's current object, as the `versions` table holds it:
//! a noncurrent object version or a delete marker (see [`crate::versions`]).

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::records::ObjectRecord;
use crate::versions::Version;

/// Sealed layout of the records here.
const V2: u8 = 2;

/// A delete marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteMarker {
    /// Its version.
    pub version: Version,
    /// When it was created, ms since the epoch.
    pub mtime_ms: u64,
}

/// A version that is not the key's current object: a noncurrent object version or a
/// delete marker (current or not). The current object lives in the `objects` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionEntry {
    /// An object version.
    Object(ObjectRecord),
    /// A delete marker.
    Marker(DeleteMarker),
}

const KIND_OBJECT: u8 = 1;
const KIND_MARKER: u8 = 2;

impl VersionEntry {
    /// Its version.
    pub fn version(&self) -> Version {
        match self {
            VersionEntry::Object(r) => r.version,
            VersionEntry::Marker(m) => m.version,
        }
    }

    /// Its modification time.
    pub fn mtime_ms(&self) -> u64 {
        match self {
            VersionEntry::Object(r) => r.mtime_ms,
            VersionEntry::Marker(m) => m.mtime_ms,
        }
    }

    /// Encodes the entry (version 2: kind, then the object record or the marker).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V2);
        match self {
            VersionEntry::Object(r) => {
                w.u8(KIND_OBJECT).bytes(&r.encode());
            }
            VersionEntry::Marker(m) => {
                w.u8(KIND_MARKER).u64(m.mtime_ms);
                m.version.write(&mut w);
            }
        }
        w.seal()
    }

    /// Decodes an entry.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        // No legacy layout (`legacy == sealed` never matches an unsealed record).
        let (_, mut r) = Reader::open(b, "version entry", V2, V2)?;
        let e = match r.u8()? {
            KIND_OBJECT => VersionEntry::Object(ObjectRecord::decode(r.bytes()?)?),
            KIND_MARKER => {
                let mtime_ms = r.u64()?;
                VersionEntry::Marker(DeleteMarker {
                    version: Version::read(&mut r)?,
                    mtime_ms,
                })
            }
            n => return Err(Error::corrupt("version entry", format!("unknown kind {n}"))),
        };
        r.finish()?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips() {
        let m = VersionEntry::Marker(DeleteMarker {
            version: Version { seq: 5, null: true },
            mtime_ms: 1234,
        });
        assert_eq!(VersionEntry::decode(&m.encode()).unwrap(), m);
        let mut bad = m.encode();
        bad[3] ^= 1;
        assert!(VersionEntry::decode(&bad).is_err());
    }
}

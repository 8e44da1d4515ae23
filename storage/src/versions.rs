//! Object versions: ids, bucket versioning states, delete markers (DESIGN.md "Versions").
//!
//! Every object version carries a [`Version`]: a sequence number unique in the store and
//! increasing with creation (so listing order is creation order), and whether it is the
//! `null` version. An unversioned bucket holds one `null` version per key, as S3 does.
//! The version id a client sees is `null` or the sequence number as 16 hex digits.

use std::fmt;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

/// A bucket's versioning state. Once enabled it can be suspended, never unversioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Versioning {
    /// Never enabled: one `null` version per key, no version headers.
    #[default]
    Unversioned,
    /// Every write creates a new version.
    Enabled,
    /// Writes replace the `null` version; older versions stay.
    Suspended,
}

impl Versioning {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Versioning::Unversioned => 0,
            Versioning::Enabled => 1,
            Versioning::Suspended => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Result<Self> {
        match v {
            0 => Ok(Versioning::Unversioned),
            1 => Ok(Versioning::Enabled),
            2 => Ok(Versioning::Suspended),
            n => Err(Error::corrupt(
                "bucket record",
                format!("unknown versioning state {n}"),
            )),
        }
    }
}

/// Identity of one version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    /// Store-wide sequence number, increasing with creation (0: an object written
    /// before versions existed, older than any other).
    pub seq: u64,
    /// Whether this is the key's `null` version.
    pub null: bool,
}

impl Version {
    /// The version of records written before versions existed.
    pub const LEGACY: Version = Version { seq: 0, null: true };

    /// The id clients see: `null` or 16 hex digits.
    pub fn id(&self) -> String {
        self.to_string()
    }

    /// Whether `sel` names this version.
    pub fn is(&self, sel: VersionSel) -> bool {
        match sel {
            VersionSel::Null => self.null,
            VersionSel::Seq(s) => !self.null && self.seq == s,
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u64(self.seq).u8(u8::from(self.null));
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let seq = r.u64()?;
        let null = match r.u8()? {
            0 => false,
            1 => true,
            n => return Err(Error::corrupt(r.what(), format!("bad null flag {n}"))),
        };
        Ok(Version { seq, null })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.null {
            f.write_str("null")
        } else {
            write!(f, "{:016x}", self.seq)
        }
    }
}

/// A version id as a client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSel {
    /// `null`.
    Null,
    /// A non-null version.
    Seq(u64),
}

impl VersionSel {
    /// Parses a client's version id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything this store never hands out (S3 answers
    /// a malformed version id with 400 InvalidArgument).
    pub fn parse(s: &str) -> Result<Self> {
        if s == "null" {
            return Ok(VersionSel::Null);
        }
        if s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            let seq = u64::from_str_radix(s, 16).map_err(|_| bad_id())?;
            return Ok(VersionSel::Seq(seq));
        }
        Err(bad_id())
    }

    /// The id as the client gave it.
    pub fn id(&self) -> String {
        match self {
            VersionSel::Null => "null".to_owned(),
            VersionSel::Seq(seq) => Version {
                seq: *seq,
                null: false,
            }
            .id(),
        }
    }
}

fn bad_id() -> Error {
    Error::InvalidArgument("Invalid version id specified".to_owned())
}

/// Key of a version in the `versions` table: newest first within a key.
pub(crate) fn version_key(seq: u64) -> u64 {
    u64::MAX - seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_creation() {
        let a = Version {
            seq: 9,
            null: false,
        };
        let b = Version {
            seq: 0x1_0000,
            null: false,
        };
        assert!(a.id() < b.id());
        assert_eq!(VersionSel::parse(&a.id()).unwrap(), VersionSel::Seq(9));
        assert_eq!(VersionSel::parse("null").unwrap(), VersionSel::Null);
        for bad in [
            "",
            "NULL",
            "00000000000000zz",
            "0000000000000009a",
            "000000000000000A",
        ] {
            assert!(VersionSel::parse(bad).is_err(), "{bad}");
        }
        assert!(version_key(2) < version_key(1));
    }
}

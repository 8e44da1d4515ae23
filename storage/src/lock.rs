//! Object lock (WORM): retention and legal holds on object versions, and a bucket's
//! lock configuration. The rules of S3:
//!
//! - A version under a legal hold, or under retention until a time not yet reached,
//!   cannot be deleted by anyone or anything — a client, lifecycle, GC (its chunks stay
//!   referenced), admin commands. GOVERNANCE retention yields to a request that asks to
//!   bypass it (`x-amz-bypass-governance-retention`); COMPLIANCE yields to nothing.
//! - COMPLIANCE retention is never shortened or removed; GOVERNANCE only with the
//!   bypass. Either may always be extended.
//! - Object lock requires versioning, which then cannot be suspended.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

const V2: u8 = 2;
/// Lock records with the version's ACL.
const V3: u8 = 3;
/// Lock records with the version's tags.
const V4: u8 = 4;

/// Retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetentionMode {
    /// Deletable or shortenable with the bypass permission.
    Governance,
    /// Never deletable or shortenable before the date.
    Compliance,
}

impl RetentionMode {
    /// The S3 name (`GOVERNANCE`, `COMPLIANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    /// Parses the S3 name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "GOVERNANCE" => Ok(RetentionMode::Governance),
            "COMPLIANCE" => Ok(RetentionMode::Compliance),
            other => Err(Error::InvalidArgument(format!(
                "Unknown object lock mode {other:?}: it must be GOVERNANCE or COMPLIANCE"
            ))),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            RetentionMode::Governance => 1,
            RetentionMode::Compliance => 2,
        }
    }

    fn from_u8(v: u8, what: &'static str) -> Result<Option<Self>> {
        match v {
            0 => Ok(None),
            1 => Ok(Some(RetentionMode::Governance)),
            2 => Ok(Some(RetentionMode::Compliance)),
            n => Err(Error::corrupt(what, format!("unknown retention mode {n}"))),
        }
    }
}

/// A version's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Its mode.
    pub mode: RetentionMode,
    /// Until when, ms since the epoch.
    pub until_ms: u64,
}

/// Lock settings a write asks for (`x-amz-object-lock-*` headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockRequest {
    /// Retention for the new version (instead of the bucket's default).
    pub retention: Option<Retention>,
    /// Legal hold for the new version.
    pub legal_hold: Option<bool>,
}

impl LockRequest {
    /// Whether the request asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && self.legal_hold.is_none()
    }

    /// Writes the request (kept with a multipart upload until its completion).
    pub(crate) fn write(&self, w: &mut Writer) {
        match self.retention {
            None => w.u8(0).u64(0),
            Some(r) => w.u8(r.mode.to_u8()).u64(r.until_ms),
        };
        w.u8(match self.legal_hold {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    /// Reads what [`LockRequest::write`] wrote.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let what = r.what();
        let mode = RetentionMode::from_u8(r.u8()?, what)?;
        let until_ms = r.u64()?;
        let legal_hold = match r.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            n => return Err(Error::corrupt(what, format!("bad legal hold request {n}"))),
        };
        Ok(LockRequest {
            retention: mode.map(|mode| Retention { mode, until_ms }),
            legal_hold,
        })
    }
}

/// What one version carries beside its object record: its lock state and its ACL.
/// Kept per version in the `locks` table, removed with the version (a deletion checks
/// the lock first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockRecord {
    /// Retention, if any was set (it may have passed).
    pub retention: Option<Retention>,
    /// Whether a legal hold is on.
    pub legal_hold: bool,
    /// The version's ACL, as the gateway encodes it (`None`: the bucket owner's alone).
    /// Storage keeps it and never reads it.
    pub acl: Option<Vec<u8>>,
    /// The version's tags (key → value, in the order set); checked by the gateway.
    pub tags: Vec<(String, String)>,
}

impl LockRecord {
    /// Whether nothing is set (the record can go).
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && !self.legal_hold && self.acl.is_none() && self.tags.is_empty()
    }

    /// Whether object lock is set on the version (retention, even one that passed, or a
    /// legal hold).
    pub fn has_lock(&self) -> bool {
        self.retention.is_some() || self.legal_hold
    }

    /// Whether the version is protected at `now_ms` against a deletion that does
    /// (`bypass`) or does not ask to bypass governance retention; the reason if so.
    pub fn protects(&self, now_ms: u64, bypass: bool) -> Option<&'static str> {
        if self.legal_hold {
            return Some("it is under a legal hold");
        }
        match self.retention {
            Some(r) if r.until_ms > now_ms => match r.mode {
                RetentionMode::Compliance => Some("it is under COMPLIANCE retention"),
                RetentionMode::Governance if !bypass => Some(
                    "it is under GOVERNANCE retention (bypassing it needs x-amz-bypass-governance-retention)",
                ),
                RetentionMode::Governance => None,
            },
            _ => None,
        }
    }

    /// Checks replacing this record's retention by `new` at `now_ms`: extending is
    /// always allowed; shortening, removing or weakening needs the bypass under
    /// GOVERNANCE and is never allowed under COMPLIANCE.
    ///
    /// # Errors
    /// [`Error::ObjectLocked`] naming the rule.
    pub fn check_retention_change(
        &self,
        new: Option<Retention>,
        now_ms: u64,
        bypass: bool,
    ) -> Result<()> {
        let Some(old) = self.retention.filter(|r| r.until_ms > now_ms) else {
            return Ok(());
        };
        let keeps = new.is_some_and(|n| n.mode >= old.mode && n.until_ms >= old.until_ms);
        if keeps {
            return Ok(());
        }
        match old.mode {
            RetentionMode::Compliance => Err(Error::ObjectLocked(
                "COMPLIANCE retention cannot be shortened, weakened or removed".into(),
            )),
            RetentionMode::Governance if !bypass => Err(Error::ObjectLocked(
                "shortening, weakening or removing GOVERNANCE retention needs x-amz-bypass-governance-retention"
                    .into(),
            )),
            RetentionMode::Governance => Ok(()),
        }
    }

    /// Encodes the record (version 4: version 2 with the ACL and the tags).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V4);
        match self.retention {
            None => w.u8(0).u64(0),
            Some(r) => w.u8(r.mode.to_u8()).u64(r.until_ms),
        };
        w.u8(u8::from(self.legal_hold));
        match &self.acl {
            None => w.u8(0),
            Some(acl) => w.u8(1).bytes(acl),
        };
        w.pairs(&self.tags);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (v, mut r) = Reader::open_versions(b, "lock record", V2, V2..=V4)?;
        let mode = RetentionMode::from_u8(r.u8()?, "lock record")?;
        let until_ms = r.u64()?;
        let legal_hold = match r.u8()? {
            0 => false,
            1 => true,
            n => return Err(Error::corrupt("lock record", format!("bad legal hold {n}"))),
        };
        let flag = if v >= V3 { r.u8()? } else { 0 };
        let acl = match flag {
            0 => None,
            1 => Some(r.bytes()?.to_vec()),
            n => return Err(Error::corrupt("lock record", format!("bad ACL flag {n}"))),
        };
        let tags = if v >= V4 { r.pairs()? } else { Vec::new() };
        r.finish()?;
        Ok(LockRecord {
            retention: mode.map(|mode| Retention { mode, until_ms }),
            legal_hold,
            acl,
            tags,
        })
    }
}

/// How long a bucket's default retention lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Days.
    Days(u32),
    /// Years (of 365 days, as S3 counts them).
    Years(u32),
}

impl Period {
    /// The period in milliseconds.
    pub fn ms(self) -> u64 {
        const DAY: u64 = 24 * 3600 * 1000;
        match self {
            Period::Days(d) => u64::from(d) * DAY,
            Period::Years(y) => u64::from(y) * 365 * DAY,
        }
    }
}

/// A bucket's object lock configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockConfig {
    /// Object lock is enabled (for good: S3 cannot turn it off).
    pub enabled: bool,
    /// Retention given to new versions that ask for none.
    pub default: Option<(RetentionMode, Period)>,
}

impl LockConfig {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(u8::from(self.enabled));
        match self.default {
            None => w.u8(0).u8(0).u32(0),
            Some((mode, Period::Days(d))) => w.u8(mode.to_u8()).u8(1).u32(d),
            Some((mode, Period::Years(y))) => w.u8(mode.to_u8()).u8(2).u32(y),
        };
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let what = r.what();
        let enabled = r.u8()? == 1;
        let mode = RetentionMode::from_u8(r.u8()?, what)?;
        let unit = r.u8()?;
        let n = r.u32()?;
        let default = match (mode, unit) {
            (None, _) => None,
            (Some(m), 1) => Some((m, Period::Days(n))),
            (Some(m), 2) => Some((m, Period::Years(n))),
            (Some(_), u) => return Err(Error::corrupt(what, format!("bad period unit {u}"))),
        };
        Ok(LockConfig { enabled, default })
    }

    /// The retention a new version written at `now_ms` gets by default.
    pub fn default_retention(&self, now_ms: u64) -> Option<Retention> {
        self.default.map(|(mode, p)| Retention {
            mode,
            until_ms: now_ms.saturating_add(p.ms()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let now = 1_000_000;
        let gov = |until_ms| Retention {
            mode: RetentionMode::Governance,
            until_ms,
        };
        let comp = |until_ms| Retention {
            mode: RetentionMode::Compliance,
            until_ms,
        };
        let l = |r| LockRecord {
            retention: Some(r),
            ..LockRecord::default()
        };
        assert!(l(comp(now + 1)).protects(now, true).is_some());
        assert!(l(comp(now)).protects(now, false).is_none(), "passed");
        assert!(l(gov(now + 1)).protects(now, false).is_some());
        assert!(l(gov(now + 1)).protects(now, true).is_none());
        let hold = LockRecord {
            legal_hold: true,
            ..LockRecord::default()
        };
        assert!(hold.protects(now, true).is_some());
        // An ACL alone protects nothing, and is not object lock.
        let acl_only = LockRecord {
            acl: Some(b"acl".to_vec()),
            ..LockRecord::default()
        };
        assert!(acl_only.protects(now, false).is_none());
        assert!(!acl_only.has_lock() && !acl_only.is_empty());
        // Tags alone keep the record, and are not object lock either.
        let tags_only = LockRecord {
            tags: vec![("k".into(), "v".into())],
            ..LockRecord::default()
        };
        assert!(tags_only.protects(now, false).is_none());
        assert!(!tags_only.has_lock() && !tags_only.is_empty());
        // Extending is fine; shortening or removing COMPLIANCE never is.
        let c = l(comp(now + 10));
        assert!(
            c.check_retention_change(Some(comp(now + 20)), now, false)
                .is_ok()
        );
        assert!(
            c.check_retention_change(Some(comp(now + 5)), now, true)
                .is_err()
        );
        assert!(
            c.check_retention_change(Some(gov(now + 20)), now, true)
                .is_err()
        );
        assert!(c.check_retention_change(None, now, true).is_err());
        assert!(
            c.check_retention_change(None, now + 10, false).is_ok(),
            "passed"
        );
        let g = l(gov(now + 10));
        assert!(
            g.check_retention_change(Some(gov(now + 5)), now, false)
                .is_err()
        );
        assert!(
            g.check_retention_change(Some(gov(now + 5)), now, true)
                .is_ok()
        );
        assert!(
            g.check_retention_change(Some(comp(now + 10)), now, false)
                .is_ok()
        );
        for r in [c, g, hold, LockRecord::default()] {
            assert_eq!(LockRecord::decode(&r.encode()).unwrap(), r);
        }
    }
}

//! Lifecycle rules (S3 `PutBucketLifecycleConfiguration`) and what they make due.
//!
//! A configuration is a list of rules, each a filter (prefix, tags, object size) and
//! up to three actions: expire the current version (after `Days` or on a `Date`, or
//! remove expired delete markers), expire noncurrent versions (`NoncurrentDays`,
//! keeping `NewerNoncurrentVersions`), abort incomplete multipart uploads.
//!
//! [`plan`] decides, for one key's versions, what is due at a given time: a pure
//! function, so the lifecycle run calls it again inside the transaction that applies
//! it (`Index::apply_lifecycle`) and a write that raced the scan is never expired on
//! a stale view. Locked versions are never planned for removal.
//!
//! Times follow S3: an object expires `Days` after its creation rounded up to the next
//! midnight UTC; a noncurrent version counts from when it became noncurrent (the time
//! its successor was written). The length of a "day" is part of [`Clock`] so tests can
//! shorten it (as Ceph's `rgw_lc_debug_interval` does).

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::records::ObjectRecord;
use crate::version_entry::VersionEntry;
use crate::versions::Versioning;

const V1: u8 = 1;

/// Milliseconds in a real day.
pub const DAY_MS: u64 = 86_400_000;

/// What a filter selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Key prefix ("" for every key).
    pub prefix: String,
    /// Tags an object must carry (all of them).
    pub tags: Vec<(String, String)>,
    /// Only objects strictly larger than this.
    pub size_greater_than: Option<u64>,
    /// Only objects strictly smaller than this.
    pub size_less_than: Option<u64>,
}

impl Filter {
    /// Whether an object version with this key, size and tags is selected.
    pub fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        self.matches_key(key)
            && self.size_greater_than.is_none_or(|g| size > g)
            && self.size_less_than.is_none_or(|l| size < l)
            && self.tags.iter().all(|t| tags.contains(t))
    }

    /// Whether a delete marker of this key is selected: markers have no size (size
    /// conditions do not apply) and no tags (a tag filter never selects one).
    pub fn matches_marker(&self, key: &str) -> bool {
        self.matches_key(key) && self.tags.is_empty()
    }

    fn matches_key(&self, key: &str) -> bool {
        key.starts_with(self.prefix.as_str())
    }
}

/// When the current version expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiration {
    /// This many days after creation (rounded up to midnight UTC).
    Days(u32),
    /// From this time on (ms since the epoch; midnight UTC).
    Date(u64),
    /// `ExpiredObjectDeleteMarker`: only remove delete markers that are a key's only
    /// version.
    DeleteMarkers,
}

/// `NoncurrentVersionExpiration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoncurrentExpiration {
    /// Days after becoming noncurrent.
    pub days: u32,
    /// How many of the newest noncurrent versions are kept whatever their age.
    pub newer_versions: Option<u32>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `ID`.
    pub id: String,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// Which objects it applies to.
    pub filter: Filter,
    /// Expiration of the current version.
    pub expiration: Option<Expiration>,
    /// Expiration of noncurrent versions.
    pub noncurrent: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload` `DaysAfterInitiation`.
    pub abort_multipart_days: Option<u32>,
}

/// A bucket's lifecycle configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// The rules, in the order they were given.
    pub rules: Vec<Rule>,
}

fn opt(v: Option<u64>) -> u64 {
    v.map_or(0, |n| n.saturating_add(1))
}

fn unopt(v: u64) -> Option<u64> {
    v.checked_sub(1)
}

impl Lifecycle {
    /// Encodes the configuration (version 1, sealed).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V1).u32(self.rules.len() as u32);
        for r in &self.rules {
            w.str(&r.id)
                .u8(u8::from(r.enabled))
                .str(&r.filter.prefix)
                .pairs(&r.filter.tags)
                .u64(opt(r.filter.size_greater_than))
                .u64(opt(r.filter.size_less_than));
            match r.expiration {
                None => w.u8(0).u64(0),
                Some(Expiration::Days(d)) => w.u8(1).u64(d.into()),
                Some(Expiration::Date(t)) => w.u8(2).u64(t),
                Some(Expiration::DeleteMarkers) => w.u8(3).u64(0),
            };
            match r.noncurrent {
                None => w.u8(0).u32(0).u32(0),
                Some(n) => w.u8(1).u32(n.days).u32(n.newer_versions.unwrap_or(0)),
            };
            w.u32(r.abort_multipart_days.unwrap_or(0));
        }
        w.seal()
    }

    /// Decodes a configuration.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        const WHAT: &str = "lifecycle configuration";
        let (_, mut r) = Reader::open(b, WHAT, V1, V1)?;
        let n = r.u32()?;
        let mut rules = Vec::with_capacity(n.min(1000) as usize);
        for _ in 0..n {
            let id = r.string()?;
            let enabled = r.u8()? == 1;
            let filter = Filter {
                prefix: r.string()?,
                tags: r.pairs()?,
                size_greater_than: unopt(r.u64()?),
                size_less_than: unopt(r.u64()?),
            };
            let (kind, v) = (r.u8()?, r.u64()?);
            let expiration = match kind {
                0 => None,
                1 => Some(Expiration::Days(
                    u32::try_from(v).map_err(|_| Error::corrupt(WHAT, "days out of range"))?,
                )),
                2 => Some(Expiration::Date(v)),
                3 => Some(Expiration::DeleteMarkers),
                k => return Err(Error::corrupt(WHAT, format!("bad expiration kind {k}"))),
            };
            let (has, days, newer) = (r.u8()?, r.u32()?, r.u32()?);
            let noncurrent = (has == 1).then_some(NoncurrentExpiration {
                days,
                newer_versions: (newer > 0).then_some(newer),
            });
            let abort = r.u32()?;
            rules.push(Rule {
                id,
                enabled,
                filter,
                expiration,
                noncurrent,
                abort_multipart_days: (abort > 0).then_some(abort),
            });
        }
        r.finish()?;
        Ok(Lifecycle { rules })
    }

    /// The enabled rules.
    pub fn active(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The number of days after which an upload of `key` is aborted, if a rule says so
    /// (the shortest when several do).
    pub fn abort_days(&self, key: &str) -> Option<u32> {
        self.active()
            .filter(|r| r.filter.matches_key(key))
            .filter_map(|r| r.abort_multipart_days)
            .min()
    }
}

/// The time a lifecycle run judges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Now, ms since the epoch (the real time: object lock is judged by it too).
    pub now_ms: u64,
    /// The length of a day, ms ([`DAY_MS`] unless a test shortens it).
    pub day_ms: u64,
}

impl Clock {
    /// Whether `days` after `t0_ms`, rounded up to the next day boundary (midnight UTC
    /// for real days), has been reached.
    pub fn reached(&self, t0_ms: u64, days: u32) -> bool {
        let day = self.day_ms.max(1);
        let t = t0_ms.saturating_add(u64::from(days).saturating_mul(day));
        let due = t.div_ceil(day).saturating_mul(day);
        self.now_ms >= due
    }
}

/// One key as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub struct KeyState<'a> {
    /// The key.
    pub key: &'a str,
    /// The bucket's versioning state.
    pub versioning: Versioning,
    /// The current object, if the newest version is not a delete marker.
    pub current: Option<&'a ObjectRecord>,
    /// The key's other versions, newest first (as in the `versions` table).
    pub versions: &'a [VersionEntry],
}

/// What is due for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Noncurrent versions (sequence numbers) to remove for good.
    pub remove: Vec<u64>,
    /// The current delete marker to remove (it is the key's only version left).
    pub remove_marker: Option<u64>,
    /// Expire the current version (delete it, or add a delete marker).
    pub expire_current: bool,
    /// Versions that were due but are protected by object lock.
    pub locked: u64,
}

impl Plan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.remove_marker.is_none() && !self.expire_current
    }
}

/// What `rules` make due for one key at `clock`; `locked(seq)` says whether object
/// lock protects a version from deletion now, `tags(seq)` what tags it has (what tag
/// filters match).
pub fn plan(
    rules: &Lifecycle,
    st: KeyState<'_>,
    clock: Clock,
    locked: &dyn Fn(u64) -> bool,
    tags: &dyn Fn(u64) -> Vec<(String, String)>,
) -> Plan {
    let mut p = Plan::default();
    let rules: Vec<&Rule> = rules
        .active()
        .filter(|r| r.filter.matches_key(st.key))
        .collect();
    if rules.is_empty() {
        return p;
    }
    // The current delete marker (newest version when no object is current) is not
    // noncurrent.
    let marker_is_current =
        st.current.is_none() && matches!(st.versions.first(), Some(VersionEntry::Marker(_)));
    let noncurrent = if marker_is_current {
        &st.versions[1..]
    } else {
        st.versions
    };
    // Noncurrent versions: each counts from its successor's write time.
    let mut successor_ms = match (st.current, st.versions.first()) {
        (Some(c), _) => c.mtime_ms,
        (None, Some(m)) => m.mtime_ms(),
        (None, None) => 0,
    };
    for (rank, e) in noncurrent.iter().enumerate() {
        let since = successor_ms;
        successor_ms = e.mtime_ms();
        let due = rules.iter().any(|r| {
            let Some(n) = r.noncurrent else {
                return false;
            };
            let selected = match e {
                VersionEntry::Object(o) => r.filter.matches(st.key, o.size, &tags(o.version.seq)),
                VersionEntry::Marker(_) => r.filter.matches_marker(st.key),
            };
            selected
                && rank as u64 >= u64::from(n.newer_versions.unwrap_or(0))
                && clock.reached(since, n.days)
        });
        if !due {
            continue;
        }
        let seq = e.version().seq;
        if matches!(e, VersionEntry::Object(_)) && locked(seq) {
            p.locked += 1;
        } else {
            p.remove.push(seq);
        }
    }
    match st.current {
        Some(cur) => {
            let due = rules.iter().any(|r| {
                r.filter.matches(st.key, cur.size, &tags(cur.version.seq))
                    && match r.expiration {
                        Some(Expiration::Days(d)) => clock.reached(cur.mtime_ms, d),
                        Some(Expiration::Date(t)) => clock.now_ms >= t,
                        _ => false,
                    }
            });
            if due {
                // Expiring removes the current version itself only where it is not
                // kept as noncurrent: an unversioned bucket, or a `null` version under
                // suspension (which also replaces an older `null` version).
                let doomed = match st.versioning {
                    Versioning::Enabled => None,
                    Versioning::Unversioned => Some(cur.version.seq),
                    Versioning::Suspended => {
                        if cur.version.null {
                            Some(cur.version.seq)
                        } else {
                            st.versions
                                .iter()
                                .find(|e| e.version().null)
                                .map(|e| e.version().seq)
                        }
                    }
                };
                if doomed.is_some_and(locked) {
                    p.locked += 1;
                } else {
                    p.expire_current = true;
                }
            }
        }
        None if marker_is_current => {
            // An expired object delete marker: every other version is gone (or goes
            // now).
            let m = &st.versions[0];
            let alone = noncurrent
                .iter()
                .all(|e| p.remove.contains(&e.version().seq));
            let due = alone
                && rules.iter().any(|r| {
                    r.filter.matches_marker(st.key)
                        && match r.expiration {
                            Some(Expiration::DeleteMarkers) => true,
                            Some(Expiration::Days(d)) => clock.reached(m.mtime_ms(), d),
                            Some(Expiration::Date(t)) => clock.now_ms >= t,
                            None => false,
                        }
                });
            if due {
                p.remove_marker = Some(m.version().seq);
            }
        }
        None => {}
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let l = Lifecycle {
            rules: vec![
                Rule {
                    id: "a".into(),
                    enabled: true,
                    filter: Filter {
                        prefix: "logs/".into(),
                        tags: vec![("k".into(), "v".into())],
                        size_greater_than: Some(0),
                        size_less_than: Some(100),
                    },
                    expiration: Some(Expiration::Days(3)),
                    noncurrent: Some(NoncurrentExpiration {
                        days: 2,
                        newer_versions: Some(5),
                    }),
                    abort_multipart_days: Some(1),
                },
                Rule {
                    id: "b".into(),
                    enabled: false,
                    filter: Filter::default(),
                    expiration: Some(Expiration::Date(1_700_000_000_000)),
                    noncurrent: None,
                    abort_multipart_days: None,
                },
                Rule {
                    id: "c".into(),
                    enabled: true,
                    filter: Filter::default(),
                    expiration: Some(Expiration::DeleteMarkers),
                    noncurrent: Some(NoncurrentExpiration {
                        days: 1,
                        newer_versions: None,
                    }),
                    abort_multipart_days: None,
                },
            ],
        };
        let b = l.encode();
        assert_eq!(Lifecycle::decode(&b).unwrap(), l);
        let mut bad = b.clone();
        bad[3] ^= 1;
        assert!(Lifecycle::decode(&bad).is_err());
    }

    #[test]
    fn days_round_up_to_the_next_day_boundary() {
        let day = 1000;
        let c = |now| Clock {
            now_ms: now,
            day_ms: day,
        };
        // Created at 1.5 days: one day later is 2.5, rounded up to 3.
        assert!(!c(2999).reached(1500, 1));
        assert!(c(3000).reached(1500, 1));
        // Exactly on a boundary stays there.
        assert!(c(3000).reached(2000, 1));
        assert!(!c(2999).reached(2000, 1));
    }
}

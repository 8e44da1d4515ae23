//! ListObjectVersions over the `objects` and `versions` tables (see `versions.rs`):
//! keys in order, newest first within a key, with key/version-id markers.

use redb::ReadableTable;

use super::{BUCKETS, OBJECTS, VERSIONS};
use crate::error::{Error, Result};
use crate::records::ObjectRecord;
use crate::version_entry::VersionEntry;
use crate::versions::VersionSel;

/// A ListObjectVersions request.
#[derive(Debug, Clone, Default)]
pub struct VersionQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to the first occurrence of this after the prefix (`""`: none).
    pub delimiter: Option<&'a str>,
    /// Start after this key (after its version `version_marker` when that is given).
    pub key_marker: Option<&'a str>,
    /// Resume inside `key_marker` after this version.
    pub version_marker: Option<VersionSel>,
    /// At most this many versions, delete markers and common prefixes.
    pub max_keys: usize,
}

/// One listed entry, in key order and newest first within a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionItem {
    /// An object version or delete marker.
    Version {
        /// Its key.
        key: String,
        /// The version.
        entry: VersionEntry,
        /// Whether it is the key's newest version.
        latest: bool,
    },
    /// A common prefix.
    Prefix(String),
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Entries in order.
    pub items: Vec<VersionItem>,
    /// Whether more follow.
    pub is_truncated: bool,
    /// Where the next page starts (when truncated): key …
    pub next_key_marker: Option<String>,
    /// … and version id (absent after a common prefix).
    pub next_version_marker: Option<String>,
}

/// The first key of `bucket` at or after (`inclusive`) or strictly after `lower`, in
/// either table.
fn next_key<O, V>(
    objects: &O,
    versions: &V,
    bucket: &str,
    lower: &str,
    inclusive: bool,
) -> Result<Option<String>>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let lo = if inclusive {
        Included((bucket, lower))
    } else {
        Excluded((bucket, lower))
    };
    let a = objects
        .range::<(&str, &str)>((lo, Unbounded))?
        .next()
        .transpose()?
        .and_then(|(k, _)| {
            let k = k.value();
            (k.0 == bucket).then(|| k.1.to_owned())
        });
    let lo = if inclusive {
        Included((bucket, lower, 0u64))
    } else {
        Excluded((bucket, lower, u64::MAX))
    };
    let b = versions
        .range::<(&str, &str, u64)>((lo, Unbounded))?
        .next()
        .transpose()?
        .and_then(|(k, _)| {
            let k = k.value();
            (k.0 == bucket).then(|| k.1.to_owned())
        });
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

impl super::Index {
    /// Lists every version and delete marker of a bucket: keys in order, newest first
    /// within a key.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn list_versions(&self, bucket: &str, q: &VersionQuery<'_>) -> Result<VersionPage> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(Error::NoSuchBucket(bucket.to_owned()));
        }
        let objects = txn.open_table(OBJECTS)?;
        let versions = txn.open_table(VERSIONS)?;
        let delimiter = q.delimiter.filter(|d| !d.is_empty());
        let (mut lower, mut inclusive) = match q.key_marker {
            Some(m) if m >= q.prefix => (m.to_owned(), q.version_marker.is_some()),
            _ => (q.prefix.to_owned(), true),
        };
        let mut page = VersionPage::default();
        'keys: while let Some(key) = next_key(&objects, &versions, bucket, &lower, inclusive)? {
            if !key.starts_with(q.prefix) {
                break;
            }
            if let Some(d) = delimiter
                && let Some(i) = key[q.prefix.len()..].find(d)
            {
                let cp = key[..q.prefix.len() + i + d.len()].to_owned();
                if q.key_marker.is_none_or(|m| cp.as_str() > m) {
                    if page.items.len() == q.max_keys {
                        page.is_truncated = true;
                        break;
                    }
                    page.items.push(VersionItem::Prefix(cp.clone()));
                }
                match prefix_successor(&cp) {
                    Some(next) => (lower, inclusive) = (next, true),
                    None => break,
                }
                continue;
            }
            let mut list = Vec::new();
            if let Some(v) = objects.get((bucket, key.as_str()))? {
                list.push(VersionEntry::Object(ObjectRecord::decode(v.value())?));
            }
            for r in
                versions.range((bucket, key.as_str(), 0u64)..=(bucket, key.as_str(), u64::MAX))?
            {
                list.push(VersionEntry::decode(r?.1.value())?);
            }
            let skip = match (q.key_marker, q.version_marker) {
                (Some(m), Some(vm)) if m == key => match vm {
                    // Newest first: everything at or above the marker's seq came before.
                    VersionSel::Seq(s) => list.iter().take_while(|e| e.version().seq >= s).count(),
                    VersionSel::Null => list
                        .iter()
                        .position(|e| e.version().null)
                        .map_or(list.len(), |p| p + 1),
                },
                _ => 0,
            };
            for (i, entry) in list.into_iter().enumerate().skip(skip) {
                if page.items.len() == q.max_keys {
                    page.is_truncated = true;
                    break 'keys;
                }
                page.items.push(VersionItem::Version {
                    key: key.clone(),
                    entry,
                    latest: i == 0,
                });
            }
            (lower, inclusive) = (key, false);
        }
        if page.is_truncated {
            match page.items.last() {
                Some(VersionItem::Version { key, entry, .. }) => {
                    page.next_key_marker = Some(key.clone());
                    page.next_version_marker = Some(entry.version().id());
                }
                Some(VersionItem::Prefix(p)) => page.next_key_marker = Some(p.clone()),
                None => {}
            }
        }
        Ok(page)
    }
}

/// Smallest string greater than every string starting with `s`, if one exists.
pub(super) fn prefix_successor(s: &str) -> Option<String> {
    let mut out = s.to_owned();
    while let Some(c) = out.pop() {
        let next = match c as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(n) = next {
            out.push(n);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_successor;

    #[test]
    fn successor() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }
}
